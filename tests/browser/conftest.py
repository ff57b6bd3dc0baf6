"""Browser fixtures: log in through the real form, and run a real task worker process.

Every browser test is transactional (`django_db(transaction=True)`): the live server thread
and the worker process read what the test wrote, so nothing may hide in a test transaction.
"""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection
from playwright.sync_api import Page, expect

REPO_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO_ROOT / "test-artifacts" / "screenshots"
PASSWORD = "pw-for-tests"  # tests.factories.UserFactory


@pytest.fixture
def login(page: Page, live_server):
    """`login(user)`: signs `user` in through /login/ in this test's browser page."""
    page.set_default_timeout(10_000)

    def _login(user) -> Page:
        page.goto(f"{live_server.url}/login/")
        page.fill("#id_username", user.get_username())
        page.fill("#id_password", PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(f"{live_server.url}/")
        expect(page.locator(".who")).to_contain_text(user.get_username())
        return page

    return _login


@pytest.fixture
def screenshot(page: Page):
    """`screenshot(name)`: the whole page into test-artifacts/screenshots/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def _shot(name: str, locator=None) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        if locator is not None:
            locator.screenshot(path=path)
        else:
            page.screenshot(path=path, full_page=True)
        assert path.stat().st_size > 1000, f"empty screenshot {path}"
        return path

    return _shot


def worker_database_url() -> str:
    """The test database as a DATABASE_URL, for processes outside this one."""
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    return f"postgres://postgres@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


class TaskWorker:
    """One real `manage.py db_worker` process on the test database (started on demand)."""

    def __init__(self, log: Path, public_url: str):
        self.log = log
        self.public_url = public_url
        self.proc: subprocess.Popen | None = None

    def start(self) -> "TaskWorker":
        assert self.proc is None, "the worker is already running"
        env = {k: v for k, v in os.environ.items() if k != "DIALNEXA_TEST_DB_SUFFIX"}
        env.update(
            DATABASE_URL=worker_database_url(),
            DJANGO_SETTINGS_MODULE="dialnexa.settings",
            DEBUG="0",
            LOG_LEVEL="WARNING",
            PYTHONUNBUFFERED="1",
            DIALNEXA_SIMULATOR_DELAY="0.2",
            DIALNEXA_HEARTBEAT_SECONDS="0.5",
            # Recording URLs point at the live server, which serves static files.
            DIALNEXA_PUBLIC_URL=self.public_url,
        )
        command = [
            sys.executable,
            "manage.py",
            "db_worker",
            "--no-reload",
            "--no-startup-delay",
            "--interval",
            "0.2",
        ]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                command, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        return self

    def assert_alive(self) -> None:
        assert self.proc is not None and self.proc.poll() is None, (
            f"the worker exited ({self.proc and self.proc.returncode}):\n{self.tail()}"
        )

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        # --no-reload: SIGTERM lets the running task finish, then the worker exits.
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def task_worker(transactional_db, live_server, tmp_path):
    """A worker to `.start()` when the test wants one; stopped before the database is flushed
    (this fixture is set up after the database fixtures, so it is torn down before them)."""
    worker = TaskWorker(tmp_path / "worker.log", live_server.url)
    yield worker
    worker.stop()
