"""Who may see and do what over the API (SPEC 1 and 7): anonymous callers are 401, another
workspace's objects are 404, agents read everything and change nothing (403)."""

import json

import pytest
import yaml
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from calls.models import CallEvent, CallLog, CallStatus
from leads.models import Lead, LeadExecution, LeadTransition, TransitionReason
from tests.factories import LeadFactory, WorkflowFactory, with_simple_graph
from workflows.models import Edge, Node, Workflow, WorkflowEvent
from workflows.statuses import WorkflowStatus

S = WorkflowStatus

NEW_GRAPH = {
    "nodes": [
        {"key": "in", "type": "entry"},
        {"key": "done", "type": "converted"},
    ],
    "edges": [{"source": "in", "target": "done"}],
}


def set_status(pk: int, status) -> None:
    Workflow.objects.filter(pk=pk).update(status=status)


def _populate(workflow) -> dict:
    """An active workflow: a graph, a lead with an execution and history, a call with an event."""
    with_simple_graph(workflow)
    set_status(workflow.pk, S.ACTIVE)
    call_node = workflow.nodes.get(key="call")
    lead = LeadFactory(workflow=workflow)
    now = timezone.now()
    LeadExecution.objects.create(
        lead=lead, workflow=workflow, node=call_node, entered_at=now, status="active"
    )
    LeadTransition.objects.create(
        lead=lead,
        to_node=workflow.nodes.get(key="start"),
        reason=TransitionReason.STARTED,
        message="Started.",
        created_at=now,
    )
    call = CallLog.objects.create(
        lead=lead,
        workflow=workflow,
        node=call_node,
        visit=1,
        provider="simulator",
        to_number=lead.phone,
        status=CallStatus.CONNECTED,
    )
    CallEvent.objects.create(call=call, event_id="e1", status="connected", occurred_at=now)
    return {"workflow": workflow.pk, "lead": lead.pk, "call": call.pk}


@pytest.fixture
def mine(workspace):
    return _populate(WorkflowFactory(workspace=workspace, name="Busy campaign"))


@pytest.fixture
def fresh(workflow):
    """A workflow to change: the simple graph and one pending lead; no activity yet."""
    with_simple_graph(workflow)
    LeadFactory(workflow=workflow)
    return {"workflow": workflow.pk}


@pytest.fixture
def theirs(other_workspace):
    return _populate(WorkflowFactory(workspace=other_workspace, name="Their campaign"))


READS = [
    "/v1/workflows/{workflow}",
    "/v1/workflows/{workflow}/graph",
    "/v1/workflows/{workflow}/counts",
    "/v1/workflows/{workflow}/leads",
    "/v1/leads/{lead}",
    "/v1/leads/{lead}/history",
    "/v1/calls/{call}",
]

# (method, path, body, status the workflow must be in for a manager to succeed)
WRITES = [
    ("patch", "/v1/workflows/{workflow}", {"name": "Renamed"}, S.DRAFT),
    ("delete", "/v1/workflows/{workflow}", None, S.DRAFT),
    ("put", "/v1/workflows/{workflow}/graph", NEW_GRAPH, S.DRAFT),
    ("post", "/v1/workflows/{workflow}/activate", None, S.DRAFT),
    ("post", "/v1/workflows/{workflow}/pause", None, S.ACTIVE),
    ("post", "/v1/workflows/{workflow}/resume", None, S.PAUSED),
    ("post", "/v1/workflows/{workflow}/cancel", None, S.ACTIVE),
    ("post", "/v1/workflows/{workflow}/duplicate", None, S.PAUSED),
    ("post", "/v1/workflows/{workflow}/leads", [{"phone": "(202) 555-0143"}], S.ACTIVE),
]
WRITE_IDS = [f"{method}-{path.rsplit('}', 1)[-1] or '/'}" for method, path, _, _ in WRITES]


def call(client, method: str, path: str, body=None):
    if body is None:
        return getattr(client, method)(path)
    return getattr(client, method)(path, body, format="json")


