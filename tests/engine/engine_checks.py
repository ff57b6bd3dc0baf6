"""Invariants of a drained workflow and real worker processes, shared by the engine tests.

The invariants are SPEC 5 and 6: one execution per lead, final or held for review; history
contiguous per lead; one call per (lead, node, visit); every call routed exactly once.
"""

import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

from django.db import connection
from django.db.models import Q
from django_tasks_db.models import DBTaskResult

from calls.models import CallLog, CallStatus
from leads.models import ExecutionStatus, Lead, LeadExecution, LeadTransition, TransitionReason
from workflows.models import Node

REPO_ROOT = Path(__file__).resolve().parents[2]
ROUTING_REASONS = (TransitionReason.CALL_ROUTED, TransitionReason.CALL_REVIEW)


def on_postgres() -> bool:
    """Decided from the environment at import time, so PostgreSQL-only tests are not even
    collected on SQLite (nothing is skipped and counted)."""
    return os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://"))


# --- worker subprocesses --------------------------------------------------------------------


def database_url() -> str:
    """The URL of the test database this test runs on, for worker subprocesses."""
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    port = f":{s['PORT']}" if s.get("PORT") else ""
    return f"postgres://{s['USER']}{password}@{s['HOST'] or '127.0.0.1'}{port}/{s['NAME']}"


