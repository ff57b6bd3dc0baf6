"""Runtime (SPEC 8): production settings, environment readers and the demo command."""

import os
import secrets
import string
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from rest_framework.authtoken.models import Token

from dialnexa.env import env_bool, env_choice, env_float, env_int, env_list
from leads.models import Lead
from workflows.graph_store import check_graph
from workflows.models import Membership, Role, Workflow, Workspace

REPO_ROOT = Path(__file__).resolve().parent.parent

# Settings that would change what the production checks see: a developer's shell or CI may set
# them, the production run must not inherit them.
_LEAKY = (
    "DJANGO_SETTINGS_MODULE",
    "SECRET_KEY",
    "DIALNEXA_WEBHOOK_SECRET",
    "DEBUG",
    "ALLOWED_HOSTS",
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    # Set by tests/conftest.py for the browser tests; never set in a deployment.
    "DJANGO_ALLOW_ASYNC_UNSAFE",
)


def _random_key(length: int = 60) -> str:
    alphabet = string.ascii_letters + string.digits + "!@#%^&*(-_=+)"
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k not in _LEAKY}
    environ["DJANGO_SETTINGS_MODULE"] = "dialnexa.settings_production"
    environ.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO_ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


# --- production settings --------------------------------------------------------------------


def test_check_deploy_passes_with_production_settings():
    result = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        SECRET_KEY=_random_key(),
        DIALNEXA_WEBHOOK_SECRET="webhook-" + secrets.token_hex(16),
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_is_not_vacuous_debug_on_is_reported():
    """The same command does fail on a real problem, so its pass above means something."""
    result = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        SECRET_KEY=_random_key(),
        DIALNEXA_WEBHOOK_SECRET="webhook-secret",
        DEBUG="true",
    )

    assert result.returncode != 0
    assert "security.W018" in result.stderr + result.stdout


@pytest.mark.parametrize("missing", ["SECRET_KEY", "DIALNEXA_WEBHOOK_SECRET"])
@pytest.mark.parametrize("value", [None, ""])
def test_production_settings_without_a_secret_fail_loudly(missing, value):
    env = {"SECRET_KEY": _random_key(), "DIALNEXA_WEBHOOK_SECRET": "webhook-secret"}
    if value is None:
        del env[missing]
    else:
        env[missing] = value

    result = _manage("check", **env)

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert f"{missing} must be set" in result.stderr


def test_production_settings_reject_an_unreadable_value():
    result = _manage(
        "check",
        SECRET_KEY=_random_key(),
        DIALNEXA_WEBHOOK_SECRET="webhook-secret",
        SECURE_HSTS_SECONDS="one year",
    )

    assert result.returncode != 0
    assert "SECURE_HSTS_SECONDS='one year' is not an integer" in result.stderr


# --- environment readers --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", True),
        ("true", True),
        ("TRUE", True),
        (" yes ", True),
        ("on", True),
        ("0", False),
        ("false", False),
        ("No", False),
        ("off", False),
        ("", False),
    ],
)
def test_env_bool_reads_good_values(monkeypatch, raw, expected):
    monkeypatch.setenv("DIALNEXA_TEST_FLAG", raw)

    assert env_bool("DIALNEXA_TEST_FLAG", default=not expected) is expected


@pytest.mark.parametrize("raw", ["2", "ture", "y", "enabled", "True!"])
def test_env_bool_refuses_bad_values(monkeypatch, raw):
    monkeypatch.setenv("DIALNEXA_TEST_FLAG", raw)

    with pytest.raises(ImproperlyConfigured, match=r"DIALNEXA_TEST_FLAG.*is not a boolean"):
        env_bool("DIALNEXA_TEST_FLAG")


@pytest.mark.parametrize("default", [True, False])
def test_env_bool_unset_uses_the_default(monkeypatch, default):
    monkeypatch.delenv("DIALNEXA_TEST_FLAG", raising=False)

    assert env_bool("DIALNEXA_TEST_FLAG", default=default) is default


@pytest.mark.parametrize(("raw", "expected"), [("42", 42), ("-3", -3), ("0", 0), (" 7 ", 7)])
def test_env_int_reads_good_values(monkeypatch, raw, expected):
    monkeypatch.setenv("DIALNEXA_TEST_INT", raw)

    assert env_int("DIALNEXA_TEST_INT", 99) == expected