def snapshot() -> dict:
    """Everything an API write could change."""
    return {
        "workflows": list(Workflow.objects.order_by("id").values()),
        "nodes": list(Node.objects.order_by("id").values()),
        "edges": list(Edge.objects.order_by("id").values()),
        "leads": list(Lead.objects.order_by("id").values()),
        "executions": list(LeadExecution.objects.order_by("id").values()),
        "history": LeadTransition.objects.count(),
        "events": WorkflowEvent.objects.count(),
        "tasks": DBTaskResult.objects.count(),
    }


# --- anonymous ------------------------------------------------------------------------------


ANON_CASES = [
    ("get", "/v1/workflows", None),
    ("post", "/v1/workflows", {"name": "Anon"}),
    *[("get", path, None) for path in READS],
    *[(method, path, body) for method, path, body, _ in WRITES],
]


@pytest.mark.parametrize(
    ("method", "path", "body"), ANON_CASES, ids=[f"{m}-{p}" for m, p, _ in ANON_CASES]
)
def test_anonymous_callers_get_401_and_change_nothing(anon_api, mine, method, path, body):
    before = snapshot()

    response = call(anon_api, method, path.format(**mine), body)

    assert response.status_code == 401
    body = response.json()
    assert set(body) == {"error", "detail"}
    assert body["error"] == "not_authenticated"
    assert body["detail"] == "Authentication credentials were not provided."
    assert response["WWW-Authenticate"] == "Token"
    assert snapshot() == before


def test_a_wrong_token_is_401(anon_api, mine):
    anon_api.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")

    response = anon_api.get(f"/v1/workflows/{mine['workflow']}")

    assert response.status_code == 401
    assert response.json()["error"] == "authentication_failed"


# --- another workspace ----------------------------------------------------------------------


@pytest.mark.parametrize("path", READS)
def test_another_workspaces_objects_are_404_to_read(outsider_api, mine, theirs, path):
    response = outsider_api.get(path.format(**mine))

    assert response.status_code == 404
    assert response.json() == {
        "error": "not_found",
        "detail": "Not found (or not in your workspaces).",
    }
    # The same path with the caller's own ids works: it is the scope, not the path.
    assert outsider_api.get(path.format(**theirs)).status_code == 200


@pytest.mark.parametrize(("method", "path", "body", "status"), WRITES, ids=WRITE_IDS)
def test_another_workspaces_objects_are_404_to_change_and_stay_unchanged(
    outsider_api, fresh, theirs, method, path, body, status
):
    set_status(fresh["workflow"], status)
    before = snapshot()

    response = call(outsider_api, method, path.format(**fresh), body)

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    assert snapshot() == before


@pytest.mark.parametrize("client", ["manager_api", "agent_api"])
@pytest.mark.parametrize("path", READS)
def test_the_workspace_members_cannot_see_the_other_workspace_either(
    request, mine, theirs, client, path
):
    response = request.getfixturevalue(client).get(path.format(**theirs))

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_lists_only_show_the_callers_workspaces(manager_api, agent_api, outsider_api, mine, theirs):
    for client, visible, hidden in [
        (manager_api, mine, theirs),
        (agent_api, mine, theirs),
        (outsider_api, theirs, mine),
    ]:
        ids = [w["id"] for w in client.get("/v1/workflows").json()["results"]]
        assert ids == [visible["workflow"]]
        assert hidden["workflow"] not in ids


def test_a_manager_creates_in_their_own_workspace_only(
    outsider_api, outsider, other_workspace, workspace, mine
):
    response = outsider_api.post(
        "/v1/workflows", {"name": "Mine", "workspace_id": workspace.pk}, format="json"
    )

    assert response.status_code == 403
    assert response.json()["error"] == "permission_denied"
    assert not Workflow.objects.filter(name="Mine").exists()

    response = outsider_api.post("/v1/workflows", {"name": "Mine"}, format="json")

    assert response.status_code == 201, response.content
    assert Workflow.objects.get(name="Mine").workspace == other_workspace


# --- agents ---------------------------------------------------------------------------------


