"""REST API v1, workflows (SPEC 7, with the statuses of SPEC 2 and the actions of SPEC 4)."""

from datetime import time
from urllib.parse import parse_qs, urlparse

import pytest
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from leads.models import ExecutionStatus, Lead, LeadExecution
from tests.factories import (
    LeadFactory,
    WorkflowFactory,
    add_leads,
    drain_tasks,
    with_simple_graph,
)
from workflows.graph import EdgeSpec, NodeSpec
from workflows.graph_store import replace_graph
from workflows.models import Edge, Node, Workflow, WorkflowEvent
from workflows.statuses import WorkflowStatus, allowed_actions

S = WorkflowStatus

WORKFLOW_FIELDS = {
    # SPEC 7 names these; the rest are the "..." of the contract.
    "id",
    "name",
    "status",
    "timezone",
    "max_concurrent_calls",
    "calling_window",
    "created_at",
    "activated_at",
    # Extras the API documents and the tests rely on.
    "workspace_id",
    "legacy_status",
    "allowed_actions",
    "duplicated_from_id",
    "updated_at",
    "paused_at",
    "completed_at",
    "cancelled_at",
}
ALL_DAYS = [0, 1, 2, 3, 4, 5, 6]

NEW_GRAPH = {
    "nodes": [
        {"key": "begin", "type": "entry", "name": "Begin", "config": {}},
        {"key": "wait", "type": "time", "name": "Wait 2h", "config": {"delay_seconds": 7200}},
        {
            "key": "crm",
            "type": "application",
            "name": "CRM",
            "config": {"url": "https://crm.example.com/hook", "timeout_seconds": 10},
        },
        {"key": "dial", "type": "voice_call", "name": "Dial", "config": {"script": "Hi"}},
        {"key": "yes", "type": "converted", "name": "Yes", "config": {}},
        {"key": "no", "type": "dropped", "name": "No", "config": {}},
    ],
    "edges": [
        {"source": "begin", "target": "wait", "branch": None},
        {"source": "wait", "target": "crm", "branch": None},
        {"source": "crm", "target": "dial", "branch": None},
        {"source": "dial", "target": "yes", "branch": "COMPLETED"},
        {"source": "dial", "target": "no", "branch": "DNP"},
        {"source": "dial", "target": "no", "branch": "FAILED"},
    ],
}

SIMPLE_GRAPH_NODES = [
    {"key": "start", "type": "entry", "name": "Start", "config": {}},
    {"key": "call", "type": "voice_call", "name": "Call 1", "config": {}},
    {"key": "won", "type": "converted", "name": "Won", "config": {}},
    {"key": "lost", "type": "dropped", "name": "Lost", "config": {}},
]
SIMPLE_GRAPH_EDGES = [
    {"source": "start", "target": "call", "branch": None},
    {"source": "call", "target": "won", "branch": "COMPLETED"},
    {"source": "call", "target": "lost", "branch": "DNP"},
    {"source": "call", "target": "lost", "branch": "FAILED"},
]


def url(workflow, suffix: str = "") -> str:
    return f"/v1/workflows/{workflow.pk}{suffix}"


def set_status(workflow, status) -> None:
    Workflow.objects.filter(pk=workflow.pk).update(status=status)
    workflow.refresh_from_db()


def graph_rows(workflow) -> tuple[list, list]:
    nodes = list(
        Node.objects.filter(workflow=workflow).order_by("id").values_list("key", "type", "config")
    )
    edges = list(
        Edge.objects.filter(workflow=workflow)
        .order_by("id")
        .values_list("source__key", "target__key", "branch")
    )
    return nodes, edges


def workflow_row(workflow) -> dict:
    return Workflow.objects.filter(pk=workflow.pk).values().get()


def assert_error(response, code: int, error: str) -> dict:
    assert response.status_code == code, response.content
    body = response.json()
    assert body["error"] == error
    assert isinstance(body["detail"], str) and body["detail"]
    return body


# --- list -----------------------------------------------------------------------------------


def test_list_is_cursor_paginated_newest_first_and_only_shows_the_callers_workspaces(
    manager_api, workflow, workspace, other_workspace
):
    second = WorkflowFactory(workspace=workspace, name="Summer")
    third = WorkflowFactory(workspace=workspace, name="Autumn")
    foreign = WorkflowFactory(workspace=other_workspace, name="Not yours")

    first_page = manager_api.get("/v1/workflows", {"page_size": 2})

    assert first_page.status_code == 200
    body = first_page.json()
    assert set(body) == {"next", "previous", "results"}
    assert [w["id"] for w in body["results"]] == [third.pk, second.pk]
    assert body["previous"] is None
    assert body["next"] is not None
    assert "cursor" in parse_qs(urlparse(body["next"]).query)
    assert set(body["results"][0]) >= WORKFLOW_FIELDS

    second_page = manager_api.get(body["next"]).json()
    assert [w["id"] for w in second_page["results"]] == [workflow.pk]
    assert second_page["next"] is None
    assert second_page["previous"] is not None

    everything = manager_api.get("/v1/workflows").json()
    ids = [w["id"] for w in everything["results"]]
    assert ids == [third.pk, second.pk, workflow.pk]
    assert foreign.pk not in ids
    assert {w["workspace_id"] for w in everything["results"]} == {workspace.pk}


