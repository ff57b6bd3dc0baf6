import os

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.factories import MembershipFactory, UserFactory, WorkflowFactory, WorkspaceFactory
from workflows.models import Role


@pytest.fixture
def workspace(db):
    return WorkspaceFactory(name="Acme")


@pytest.fixture
def other_workspace(db):
    return WorkspaceFactory(name="Elsewhere")


@pytest.fixture
def manager(workspace):
    user = UserFactory(username="alice")
    MembershipFactory(user=user, workspace=workspace, role=Role.MANAGER)
    return user


@pytest.fixture
def agent(workspace):
    user = UserFactory(username="bob")
    MembershipFactory(user=user, workspace=workspace, role=Role.AGENT)
    return user


@pytest.fixture
def outsider(other_workspace):
    user = UserFactory(username="charlie")
    MembershipFactory(user=user, workspace=other_workspace, role=Role.MANAGER)
    return user


def _client_for(user) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def manager_api(manager):
    return _client_for(manager)


@pytest.fixture
def agent_api(agent):
    return _client_for(agent)


@pytest.fixture
def outsider_api(outsider):
    return _client_for(outsider)


@pytest.fixture
def anon_api():
    return APIClient()


@pytest.fixture
def workflow(workspace):
    return WorkflowFactory(workspace=workspace, name="Spring campaign")


# --- browser tests (Playwright driving Debian's Chromium) -------------------------------------

# live_server runs Django in a thread while Playwright's sync API owns an event loop.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {
        **browser_type_launch_args,
        "executable_path": "/usr/bin/chromium",
        "args": [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ],
    }