def test_agents_read_the_list_like_managers(manager_api, agent_api, mine):
    as_agent = agent_api.get("/v1/workflows")

    assert as_agent.status_code == 200
    assert as_agent.json() == manager_api.get("/v1/workflows").json()


@pytest.mark.parametrize("path", READS)
def test_agents_read_everything_managers_read(manager_api, agent_api, mine, path):
    url = path.format(**mine)

    as_agent = agent_api.get(url)

    assert as_agent.status_code == 200
    assert as_agent.json() == manager_api.get(url).json()


def test_agents_see_lead_filters_and_history(agent_api, mine):
    leads = agent_api.get(
        f"/v1/workflows/{mine['workflow']}/leads", {"status": "active", "node": "call"}
    ).json()
    assert [lead["id"] for lead in leads["results"]] == [mine["lead"]]
    history = agent_api.get(f"/v1/leads/{mine['lead']}/history").json()
    assert [(h["from_node"], h["to_node"]) for h in history] == [(None, "start")]
    call_body = agent_api.get(f"/v1/calls/{mine['call']}").json()
    assert [e["event_id"] for e in call_body["events"]] == ["e1"]


@pytest.mark.parametrize(("method", "path", "body", "status"), WRITES, ids=WRITE_IDS)
def test_agents_get_403_on_every_write_and_nothing_changes(
    agent_api, manager_api, fresh, method, path, body, status
):
    set_status(fresh["workflow"], status)
    before = snapshot()
    url = path.format(**fresh)

    response = call(agent_api, method, url, body)

    assert response.status_code == 403
    assert response.json() == {
        "error": "permission_denied",
        "detail": "Only the workspace's campaign managers can do this; agents can only read.",
    }
    assert snapshot() == before
    # The same request from a manager succeeds: the role, not the state, refused it.
    assert call(manager_api, method, url, body).status_code in (200, 201, 204)
    assert snapshot() != before


def test_agents_cannot_create_workflows(agent_api, mine):
    before = snapshot()

    response = agent_api.post("/v1/workflows", {"name": "Agent's own"}, format="json")

    assert response.status_code == 403
    body = response.json()
    assert body["error"] == "permission_denied"
    assert "manager" in body["detail"]
    assert snapshot() == before


# --- schema ---------------------------------------------------------------------------------


WORKFLOW_PATHS = {
    "/v1/workflows",
    "/v1/workflows/{id}",
    "/v1/workflows/{id}/graph",
    "/v1/workflows/{id}/activate",
    "/v1/workflows/{id}/pause",
    "/v1/workflows/{id}/resume",
    "/v1/workflows/{id}/cancel",
    "/v1/workflows/{id}/duplicate",
    "/v1/workflows/{id}/counts",
    "/v1/workflows/{id}/leads",
    "/v1/leads/{id}",
    "/v1/leads/{id}/history",
    "/v1/calls/{id}",
}


def test_schema_is_an_openapi_3_document_listing_the_workflow_paths(manager_api):
    response = manager_api.get("/v1/schema", {"format": "json"})

    assert response.status_code == 200
    assert "openapi" in response["Content-Type"]
    document = json.loads(response.content)
    assert document["openapi"].startswith("3.")
    assert document["info"]["title"] == "DialNexa workflows API"
    assert set(document["paths"]) >= WORKFLOW_PATHS
    assert set(document["paths"]["/v1/workflows"]) >= {"get", "post"}
    assert set(document["paths"]["/v1/workflows/{id}"]) >= {"get", "patch", "delete"}
    assert set(document["paths"]["/v1/workflows/{id}/graph"]) >= {"get", "put"}
    for action in ("activate", "pause", "resume", "cancel", "duplicate"):
        assert "post" in document["paths"][f"/v1/workflows/{{id}}/{action}"]
    assert set(document["paths"]["/v1/workflows/{id}/leads"]) >= {"get", "post"}


def test_schema_default_rendering_is_openapi_yaml(manager_api):
    response = manager_api.get("/v1/schema")

    assert response.status_code == 200
    document = yaml.safe_load(response.content)
    assert str(document["openapi"]).startswith("3.")
    assert set(document["paths"]) >= WORKFLOW_PATHS