def test_list_reads_legacy_running_as_active(manager_api, workflow):
    set_status(workflow, S.RUNNING)

    row = manager_api.get("/v1/workflows").json()["results"][0]

    assert row["id"] == workflow.pk
    assert row["status"] == "active"
    assert row["legacy_status"] == "running"


# --- create ---------------------------------------------------------------------------------


def test_create_returns_a_draft_in_the_managers_workspace(manager_api, manager, workspace):
    response = manager_api.post(
        "/v1/workflows",
        {
            "name": "Winter push",
            "timezone": "Europe/Paris",
            "max_concurrent_calls": 3,
            "calling_window": {"start": "08:30", "end": "18:00", "days": [4, 0, 0]},
        },
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) >= WORKFLOW_FIELDS
    assert body["name"] == "Winter push"
    assert body["status"] == "draft"
    assert body["legacy_status"] is None
    assert body["allowed_actions"] == ["activate", "cancel", "duplicate"]
    assert body["timezone"] == "Europe/Paris"
    assert body["max_concurrent_calls"] == 3
    assert body["calling_window"] == {"start": "08:30", "end": "18:00", "days": [0, 4]}
    assert body["workspace_id"] == workspace.pk
    assert body["activated_at"] is None
    stored = Workflow.objects.get(pk=body["id"])
    assert stored.status == S.DRAFT
    assert stored.workspace == workspace
    assert stored.created_by == manager
    assert (stored.window_start, stored.window_end, stored.window_days) == (
        time(8, 30),
        time(18, 0),
        [0, 4],
    )


def test_create_with_only_a_name_uses_the_defaults(manager_api, workspace):
    response = manager_api.post("/v1/workflows", {"name": "Plain"}, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "draft"
    assert body["timezone"] == "UTC"
    assert body["max_concurrent_calls"] == 10
    assert body["calling_window"] == {"start": "09:00", "end": "20:00", "days": ALL_DAYS}
    assert Workflow.objects.filter(pk=body["id"], workspace=workspace, status=S.DRAFT).exists()


@pytest.mark.parametrize("status", ["running", "draft", "active", "paused", "cancelled"])
def test_create_refuses_a_status_in_the_body(manager_api, workspace, status):
    response = manager_api.post(
        "/v1/workflows", {"name": "Sneaky", "status": status}, format="json"
    )

    body = assert_error(response, 400, "invalid")
    assert "status" in body
    assert "control actions" in body["detail"]
    assert not Workflow.objects.exists()


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "X", "timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"name": "X", "timezone": ""}, "timezone"),
        ({"name": "X", "calling_window": {"start": "18:00", "end": "09:00"}}, "calling_window"),
        ({"name": "X", "calling_window": {"start": "09:00", "end": "09:00"}}, "calling_window"),
        ({"name": "X", "calling_window": {"start": "9am", "end": "20:00"}}, "calling_window"),
        (
            {"name": "X", "calling_window": {"start": "09:00", "end": "20:00", "days": [7]}},
            "calling_window",
        ),
        ({"name": "X", "max_concurrent_calls": 0}, "max_concurrent_calls"),
        ({"name": ""}, "name"),
        ({"timezone": "UTC"}, "name"),
    ],
    ids=[
        "unknown-tz",
        "blank-tz",
        "window-start-after-end",
        "window-start-equals-end",
        "window-bad-time",
        "window-bad-day",
        "zero-concurrency",
        "blank-name",
        "no-name",
    ],
)
def test_create_refuses_bad_settings_and_stores_nothing(manager_api, workspace, payload, field):
    response = manager_api.post("/v1/workflows", payload, format="json")

    body = assert_error(response, 400, "invalid")
    assert field in body
    assert body["detail"].startswith(f"{field}:")
    assert not Workflow.objects.exists()


def test_create_window_error_says_start_must_be_before_end(manager_api, workspace):
    response = manager_api.post(
        "/v1/workflows",
        {"name": "X", "calling_window": {"start": "20:00", "end": "09:00"}},
        format="json",
    )

    body = assert_error(response, 400, "invalid")
    assert "start must be before end" in body["detail"]


# --- detail ---------------------------------------------------------------------------------