@pytest.mark.parametrize("raw", ["forty", "4.5", "1e3", "0x10", "12abc"])
def test_env_int_refuses_bad_values(monkeypatch, raw):
    monkeypatch.setenv("DIALNEXA_TEST_INT", raw)

    with pytest.raises(ImproperlyConfigured, match=r"DIALNEXA_TEST_INT.*is not an integer"):
        env_int("DIALNEXA_TEST_INT", 99)


@pytest.mark.parametrize("raw", [None, "", "   "])
def test_env_int_unset_or_blank_uses_the_default(monkeypatch, raw):
    if raw is None:
        monkeypatch.delenv("DIALNEXA_TEST_INT", raising=False)
    else:
        monkeypatch.setenv("DIALNEXA_TEST_INT", raw)

    assert env_int("DIALNEXA_TEST_INT", 99) == 99


def test_env_float_reads_and_refuses(monkeypatch):
    monkeypatch.setenv("DIALNEXA_TEST_FLOAT", "0.25")
    assert env_float("DIALNEXA_TEST_FLOAT", 3.0) == 0.25

    monkeypatch.setenv("DIALNEXA_TEST_FLOAT", "fast")
    with pytest.raises(ImproperlyConfigured, match=r"DIALNEXA_TEST_FLOAT.*is not a number"):
        env_float("DIALNEXA_TEST_FLOAT", 3.0)


def test_env_list_splits_and_trims(monkeypatch):
    monkeypatch.setenv("DIALNEXA_TEST_LIST", " a.example.com, ,b.example.com ")

    assert env_list("DIALNEXA_TEST_LIST", ["x"]) == ["a.example.com", "b.example.com"]


@pytest.mark.parametrize("raw", ["simulator", "http"])
def test_env_choice_reads_good_values(monkeypatch, raw):
    monkeypatch.setenv("DIALNEXA_TEST_CHOICE", raw)

    assert env_choice("DIALNEXA_TEST_CHOICE", "simulator", {"simulator", "http"}) == raw


@pytest.mark.parametrize("raw", ["twilio", "HTTP", "", "simulator "])
def test_env_choice_refuses_bad_values(monkeypatch, raw):
    monkeypatch.setenv("DIALNEXA_TEST_CHOICE", raw)

    with pytest.raises(ImproperlyConfigured) as refused:
        env_choice("DIALNEXA_TEST_CHOICE", "simulator", {"simulator", "http"})
    # The message names the variable, the bad value and what would have been accepted.
    assert "DIALNEXA_TEST_CHOICE" in str(refused.value)
    assert repr(raw) in str(refused.value)
    assert "['http', 'simulator']" in str(refused.value)


def test_env_choice_unset_uses_the_default(monkeypatch):
    monkeypatch.delenv("DIALNEXA_TEST_CHOICE", raising=False)

    assert env_choice("DIALNEXA_TEST_CHOICE", "http", {"simulator", "http"}) == "http"


# --- the demo command -----------------------------------------------------------------------


def _demo() -> str:
    out = StringIO()
    call_command("demo", stdout=out)
    return out.getvalue()


def _counts() -> dict[str, int]:
    return {
        "users": get_user_model().objects.count(),
        "workspaces": Workspace.objects.count(),
        "memberships": Membership.objects.count(),
        "workflows": Workflow.objects.count(),
        "leads": Lead.objects.count(),
        "tokens": Token.objects.count(),
    }


def _role(username: str, workspace: str) -> str:
    return Membership.objects.get(user__username=username, workspace__name=workspace).role