def worker_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DIALNEXA_TEST_DB_SUFFIX"}
    env.update(
        DATABASE_URL=database_url(),
        DJANGO_SETTINGS_MODULE="dialnexa.settings",
        DEBUG="0",
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    env.update(settings)
    return env


class WorkerPool:
    """Real `manage.py db_worker` processes against the test database.

    Batch workers exit when the queue has nothing ready; `keep_full` starts a new one in each
    empty slot, so `size` workers compete for the work while any remains.
    """

    def __init__(
        self, size: int, env: dict, log_dir: Path, *, batch: bool, args=(), name: str = "slot"
    ):
        self.size = size
        self.name = name
        self.env = env
        self.log_dir = log_dir
        self.batch = batch
        self.args = list(args)
        self.slots: list[subprocess.Popen | None] = [None] * size
        self.spawned = 0
        self.logs: list[Path] = []

    def worker_id(self, slot: int) -> str:
        return f"{self.name}{slot}-run{self.spawned}"

    def spawn(self, slot: int) -> subprocess.Popen:
        wid = self.worker_id(slot)
        log = self.log_dir / f"{wid}.log"
        self.logs.append(log)
        command = [
            sys.executable,
            "manage.py",
            "db_worker",
            "--no-reload",
            "--no-startup-delay",
            "--worker-id",
            wid,
            *(["--batch"] if self.batch else []),
            *self.args,
        ]
        with log.open("wb") as out:
            proc = subprocess.Popen(
                command, cwd=REPO_ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        self.slots[slot] = proc
        self.spawned += 1
        return proc

    def keep_full(self) -> None:
        for slot, proc in enumerate(self.slots):
            if proc is not None and proc.poll() is None:
                continue
            if proc is not None and proc.returncode != 0:
                raise AssertionError(f"worker crashed (exit {proc.returncode}):\n{self.tail()}")
            self.spawn(slot)

    def alive(self) -> list[subprocess.Popen]:
        return [p for p in self.slots if p is not None and p.poll() is None]

    def stop(self, timeout: float = 60) -> None:
        """Batch workers: wait for them to run out of work. Others: SIGTERM (graceful)."""
        if not self.batch:
            for proc in self.alive():
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.slots:
            if proc is None:
                continue
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise AssertionError(f"worker {proc.pid} did not stop:\n{self.tail()}") from None

    def kill_all(self) -> None:
        for proc in self.alive():
            proc.kill()
            proc.wait()

    def tail(self, chars: int = 3000) -> str:
        return "\n".join(
            f"--- {log.name}\n{log.read_text(errors='replace')[-chars:]}"
            for log in self.logs[-6:]
            if log.exists()
        )


def wait_until(condition, timeout: float, what: str, interval: float = 0.2, on_timeout=None):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            detail = on_timeout() if on_timeout else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{detail}")
        time.sleep(interval)


# --- the state of a workflow ----------------------------------------------------------------


def unfinished(workflow_id: int) -> int:
    """Leads not started yet, plus executions still active and not held for review."""
    pending = Lead.objects.filter(workflow_id=workflow_id, execution__isnull=True).count()
    moving = LeadExecution.objects.filter(
        workflow_id=workflow_id, status=ExecutionStatus.ACTIVE, needs_review=False
    ).count()
    return pending + moving


def final_places(workflow_id: int) -> dict[int, tuple[str, str]]:
    """lead id -> (node key, "completed" | "dropped" | "review") for every lead."""
    places = {}
    for lead_id, key, status, review in LeadExecution.objects.filter(
        workflow_id=workflow_id
    ).values_list("lead_id", "node__key", "status", "needs_review"):
        places[lead_id] = (key, "review" if review else status)
    return places


def assert_every_lead_finished_once(workflow_id: int) -> None:
    """One execution per lead, each final (at a terminal) or held for review (not final)."""
    leads = set(Lead.objects.filter(workflow_id=workflow_id).values_list("id", flat=True))
    rows = list(
        LeadExecution.objects.filter(workflow_id=workflow_id).values_list(
            "lead_id", "status", "needs_review", "node__type", "due_at", "lease_owner"
        )
    )
    assert sorted(r[0] for r in rows) == sorted(leads), "a lead has no (or two) executions"
    terminal_types = {"converted", "dropped"}
    bad = [
        r
        for r in rows
        if not (
            (
                r[1] in (ExecutionStatus.COMPLETED, ExecutionStatus.DROPPED)
                and not r[2]
                and r[3] in terminal_types
            )
            or (r[1] == ExecutionStatus.ACTIVE and r[2] and r[3] not in terminal_types)
        )
    ]
    assert not bad, f"{len(bad)} executions neither final nor held for review: {bad[:5]}"
    # Nothing is left leased or due: a finished lead is not looked at again.
    assert not [r for r in rows if r[4] is not None or r[5]], "finished executions still due"
    # Exactly one arrival at a terminal per final lead, none for a lead held for review.
    terminal_nodes = set(
        Node.objects.filter(workflow_id=workflow_id, type__in=terminal_types).values_list(
            "id", flat=True
        )
    )
    arrivals = Counter(
        LeadTransition.objects.filter(
            lead__workflow_id=workflow_id, to_node_id__in=terminal_nodes
        ).values_list("lead_id", flat=True)
    )
    for lead_id, status, review, *_ in rows:
        expected = 0 if review else 1
        assert arrivals[lead_id] == expected, (lead_id, status, arrivals[lead_id])


def history_by_lead(workflow_id: int) -> dict[int, list[tuple]]:
    history = defaultdict(list)
    for row in (
        LeadTransition.objects.filter(lead__workflow_id=workflow_id)
        .order_by("lead_id", "id")
        .values_list("lead_id", "from_node_id", "to_node_id", "reason", "metadata")
    ):
        history[row[0]].append(row[1:])
    return history


def assert_history_contiguous(workflow_id: int) -> dict[int, list[tuple]]:
    """Per lead: first row from None to the entry; each row's from is the previous row's to;
    the last row's to is where the execution is."""
    entry = Node.objects.get(workflow_id=workflow_id, type="entry").pk
    history = history_by_lead(workflow_id)
    at = dict(
        LeadExecution.objects.filter(workflow_id=workflow_id).values_list("lead_id", "node_id")
    )
    assert set(history) == set(at), "leads with history but no execution, or the reverse"
    broken = []
    for lead_id, rows in history.items():
        expected_from = None
        for i, (from_node, to_node, _reason, _meta) in enumerate(rows):
            if from_node != expected_from or (i == 0 and to_node != entry):
                broken.append((lead_id, i, rows))
                break
            expected_from = to_node
        else:
            if expected_from != at[lead_id]:
                broken.append((lead_id, "end", rows))
    assert not broken, f"{len(broken)} leads with a broken history, e.g. {broken[:3]}"
    return history


def assert_calls_sound(workflow_id: int) -> list[dict]:
    """No lead got two calls for one (node, visit); every call ended and was routed exactly
    once (one call_routed or call_review history row naming it)."""
    calls = list(
        CallLog.objects.filter(workflow_id=workflow_id).values(
            "id", "lead_id", "node_id", "visit", "status", "routed_at"
        )
    )
    per_visit = Counter((c["lead_id"], c["node_id"], c["visit"]) for c in calls)
    assert max(per_visit.values(), default=1) == 1, "two calls for one node visit"
    not_final = [c for c in calls if not CallStatus(c["status"]).is_final]
    assert not not_final, f"{len(not_final)} calls never ended: {not_final[:3]}"
    assert not [c for c in calls if c["routed_at"] is None], "calls ended but never routed"
    routed = Counter(
        meta["call_id"]
        for meta in LeadTransition.objects.filter(
            lead__workflow_id=workflow_id, reason__in=ROUTING_REASONS
        ).values_list("metadata", flat=True)
    )
    assert set(routed) == {c["id"] for c in calls}, "a call was never routed, or unknown"
    twice = {call_id: n for call_id, n in routed.items() if n != 1}
    assert not twice, f"calls routed more than once: {list(twice.items())[:5]}"
    return calls


def assert_no_failed_tasks() -> None:
    failed = list(
        DBTaskResult.objects.filter(status="FAILED").values_list("task_path", "traceback")[:3]
    )
    assert not failed, "background tasks failed:\n" + "\n".join(f"{p}\n{tb}" for p, tb in failed)


def tick_results() -> list[tuple[list[str], str, dict | None]]:
    return list(
        DBTaskResult.objects.filter(task_path="engine.ticks.engine_tick")
        .filter(~Q(status="READY"))
        .values_list("worker_ids", "status", "return_value")
    )