def test_get_detail_returns_the_workflow(manager_api, workflow, workspace):
    Workflow.objects.filter(pk=workflow.pk).update(
        timezone="America/New_York",
        max_concurrent_calls=4,
        window_start=time(10, 0),
        window_end=time(17, 30),
        window_days=[0, 1, 2, 3, 4],
    )

    response = manager_api.get(url(workflow))

    assert response.status_code == 200
    body = response.json()
    assert set(body) >= WORKFLOW_FIELDS
    assert body["id"] == workflow.pk
    assert body["workspace_id"] == workspace.pk
    assert body["name"] == "Spring campaign"
    assert body["status"] == "draft"
    assert body["timezone"] == "America/New_York"
    assert body["max_concurrent_calls"] == 4
    assert body["calling_window"] == {"start": "10:00", "end": "17:30", "days": [0, 1, 2, 3, 4]}
    assert body["activated_at"] is None
    # Times are ISO-8601 with an offset.
    created = body["created_at"]
    assert created.endswith("Z") or created[-6] in "+-"


def test_legacy_running_reads_as_active_with_legacy_status(manager_api, workflow):
    set_status(workflow, S.RUNNING)

    body = manager_api.get(url(workflow)).json()

    assert body["status"] == "active"
    assert body["legacy_status"] == "running"
    assert body["allowed_actions"] == ["pause", "cancel", "duplicate"]
    # Reading does not rewrite the legacy value.
    assert workflow_row(workflow)["status"] == "running"


@pytest.mark.parametrize("status", [S.DRAFT, S.ACTIVE, S.PAUSED, S.COMPLETED, S.CANCELLED])
def test_non_legacy_status_has_no_legacy_status(manager_api, workflow, status):
    set_status(workflow, status)

    body = manager_api.get(url(workflow)).json()

    assert body["status"] == status.value
    assert body["legacy_status"] is None
    assert body["allowed_actions"] == [a.value for a in allowed_actions(status)]