@pytest.mark.django_db
def test_demo_creates_workspaces_users_workflow_and_leads(settings):
    settings.DIALNEXA_DEMO_PASSWORD = "demo-pass-for-tests"

    output = _demo()

    User = get_user_model()
    assert set(Workspace.objects.values_list("name", flat=True)) == {"Demo", "Other team"}
    assert _role("manager", "Demo") == Role.MANAGER
    assert _role("agent", "Demo") == Role.AGENT
    assert _role("outsider", "Other team") == Role.MANAGER
    assert not Membership.objects.filter(user__username="outsider", workspace__name="Demo")
    assert not Membership.objects.filter(
        workspace__name="Other team", user__username__in=["manager", "agent", "admin"]
    )
    admin = User.objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff
    for username in ("manager", "agent", "outsider"):
        user = User.objects.get(username=username)
        assert not user.is_superuser and not user.is_staff, username
    for username in ("manager", "agent", "admin", "outsider"):
        assert User.objects.get(username=username).check_password("demo-pass-for-tests")

    workflow = Workflow.objects.get(name="Demo outreach")
    assert workflow.workspace.name == "Demo"
    assert workflow.status == "draft"
    assert workflow.leads.count() == 50
    assert workflow.leads.values("phone").distinct().count() == 50
    report = check_graph(workflow)
    assert report.errors == []
    assert report.warnings == []  # every Voice Call output is wired, and it has leads
    assert report.is_valid

    # The logins are printed: each user with its API token, and the password.
    assert "password: demo-pass-for-tests" in output
    for username in ("manager", "agent", "admin", "outsider"):
        token = Token.objects.get(user__username=username).key
        assert f"{username}" in output and token in output, username
    assert "created workspace Demo" in output
    assert "created workflow 'Demo outreach' (draft) with 50 leads" in output
    assert "nothing changed" not in output


@pytest.mark.django_db
def test_demo_default_password_is_printed(settings):
    assert settings.DIALNEXA_DEMO_PASSWORD  # the embedded default has one

    output = _demo()

    password = settings.DIALNEXA_DEMO_PASSWORD
    assert f"password: {password}" in output
    assert get_user_model().objects.get(username="manager").check_password(password)


@pytest.mark.django_db
def test_demo_twice_changes_nothing(settings):
    settings.DIALNEXA_DEMO_PASSWORD = "first-password"
    _demo()
    before = _counts()
    manager = get_user_model().objects.get(username="manager")
    manager.set_password("changed-by-the-user")
    manager.save()
    tokens = dict(Token.objects.values_list("user__username", "key"))
    workflow = Workflow.objects.get(name="Demo outreach")
    lead_ids = set(workflow.leads.values_list("id", flat=True))

    settings.DIALNEXA_DEMO_PASSWORD = "second-password"
    output = _demo()

    assert _counts() == before
    assert before["leads"] == 50 and before["workflows"] == 1
    assert before["users"] == 4 and before["memberships"] == 4
    manager.refresh_from_db()
    assert manager.check_password("changed-by-the-user")
    assert not manager.check_password("second-password")
    assert get_user_model().objects.get(username="agent").check_password("first-password")
    assert dict(Token.objects.values_list("user__username", "key")) == tokens
    assert set(Workflow.objects.get(pk=workflow.pk).leads.values_list("id", flat=True)) == (
        lead_ids
    )
    assert "nothing changed" in output
    assert "created" not in output


@pytest.mark.django_db
def test_demo_leaves_an_edited_demo_alone():
    """What exists is not repaired back to the demo's version: roles and the workflow stay."""
    _demo()
    Membership.objects.filter(user__username="agent").update(role=Role.MANAGER)
    workflow = Workflow.objects.get(name="Demo outreach")
    workflow.leads.filter(pk__in=workflow.leads.values("pk")[:10]).delete()
    workflow.status = "cancelled"
    workflow.save()

    output = _demo()

    assert _role("agent", "Demo") == Role.MANAGER
    workflow.refresh_from_db()
    assert workflow.status == "cancelled"
    assert workflow.leads.count() == 40
    assert Workflow.objects.count() == 1
    assert "nothing changed" in output


@pytest.mark.django_db
def test_demo_fills_in_only_what_is_missing(settings):
    settings.DIALNEXA_DEMO_PASSWORD = "demo-pass-for-tests"
    _demo()
    get_user_model().objects.filter(username="outsider").delete()

    output = _demo()

    assert "created user outsider" in output
    assert "created workspace" not in output and "created workflow" not in output
    assert _role("outsider", "Other team") == Role.MANAGER
    assert Workflow.objects.count() == 1 and Lead.objects.count() == 50


def test_settings_default_demo_password_comes_from_the_environment():
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django, os; django.setup(); from django.conf import settings; "
            "print(settings.DIALNEXA_DEMO_PASSWORD)",
        ],
        cwd=REPO_ROOT,
        env={
            **{k: v for k, v in os.environ.items() if k not in _LEAKY},
            "DJANGO_SETTINGS_MODULE": "dialnexa.settings",
            "DIALNEXA_DEMO_PASSWORD": "from-the-env-123",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "from-the-env-123"