def test_patch_changes_the_settings(manager_api, workflow):
    response = manager_api.patch(
        url(workflow),
        {
            "name": "Spring campaign v2",
            "timezone": "Asia/Kolkata",
            "max_concurrent_calls": 25,
            "calling_window": {"start": "07:00", "end": "21:15", "days": [6, 5, 5]},
        },
        format="json",
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["name"] == "Spring campaign v2"
    assert body["timezone"] == "Asia/Kolkata"
    assert body["max_concurrent_calls"] == 25
    assert body["calling_window"] == {"start": "07:00", "end": "21:15", "days": [5, 6]}
    assert body["status"] == "draft"
    workflow.refresh_from_db()
    assert workflow.name == "Spring campaign v2"
    assert workflow.timezone == "Asia/Kolkata"
    assert workflow.max_concurrent_calls == 25
    assert (workflow.window_start, workflow.window_end, workflow.window_days) == (
        time(7, 0),
        time(21, 15),
        [5, 6],
    )


def test_patch_name_only_keeps_the_other_settings(manager_api, workflow):
    before = workflow_row(workflow)

    response = manager_api.patch(url(workflow), {"name": "Renamed"}, format="json")

    assert response.status_code == 200
    after = workflow_row(workflow)
    assert after["name"] == "Renamed"
    for field in ("timezone", "max_concurrent_calls", "window_start", "window_end", "status"):
        assert after[field] == before[field]


def test_patch_null_calling_window_means_any_time(manager_api, workflow):
    response = manager_api.patch(url(workflow), {"calling_window": None}, format="json")

    assert response.status_code == 200
    assert response.json()["calling_window"] is None
    workflow.refresh_from_db()
    assert workflow.window_start is None
    assert workflow.window_end is None
    assert workflow.calling_window is None


@pytest.mark.parametrize("status", ["running", "active", "paused", "draft"])
def test_patch_refuses_a_status_and_changes_nothing(manager_api, workflow, status):
    before = workflow_row(workflow)

    response = manager_api.patch(
        url(workflow), {"status": status, "name": "Changed"}, format="json"
    )

    body = assert_error(response, 400, "invalid")
    assert "status" in body
    assert workflow_row(workflow) == before


@pytest.mark.parametrize(
    "payload",
    [
        {"timezone": "Nowhere/Special"},
        {"calling_window": {"start": "12:00", "end": "11:59"}},
        {"max_concurrent_calls": -1},
        {"name": ""},
    ],
    ids=["bad-tz", "window-reversed", "negative-concurrency", "blank-name"],
)
def test_patch_refuses_bad_settings_and_changes_nothing(manager_api, workflow, payload):
    before = workflow_row(workflow)

    response = manager_api.patch(url(workflow), payload, format="json")

    body = assert_error(response, 400, "invalid")
    assert next(iter(payload)) in body
    assert workflow_row(workflow) == before


@pytest.mark.parametrize("window", [{"start": "10:00"}, {"end": "08:00"}], ids=["start", "end"])
def test_patch_with_half_a_calling_window_is_a_400_not_a_crash(manager_api, workflow, window):
    # BUG: CallingWindowSerializer.validate reads attrs["start"] / attrs["end"], which a
    # partial (PATCH) update leaves out: KeyError, a 500 instead of a 400.
    before = workflow_row(workflow)

    response = manager_api.patch(url(workflow), {"calling_window": window}, format="json")

    body = assert_error(response, 400, "invalid")
    assert "calling_window" in body
    assert workflow_row(workflow) == before


@pytest.mark.parametrize("status", [S.COMPLETED, S.CANCELLED])
def test_patch_of_a_final_workflow_is_409(manager_api, workflow, status):
    set_status(workflow, status)
    before = workflow_row(workflow)

    response = manager_api.patch(url(workflow), {"name": "Too late"}, format="json")

    body = assert_error(response, 409, "conflict")
    assert status.value in body["detail"]
    assert workflow_row(workflow) == before


def test_put_on_the_detail_is_405(manager_api, workflow):
    before = workflow_row(workflow)

    response = manager_api.put(url(workflow), {"name": "Whole", "timezone": "UTC"}, format="json")

    body = assert_error(response, 405, "method_not_allowed")
    assert "PATCH" in body["detail"]
    assert workflow_row(workflow) == before


def test_delete_a_draft_is_204_and_removes_it_with_its_graph_and_leads(manager_api, workflow):
    with_simple_graph(workflow)
    add_leads(workflow, 3)

    response = manager_api.delete(url(workflow))

    assert response.status_code == 204
    assert response.content == b""
    assert not Workflow.objects.filter(pk=workflow.pk).exists()
    assert not Node.objects.filter(workflow_id=workflow.pk).exists()
    assert not Lead.objects.filter(workflow_id=workflow.pk).exists()
    assert manager_api.get(url(workflow)).status_code == 404


@pytest.mark.parametrize("status", [S.ACTIVE, S.PAUSED, S.RUNNING, S.COMPLETED, S.CANCELLED])
def test_delete_outside_draft_is_409_and_keeps_the_workflow(manager_api, workflow, status):
    with_simple_graph(workflow)
    set_status(workflow, status)

    response = manager_api.delete(url(workflow))

    body = assert_error(response, 409, "conflict")
    assert set(body) == {"error", "detail"}
    assert "draft" in body["detail"]
    assert workflow_row(workflow)["status"] == status.value
    assert Node.objects.filter(workflow=workflow).count() == 4


def test_unknown_workflow_is_404(manager_api, workflow):
    for path in ("", "/graph", "/counts", "/leads"):
        response = manager_api.get(f"/v1/workflows/{workflow.pk + 1000}{path}")
        assert_error(response, 404, "not_found")
    assert_error(manager_api.get("/v1/workflows/not-a-number"), 404, "not_found")


# --- graph ----------------------------------------------------------------------------------


def test_graph_get_returns_nodes_edges_problems_and_warnings(manager_api, workflow):
    with_simple_graph(workflow)

    response = manager_api.get(url(workflow, "/graph"))

    assert response.status_code == 200
    body = response.json()
    assert body["nodes"] == SIMPLE_GRAPH_NODES
    assert body["edges"] == SIMPLE_GRAPH_EDGES
    assert body["problems"] == []
    assert body["warnings"] == [{"node": None, "message": "The workflow has no leads yet."}]


def test_graph_get_of_an_empty_workflow_lists_the_missing_entry(manager_api, workflow):
    body = manager_api.get(url(workflow, "/graph")).json()

    assert body["nodes"] == []
    assert body["edges"] == []
    assert len(body["problems"]) == 1
    assert body["problems"][0]["node"] is None
    assert "no entry node" in body["problems"][0]["message"]


def test_graph_put_replaces_the_whole_graph(manager_api, workflow):
    with_simple_graph(workflow)
    add_leads(workflow, 1)

    response = manager_api.put(url(workflow, "/graph"), NEW_GRAPH, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["nodes"] == NEW_GRAPH["nodes"]
    assert body["edges"] == NEW_GRAPH["edges"]
    assert body["problems"] == []
    assert body["warnings"] == []
    nodes, edges = graph_rows(workflow)
    assert [key for key, _, _ in nodes] == ["begin", "wait", "crm", "dial", "yes", "no"]
    assert ("wait", "time", {"delay_seconds": 7200}) in nodes
    assert edges == [(e["source"], e["target"], e["branch"]) for e in NEW_GRAPH["edges"]]
    # The old graph is gone, not merged.
    assert not Node.objects.filter(workflow=workflow, key__in=["start", "call"]).exists()
    # What GET reads back is what PUT stored.
    again = manager_api.get(url(workflow, "/graph")).json()
    assert (again["nodes"], again["edges"]) == (NEW_GRAPH["nodes"], NEW_GRAPH["edges"])


def test_graph_put_defaults_name_to_key_and_config_to_empty(manager_api, workflow):
    graph = {
        "nodes": [{"key": "in", "type": "entry"}, {"key": "out", "type": "converted"}],
        "edges": [{"source": "in", "target": "out"}],
    }

    body = manager_api.put(url(workflow, "/graph"), graph, format="json").json()

    assert body["nodes"] == [
        {"key": "in", "type": "entry", "name": "in", "config": {}},
        {"key": "out", "type": "converted", "name": "out", "config": {}},
    ]
    assert body["edges"] == [{"source": "in", "target": "out", "branch": None}]


def test_graph_put_stores_a_graph_with_problems_and_lists_them_with_warnings(manager_api, workflow):
    graph = {
        "nodes": [
            {"key": "s", "type": "entry"},
            {"key": "c", "type": "voice_call", "name": "Call 1"},
            {"key": "x", "type": "converted"},
            {"key": "orphan", "type": "dropped"},
        ],
        "edges": [
            {"source": "s", "target": "c"},
            {"source": "c", "target": "x", "branch": "COMPLETED"},
        ],
    }

    response = manager_api.put(url(workflow, "/graph"), graph, format="json")

    assert response.status_code == 200
    body = response.json()
    assert body["problems"] == [
        {"node": "orphan", "message": "'orphan' cannot be reached from the entry node."}
    ]
    warned = [(w["node"], w["message"]) for w in body["warnings"]]
    assert (
        "c",
        "'Call 1' has no DNP output: leads whose call ends DNP will stay at 'Call 1'.",
    ) in warned
    assert any(node == "c" and "FAILED" in message for node, message in warned)
    assert [key for key, _, _ in graph_rows(workflow)[0]] == ["s", "c", "x", "orphan"]


MALFORMED_GRAPHS = {
    "duplicate-key": (
        {
            "nodes": [{"key": "a", "type": "entry"}, {"key": "a", "type": "converted"}],
            "edges": [],
        },
        "nodes",
        "used more than once: a",
    ),
    "edge-to-unknown-node": (
        {
            "nodes": [{"key": "a", "type": "entry"}],
            "edges": [{"source": "a", "target": "ghost"}],
        },
        "edges",
        "target 'ghost' is not a node key",
    ),
    "edge-from-unknown-node": (
        {
            "nodes": [{"key": "a", "type": "entry"}],
            "edges": [{"source": "ghost", "target": "a"}],
        },
        "edges",
        "source 'ghost' is not a node key",
    ),
    "bad-type": (
        {"nodes": [{"key": "a", "type": "entry"}, {"key": "b", "type": "sms"}], "edges": []},
        "nodes",
        "not a valid choice",
    ),
    "bad-time-config": (
        {"nodes": [{"key": "t", "type": "time", "config": {}}], "edges": []},
        "nodes",
        "exactly one of delay_seconds or at_local_time",
    ),
    "bad-time-of-day": (
        {
            "nodes": [{"key": "t", "type": "time", "config": {"at_local_time": "25:00"}}],
            "edges": [],
        },
        "nodes",
        "at_local_time",
    ),
    "bad-application-url": (
        {
            "nodes": [{"key": "app", "type": "application", "config": {"url": "ftp://x"}}],
            "edges": [],
        },
        "nodes",
        "http(s) url",
    ),
    "unknown-config-field": (
        {"nodes": [{"key": "e", "type": "entry", "config": {"colour": "red"}}], "edges": []},
        "nodes",
        "unknown config field",
    ),
    "config-not-an-object": (
        {"nodes": [{"key": "c", "type": "voice_call", "config": ["script"]}], "edges": []},
        "nodes",
        "config must be an object",
    ),
    "duplicate-branch-label": (
        {
            "nodes": [{"key": "c", "type": "voice_call"}, {"key": "x", "type": "dropped"}],
            "edges": [
                {"source": "c", "target": "x", "branch": "DNP"},
                {"source": "c", "target": "x", "branch": "DNP"},
            ],
        },
        "edges",
        "'c' has two DNP outputs",
    ),
    "unknown-branch-label": (
        {
            "nodes": [{"key": "c", "type": "voice_call"}, {"key": "x", "type": "dropped"}],
            "edges": [{"source": "c", "target": "x", "branch": "MAYBE"}],
        },
        "edges",
        "not a valid choice",
    ),
    "bad-key": (
        {"nodes": [{"key": "Has Spaces", "type": "entry"}], "edges": []},
        "nodes",
        "lowercase letters",
    ),
    "missing-edges": ({"nodes": [{"key": "a", "type": "entry"}]}, "edges", "required"),
    "nodes-not-a-list": ({"nodes": {"key": "a"}, "edges": []}, "nodes", "list"),
}


@pytest.mark.parametrize(
    ("graph", "field", "fragment"), MALFORMED_GRAPHS.values(), ids=MALFORMED_GRAPHS.keys()
)
def test_graph_put_refuses_malformed_input_and_keeps_the_old_graph(
    manager_api, workflow, graph, field, fragment
):
    with_simple_graph(workflow)
    before = graph_rows(workflow)

    response = manager_api.put(url(workflow, "/graph"), graph, format="json")

    body = assert_error(response, 400, "invalid")
    assert field in body
    assert body["detail"].startswith(f"{field}:")
    assert fragment in body["detail"]
    assert graph_rows(workflow) == before


def test_graph_put_refuses_a_non_object_body(manager_api, workflow):
    with_simple_graph(workflow)
    before = graph_rows(workflow)

    response = manager_api.put(url(workflow, "/graph"), [SIMPLE_GRAPH_NODES], format="json")

    body = assert_error(response, 400, "invalid")
    assert "Expected a dictionary" in body["detail"]
    assert graph_rows(workflow) == before


@pytest.mark.parametrize("status", [S.ACTIVE, S.PAUSED, S.RUNNING, S.COMPLETED, S.CANCELLED])
def test_graph_put_outside_draft_is_409_and_keeps_the_graph(manager_api, workflow, status):
    with_simple_graph(workflow)
    set_status(workflow, status)
    before = graph_rows(workflow)

    response = manager_api.put(url(workflow, "/graph"), NEW_GRAPH, format="json")

    body = assert_error(response, 409, "conflict")
    assert set(body) == {"error", "detail"}
    assert "Duplicate" in body["detail"]
    assert graph_rows(workflow) == before


# --- control actions ------------------------------------------------------------------------

ALLOWED = [
    ("activate", S.DRAFT, S.ACTIVE, "activated_at"),
    ("activate", S.PAUSED, S.ACTIVE, "activated_at"),
    ("pause", S.ACTIVE, S.PAUSED, "paused_at"),
    ("pause", S.RUNNING, S.PAUSED, "paused_at"),
    ("resume", S.PAUSED, S.ACTIVE, "activated_at"),
    ("cancel", S.DRAFT, S.CANCELLED, "cancelled_at"),
    ("cancel", S.ACTIVE, S.CANCELLED, "cancelled_at"),
    ("cancel", S.PAUSED, S.CANCELLED, "cancelled_at"),
    ("cancel", S.RUNNING, S.CANCELLED, "cancelled_at"),
]

REFUSED = [
    ("activate", S.ACTIVE),
    ("activate", S.COMPLETED),
    ("activate", S.CANCELLED),
    ("pause", S.DRAFT),
    ("pause", S.PAUSED),
    ("pause", S.COMPLETED),
    ("pause", S.CANCELLED),
    ("resume", S.DRAFT),
    ("resume", S.ACTIVE),
    ("resume", S.COMPLETED),
    ("resume", S.CANCELLED),
    ("cancel", S.COMPLETED),
    ("cancel", S.CANCELLED),
]


@pytest.mark.parametrize(("action", "source", "target", "stamp"), ALLOWED)
def test_allowed_action_answers_200_with_the_workflow(
    manager_api, manager, workflow, action, source, target, stamp
):
    with_simple_graph(workflow)
    set_status(workflow, source)

    response = manager_api.post(url(workflow, f"/{action}"))

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) >= WORKFLOW_FIELDS
    assert body["id"] == workflow.pk
    assert body["status"] == target.value
    assert body["legacy_status"] is None
    assert body["allowed_actions"] == [a.value for a in allowed_actions(target)]
    assert body[stamp] is not None
    workflow.refresh_from_db()
    assert workflow.status == target
    assert getattr(workflow, stamp) is not None
    event = WorkflowEvent.objects.get(workflow=workflow)
    assert (event.action, event.from_status, event.to_status, event.actor) == (
        action,
        source,
        target,
        manager,
    )


@pytest.mark.parametrize(("action", "source"), REFUSED)
def test_refused_action_is_409_with_status_and_allowed_actions(
    manager_api, workflow, action, source
):
    with_simple_graph(workflow)
    set_status(workflow, source)
    before = workflow_row(workflow)

    response = manager_api.post(url(workflow, f"/{action}"))

    assert response.status_code == 409
    body = response.json()
    assert set(body) == {"error", "detail", "status", "allowed_actions"}
    assert body["error"] == "invalid_transition"
    assert body["status"] == source.value
    assert body["allowed_actions"] == [a.value for a in allowed_actions(source)]
    assert action not in body["allowed_actions"]
    assert "duplicate" in body["allowed_actions"]
    assert isinstance(body["detail"], str) and body["detail"]
    assert workflow_row(workflow) == before
    assert not WorkflowEvent.objects.filter(workflow=workflow).exists()
    assert not DBTaskResult.objects.exists()


@pytest.mark.parametrize("action", ["activate", "resume"])
def test_refused_action_on_legacy_running_reports_the_status_as_active(
    manager_api, workflow, action
):
    # BUG: SPEC 2 says legacy `running` is read as `active` everywhere, and the workflow
    # itself reads `status: "active"`; the 409 body still says `status: "running"`.
    with_simple_graph(workflow)
    set_status(workflow, S.RUNNING)

    response = manager_api.post(url(workflow, f"/{action}"))

    assert response.status_code == 409
    body = response.json()
    assert set(body) == {"error", "detail", "status", "allowed_actions"}
    assert body["error"] == "invalid_transition"
    assert body["allowed_actions"] == ["pause", "cancel", "duplicate"]
    assert workflow_row(workflow)["status"] == "running"
    assert body["status"] == manager_api.get(url(workflow)).json()["status"] == "active"


def test_refused_pause_names_the_current_status_and_allowed_actions_in_the_detail(
    manager_api, workflow
):
    body = manager_api.post(url(workflow, "/pause")).json()

    assert body["detail"] == (
        "Cannot deactivate a workflow that is draft. Allowed: activate, cancel, duplicate."
    )


@pytest.mark.parametrize("status", [S.COMPLETED, S.CANCELLED])
def test_cancel_of_a_final_workflow_says_it_cannot_be_cancelled_again(
    manager_api, workflow, status
):
    set_status(workflow, status)

    response = manager_api.post(url(workflow, "/cancel"))

    assert response.status_code == 409
    body = response.json()
    assert body == {
        "error": "invalid_transition",
        "detail": f"This workflow is {status.value} and cannot be cancelled again.",
        "status": status.value,
        "allowed_actions": ["duplicate"],
    }
    assert workflow_row(workflow)["status"] == status.value


def test_activate_an_empty_graph_is_400_invalid_graph(manager_api, workflow):
    response = manager_api.post(url(workflow, "/activate"))

    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"error", "detail", "problems", "warnings"}
    assert body["error"] == "invalid_graph"
    assert body["detail"] == "The graph has 1 problem; fix them first."
    assert body["problems"] == [
        {
            "node": None,
            "message": "The workflow has no entry node: add one entry node where leads start.",
        }
    ]
    assert body["warnings"] == [{"node": None, "message": "The workflow has no leads yet."}]
    assert workflow_row(workflow)["status"] == "draft"
    assert workflow_row(workflow)["activated_at"] is None
    assert not WorkflowEvent.objects.filter(workflow=workflow).exists()
    assert not DBTaskResult.objects.exists()


def test_activate_a_bad_graph_names_each_node_and_lists_warnings(manager_api, workflow):
    add_leads(workflow, 2)
    graph = {
        "nodes": [
            {"key": "s", "type": "entry"},
            {"key": "c", "type": "voice_call", "name": "Call 1"},
            {"key": "x", "type": "converted"},
            {"key": "orphan", "type": "dropped"},
            {"key": "stuck", "type": "application", "config": {"url": "https://x.example"}},
        ],
        "edges": [
            {"source": "s", "target": "c"},
            {"source": "c", "target": "x", "branch": "COMPLETED"},
            {"source": "c", "target": "stuck", "branch": "DNP"},
        ],
    }
    assert manager_api.put(url(workflow, "/graph"), graph, format="json").status_code == 200

    response = manager_api.post(url(workflow, "/activate"))

    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_graph"
    assert all(set(p) == {"node", "message"} for p in body["problems"])
    named = {p["node"] for p in body["problems"]}
    assert named == {"orphan", "stuck"}
    assert body["detail"] == f"The graph has {len(body['problems'])} problems; fix them first."
    assert body["warnings"] == [
        {
            "node": "c",
            "message": "'Call 1' has no FAILED output: leads whose call ends FAILED "
            "will stay at 'Call 1'.",
        }
    ]
    assert workflow_row(workflow)["status"] == "draft"
    assert not LeadExecution.objects.exists()


@pytest.mark.parametrize("action", ["activate", "pause", "resume", "cancel", "duplicate"])
def test_control_actions_only_accept_post(manager_api, workflow, action):
    response = manager_api.get(url(workflow, f"/{action}"))

    assert_error(response, 405, "method_not_allowed")
    assert workflow_row(workflow)["status"] == "draft"


@pytest.mark.parametrize("source", [S.DRAFT, S.ACTIVE, S.RUNNING, S.CANCELLED, S.COMPLETED])
def test_duplicate_is_201_with_a_new_draft_copy(manager_api, manager, workflow, source):
    with_simple_graph(workflow)
    add_leads(workflow, 3)
    Workflow.objects.filter(pk=workflow.pk).update(
        status=source, timezone="Europe/Berlin", max_concurrent_calls=7, window_days=[1, 2]
    )
    before = workflow_row(workflow)

    response = manager_api.post(url(workflow, "/duplicate"))

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["id"] != workflow.pk
    assert body["status"] == "draft"
    assert body["legacy_status"] is None
    assert body["name"] == "Spring campaign (copy)"
    assert body["duplicated_from_id"] == workflow.pk
    assert body["timezone"] == "Europe/Berlin"
    assert body["max_concurrent_calls"] == 7
    assert body["calling_window"] == {"start": "09:00", "end": "20:00", "days": [1, 2]}
    copy = Workflow.objects.get(pk=body["id"])
    assert copy.workspace_id == workflow.workspace_id
    assert copy.created_by == manager
    assert copy.leads.count() == 0
    assert graph_rows(copy) == graph_rows(workflow)
    assert workflow_row(workflow) == before
    # The copy is editable.
    assert manager_api.put(url(copy, "/graph"), NEW_GRAPH, format="json").status_code == 200


def test_duplicate_of_a_duplicate_points_at_its_own_source(manager_api, workflow):
    first = manager_api.post(url(workflow, "/duplicate")).json()
    second = manager_api.post(f"/v1/workflows/{first['id']}/duplicate").json()

    assert second["duplicated_from_id"] == first["id"]
    assert second["name"] == "Spring campaign (copy) (copy)"
    assert Workflow.objects.count() == 3


# --- counts ---------------------------------------------------------------------------------


def test_counts_of_an_empty_workflow(manager_api, workflow):
    response = manager_api.get(url(workflow, "/counts"))

    assert response.status_code == 200
    assert response.json() == {
        "statuses": {"pending": 0, "active": 0, "completed": 0, "dropped": 0},
        "nodes": {},
    }


@pytest.mark.django_db(transaction=True)
def test_counts_before_and_after_activation(manager_api, workflow):
    # entry -> time (1 h) -> converted: after the worker ran, every lead has started at the
    # entry node, moved on at once and waits at the time node.
    replace_graph(
        workflow,
        [
            NodeSpec("start", "entry", "Start"),
            NodeSpec("wait", "time", "Wait", {"delay_seconds": 3600}),
            NodeSpec("won", "converted", "Won"),
        ],
        [EdgeSpec("start", "wait"), EdgeSpec("wait", "won")],
    )
    add_leads(workflow, 4)
    zero = {"active": 0, "needs_review": 0}

    before = manager_api.get(url(workflow, "/counts"))

    assert before.status_code == 200
    assert before.json() == {
        "statuses": {"pending": 4, "active": 0, "completed": 0, "dropped": 0},
        "nodes": {"start": zero, "wait": zero, "won": zero},
    }

    activated = manager_api.post(url(workflow, "/activate"))
    assert activated.status_code == 200
    assert activated.json()["status"] == "active"
    # The API answers before the background worker starts anyone.
    assert manager_api.get(url(workflow, "/counts")).json()["statuses"]["pending"] == 4

    drain_tasks()

    after = manager_api.get(url(workflow, "/counts"))
    assert after.status_code == 200
    assert after.json() == {
        "statuses": {"pending": 0, "active": 4, "completed": 0, "dropped": 0},
        "nodes": {"start": zero, "wait": {"active": 4, "needs_review": 0}, "won": zero},
    }
    assert LeadExecution.objects.filter(workflow=workflow, node__key="wait").count() == 4


def test_counts_by_status_and_node_with_needs_review(manager_api, workflow):
    with_simple_graph(workflow)
    set_status(workflow, S.ACTIVE)
    nodes = {n.key: n for n in workflow.nodes.all()}
    now = timezone.now()
    plan = [
        (None, None, False),
        (ExecutionStatus.ACTIVE, "call", False),
        (ExecutionStatus.ACTIVE, "call", True),
        (ExecutionStatus.ACTIVE, "call", True),
        (ExecutionStatus.ACTIVE, "start", False),
        (ExecutionStatus.COMPLETED, "won", False),
        (ExecutionStatus.DROPPED, "lost", False),
        (ExecutionStatus.DROPPED, "lost", False),
    ]
    for status, key, review in plan:
        lead = LeadFactory(workflow=workflow)
        if status is not None:
            LeadExecution.objects.create(
                lead=lead,
                workflow=workflow,
                status=status,
                node=nodes[key],
                entered_at=now,
                needs_review=review,
                review_reason="Call ended retry_expired." if review else "",
            )

    body = manager_api.get(url(workflow, "/counts")).json()

    assert body == {
        "statuses": {"pending": 1, "active": 4, "completed": 1, "dropped": 2},
        "nodes": {
            "start": {"active": 1, "needs_review": 0},
            "call": {"active": 3, "needs_review": 2},
            # Finished leads at terminals are not "active" there.
            "won": {"active": 0, "needs_review": 0},
            "lost": {"active": 0, "needs_review": 0},
        },
    }
