"""A manager's actions on one lead (SPEC 5, 7): POST /v1/leads/{id}/retry-call, move, drop.

Leads get where they are through the real engine (activation, start, sweep, call statuses).
"""

import pytest
from django.utils import timezone

from calls.models import CallLog, CallStatus
from engine import control
from engine.call_status import StatusReport, record_call_status
from engine.starting import start_pending_leads
from engine.sweep import run_tick
from leads.models import ExecutionStatus, LeadExecution, LeadTransition, TransitionReason
from tests.factories import LeadFactory, drain_tasks
from workflows.graph import EdgeSpec, NodeSpec
from workflows.graph_store import replace_graph
from workflows.models import Workflow
from workflows.statuses import Branch, NodeType, WorkflowAction, WorkflowStatus

# start -> call -> won (COMPLETED) / later (DNP, a day, then call again) / lost (FAILED).
NODES = [
    NodeSpec("start", NodeType.ENTRY, "Start"),
    NodeSpec("call", NodeType.VOICE_CALL, "Call 1"),
    NodeSpec("later", NodeType.TIME, "Wait a day", {"delay_seconds": 86400}),
    NodeSpec("won", NodeType.CONVERTED, "Won"),
    NodeSpec("lost", NodeType.DROPPED, "Lost"),
]
EDGES = [
    EdgeSpec("start", "call"),
    EdgeSpec("call", "won", Branch.COMPLETED),
    EdgeSpec("call", "later", Branch.DNP),
    EdgeSpec("call", "lost", Branch.FAILED),
    EdgeSpec("later", "call"),
]
ACTIONS = ["retry-call", "move", "drop"]
BODY = {"retry-call": {}, "move": {"node": "won"}, "drop": {}}
MANUAL_REASON = {
    "retry-call": TransitionReason.MANUAL_RETRY,
    "move": TransitionReason.MANUAL_MOVE,
    "drop": TransitionReason.MANUAL_DROP,
}


def url(lead, action: str) -> str:
    return f"/v1/leads/{lead.pk}/{action}"


def post(api, lead, action: str, body: dict | None = None):
    return api.post(url(lead, action), BODY[action] if body is None else body, format="json")


@pytest.fixture
def flow(workflow):
    """The shared `workflow` (workspace Acme, manager alice), calling at any hour."""
    Workflow.objects.filter(pk=workflow.pk).update(window_start=None, window_end=None)
    workflow.refresh_from_db()
    replace_graph(workflow, NODES, EDGES)
    return workflow


def activate(workflow, manager) -> None:
    control.perform(workflow.pk, WorkflowAction.ACTIVATE, manager)
    start_pending_leads(workflow.pk)
    run_tick()


def end_call(call, status: CallStatus, event_id: str = "final") -> None:
    record_call_status(
        call.pk,
        StatusReport(
            event_id=f"{event_id}-{call.pk}",
            status=status,
            occurred_at=timezone.now(),
            end_reason=f"test {status}",
        ),
    )
    run_tick()


def execution_of(lead) -> LeadExecution:
    return LeadExecution.objects.select_related("node").get(lead=lead)


def state(lead) -> dict:
    """Everything an action could change about a lead."""
    return {
        "execution": LeadExecution.objects.filter(lead=lead).values().first(),
        "history": list(LeadTransition.objects.filter(lead=lead).values_list("id", flat=True)),
        "calls": list(CallLog.objects.filter(lead=lead).values().order_by("id")),
        "workflow": Workflow.objects.filter(pk=lead.workflow_id).values("status").get(),
    }


def manual_rows(lead):
    return LeadTransition.objects.filter(
        lead=lead, reason__in=list(MANUAL_REASON.values())
    ).order_by("id")


def assert_contiguous(lead) -> None:
    rows = list(LeadTransition.objects.filter(lead=lead).order_by("id"))
    assert all(rows[i].from_node_id == rows[i - 1].to_node_id for i in range(1, len(rows)))


@pytest.fixture
def calling(flow, manager):
    """Two leads at the Voice Call node, each with a call in progress (`created`)."""
    lead = LeadFactory(workflow=flow, name="Ann")
    other = LeadFactory(workflow=flow, name="Ben")
    activate(flow, manager)
    call = CallLog.objects.get(lead=lead)
    assert (execution_of(lead).node.key, execution_of(lead).call_id) == ("call", call.pk)
    return lead, other, call


@pytest.fixture
def reviewing(calling):
    """The first lead's call ended `retry_expired`: it stays at the node, needs review."""
    lead, other, call = calling
    end_call(call, CallStatus.RETRY_EXPIRED)
    execution = execution_of(lead)
    assert (execution.node.key, execution.needs_review, execution.call_id) == (
        "call",
        True,
        call.pk,
    )
    return lead, other, call


# --- who may act ----------------------------------------------------------------------------


@pytest.mark.parametrize("action", ACTIONS)
def test_agents_are_403_and_nothing_changes(agent_api, reviewing, action):
    lead, _other, _call = reviewing
    before = state(lead)

    response = post(agent_api, lead, action)

    assert response.status_code == 403, response.content
    assert set(response.json()) >= {"error", "detail"}
    assert state(lead) == before


@pytest.mark.parametrize("action", ACTIONS)
def test_another_workspace_is_404_and_nothing_changes(outsider_api, reviewing, action):
    lead, _other, _call = reviewing
    before = state(lead)

    response = post(outsider_api, lead, action)

    assert response.status_code == 404, response.content
    assert set(response.json()) >= {"error", "detail"}
    assert state(lead) == before


@pytest.mark.parametrize("action", ACTIONS)
def test_anonymous_is_401_and_nothing_changes(anon_api, reviewing, action):
    lead, _other, _call = reviewing
    before = state(lead)

    response = post(anon_api, lead, action)

    assert response.status_code == 401
    assert state(lead) == before


@pytest.mark.parametrize("action", ACTIONS)
def test_get_is_405(manager_api, reviewing, action):
    lead, _other, _call = reviewing
    before = state(lead)

    response = manager_api.get(url(lead, action))

    assert response.status_code == 405
    assert set(response.json()) >= {"error", "detail"}
    assert state(lead) == before


@pytest.mark.parametrize("action", ACTIONS)
def test_unknown_lead_is_404(manager_api, flow, action):
    response = manager_api.post(f"/v1/leads/987654/{action}", BODY[action], format="json")
    assert response.status_code == 404


@pytest.mark.parametrize("action", ACTIONS)
def test_each_action_is_one_history_row_with_the_manager(manager_api, manager, reviewing, action):
    lead, _other, _call = reviewing
    before = LeadTransition.objects.filter(lead=lead).count()

    response = post(manager_api, lead, action)

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["id"], body["workflow_id"]) == (lead.pk, lead.workflow_id)
    assert LeadTransition.objects.filter(lead=lead).count() == before + 1
    [row] = manual_rows(lead)
    assert row.reason == MANUAL_REASON[action]
    assert row.actor == manager
    assert row.metadata["actor"] == "alice"
    assert "alice" in row.message
    assert_contiguous(lead)
    history = manager_api.get(f"/v1/leads/{lead.pk}/history").json()
    assert (history[-1]["reason"], history[-1]["actor"]) == (MANUAL_REASON[action], "alice")


def test_agents_see_the_managers_rows(agent_api, manager_api, reviewing):
    lead, _other, _call = reviewing
    post(manager_api, lead, "drop")

    history = agent_api.get(f"/v1/leads/{lead.pk}/history")

    assert history.status_code == 200
    assert (history.json()[-1]["reason"], history.json()[-1]["actor"]) == ("manual_drop", "alice")


# --- retry-call -----------------------------------------------------------------------------


def test_retry_after_a_final_call_places_a_new_call_on_the_next_visit(manager_api, reviewing, flow):
    lead, _other, first_call = reviewing
    visit = execution_of(lead).visit

    response = post(manager_api, lead, "retry-call")

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["current_node"]) == ("active", "call")
    assert body["needs_review"] is False
    assert body["review_reason"] == ""
    assert body["call_id"] is None
    [row] = manual_rows(lead)
    assert (row.from_node.key, row.to_node.key) == ("call", "call")
    assert row.metadata["previous_call_id"] == first_call.pk
    assert row.metadata["previous_call_status"] == "retry_expired"

    run_tick()

    calls = list(CallLog.objects.filter(lead=lead).order_by("id"))
    assert [c.pk for c in calls[:1]] == [first_call.pk]
    assert len(calls) == 2
    second = calls[1]
    assert (second.node_id, second.visit) == (first_call.node_id, visit + 1)
    assert second.status == CallStatus.CREATED
    execution = execution_of(lead)
    assert (execution.visit, execution.call_id, execution.needs_review) == (
        visit + 1,
        second.pk,
        False,
    )
    first_call.refresh_from_db()
    assert first_call.status == CallStatus.RETRY_EXPIRED  # the old call is history

    # The new call routes the lead; the old one never does again.
    end_call(second, CallStatus.COMPLETED)
    execution = execution_of(lead)
    assert (execution.node.key, execution.status) == ("won", "completed")
    assert_contiguous(lead)


def test_retry_twice_places_one_call_per_visit(manager_api, reviewing):
    lead, _other, _first = reviewing
    post(manager_api, lead, "retry-call")
    run_tick()
    second = CallLog.objects.filter(lead=lead).order_by("-id").first()
    end_call(second, CallStatus.CANCELLED)

    response = post(manager_api, lead, "retry-call")
    run_tick()
    run_tick()

    assert response.status_code == 200
    visits = list(CallLog.objects.filter(lead=lead).order_by("id").values_list("visit", flat=True))
    assert len(visits) == 3
    assert visits == sorted(set(visits))


@pytest.mark.parametrize("status", [CallStatus.CREATED, CallStatus.CONNECTED])
def test_retry_while_the_call_is_in_progress_is_409(manager_api, calling, status):
    lead, _other, call = calling
    if status != CallStatus.CREATED:
        record_call_status(
            call.pk, StatusReport(event_id="c", status=status, occurred_at=timezone.now())
        )
    before = state(lead)

    response = post(manager_api, lead, "retry-call")
    run_tick()

    assert response.status_code == 409, response.content
    answer = response.json()
    assert answer["error"] and str(call.pk) in answer["detail"]
    assert state(lead) == before
    assert CallLog.objects.filter(lead=lead).count() == 1


def test_retry_away_from_a_voice_call_node_is_409(manager_api, reviewing):
    lead, _other, _call = reviewing
    post(manager_api, lead, "move", {"node": "later"})
    before = state(lead)

    response = post(manager_api, lead, "retry-call")

    assert response.status_code == 409
    assert set(response.json()) >= {"error", "detail"}
    assert state(lead) == before


# --- move -----------------------------------------------------------------------------------


def test_move_to_a_time_node_waits_there(manager_api, reviewing):
    lead, _other, _call = reviewing
    visit = execution_of(lead).visit

    response = post(manager_api, lead, "move", {"node": "later"})

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["current_node"], body["needs_review"]) == (
        "active",
        "later",
        False,
    )
    assert body["release_at"] is not None
    execution = execution_of(lead)
    assert (execution.node.key, execution.visit, execution.call_id) == ("later", visit + 1, None)
    [row] = manual_rows(lead)
    assert (row.from_node.key, row.to_node.key) == ("call", "later")
    run_tick()
    assert execution_of(lead).node.key == "later"  # not released yet


def test_move_back_to_the_voice_call_node_places_a_new_call(manager_api, reviewing):
    lead, _other, first_call = reviewing
    post(manager_api, lead, "move", {"node": "later"})

    response = post(manager_api, lead, "move", {"node": "call"})
    run_tick()

    assert response.status_code == 200
    calls = list(CallLog.objects.filter(lead=lead).order_by("id"))
    assert len(calls) == 2
    assert calls[1].visit > first_call.visit
    assert execution_of(lead).call_id == calls[1].pk
    assert_contiguous(lead)


def test_a_late_final_status_does_not_route_a_lead_moved_away(manager_api, calling):
    lead, _other, call = calling
    post(manager_api, lead, "move", {"node": "later"})

    end_call(call, CallStatus.COMPLETED)

    execution = execution_of(lead)
    assert (execution.node.key, execution.status) == ("later", "active")
    assert not LeadTransition.objects.filter(
        lead=lead, reason=TransitionReason.CALL_ROUTED
    ).exists()


@pytest.mark.parametrize("node", ["nope", "WON", "wo", "won/x", ""])
def test_move_to_an_unknown_node_is_400_and_nothing_changes(manager_api, reviewing, node):
    lead, _other, _call = reviewing
    before = state(lead)

    response = post(manager_api, lead, "move", {"node": node})

    assert response.status_code == 400, response.content
    answer = response.json()
    assert set(answer) >= {"error", "detail"}
    assert state(lead) == before


def test_move_without_a_node_is_400(manager_api, reviewing):
    lead, _other, _call = reviewing
    before = state(lead)

    response = post(manager_api, lead, "move", {})

    assert response.status_code == 400
    assert state(lead) == before


def test_move_to_another_workflows_node_is_400(manager_api, reviewing, workspace):
    lead, _other, _call = reviewing
    elsewhere = Workflow.objects.create(workspace=workspace, name="Other")
    replace_graph(elsewhere, [*NODES, NodeSpec("only_there", NodeType.CONVERTED, "X")], EDGES)
    before = state(lead)

    response = post(manager_api, lead, "move", {"node": "only_there"})

    assert response.status_code == 400
    assert state(lead) == before


def test_move_to_the_entry_node_is_refused(manager_api, reviewing):
    lead, _other, _call = reviewing
    before = state(lead)

    response = post(manager_api, lead, "move", {"node": "start"})

    assert response.status_code in (400, 409)
    assert set(response.json()) >= {"error", "detail"}
    assert state(lead) == before


@pytest.mark.parametrize(("node", "final"), [("won", "completed"), ("lost", "dropped")])
def test_move_to_a_terminal_finishes_the_lead(manager_api, reviewing, flow, node, final):
    lead, _other, _call = reviewing

    response = post(manager_api, lead, "move", {"node": node})

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["current_node"]) == (final, node)
    execution = execution_of(lead)
    assert execution.status == final
    assert execution.finished_at is not None
    assert execution.due_at is None
    # Another lead is still active: the workflow goes on.
    flow.refresh_from_db()
    assert flow.status == WorkflowStatus.ACTIVE


def test_moving_the_last_active_lead_to_a_terminal_completes_the_workflow(
    manager_api, reviewing, flow
):
    lead, other, other_call = reviewing[0], reviewing[1], CallLog.objects.get(lead=reviewing[1])
    end_call(other_call, CallStatus.NO_ANSWER)
    assert execution_of(other).status == ExecutionStatus.DROPPED
    flow.refresh_from_db()
    assert flow.status == WorkflowStatus.ACTIVE  # the first lead still waits for review

    response = post(manager_api, lead, "move", {"node": "won"})

    assert response.status_code == 200
    flow.refresh_from_db()
    assert flow.status == WorkflowStatus.COMPLETED
    assert flow.events.filter(action="complete").count() == 1


# --- drop -----------------------------------------------------------------------------------


def test_drop_ends_the_lead_and_why_names_the_manager(manager_api, reviewing, flow):
    lead, _other, _call = reviewing

    response = post(manager_api, lead, "drop")

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["current_node"], body["needs_review"]) == (
        "dropped",
        "call",
        False,
    )
    assert body["why"] == "Dropped by a manager at 'Call 1'."
    assert manager_api.get(f"/v1/leads/{lead.pk}").json()["why"] == body["why"]
    execution = execution_of(lead)
    assert execution.status == ExecutionStatus.DROPPED
    assert execution.finished_at is not None
    [row] = manual_rows(lead)
    assert (row.from_node.key, row.to_node.key) == ("call", "call")
    flow.refresh_from_db()
    assert flow.status == WorkflowStatus.ACTIVE


def test_a_dropped_lead_is_not_routed_by_its_call(manager_api, calling):
    lead, _other, call = calling
    post(manager_api, lead, "drop")

    end_call(call, CallStatus.COMPLETED)

    execution = execution_of(lead)
    assert (execution.status, execution.node.key) == ("dropped", "call")
    assert not LeadTransition.objects.filter(
        lead=lead, reason__in=[TransitionReason.CALL_ROUTED, TransitionReason.CALL_REVIEW]
    ).exists()


def test_dropping_the_last_active_lead_completes_the_workflow(manager_api, calling, flow):
    lead, other, _call = calling
    assert post(manager_api, other, "drop").status_code == 200
    flow.refresh_from_db()
    assert flow.status == WorkflowStatus.ACTIVE

    assert post(manager_api, lead, "drop").status_code == 200

    flow.refresh_from_db()
    assert flow.status == WorkflowStatus.COMPLETED
    assert flow.completed_at is not None


# --- refused: pending leads, final leads, finished workflows --------------------------------


@pytest.mark.parametrize("action", ACTIONS)
def test_actions_on_a_pending_lead_are_409(manager_api, flow, manager, action):
    lead = LeadFactory(workflow=flow)  # draft: never started
    before = state(lead)

    response = post(manager_api, lead, action)

    assert response.status_code == 409, response.content
    answer = response.json()
    assert set(answer) >= {"error", "detail"}
    assert "pending" in answer["detail"]
    assert state(lead) == before


@pytest.mark.parametrize("action", ACTIONS)
def test_actions_in_a_cancelled_workflow_are_409(manager_api, manager, reviewing, flow, action):
    lead, _other, _call = reviewing
    control.perform(flow.pk, WorkflowAction.CANCEL, manager)
    before = state(lead)

    response = post(manager_api, lead, action)

    assert response.status_code == 409, response.content
    answer = response.json()
    assert set(answer) >= {"error", "detail"}
    assert "cancelled" in answer["detail"]
    assert state(lead) == before


@pytest.mark.parametrize("action", ACTIONS)
def test_actions_on_a_finished_lead_are_409(manager_api, reviewing, action):
    lead, _other, _call = reviewing
    post(manager_api, lead, "drop")
    before = state(lead)

    response = post(manager_api, lead, action)

    assert response.status_code == 409
    assert set(response.json()) >= {"error", "detail"}
    assert state(lead) == before


@pytest.mark.parametrize("action", ACTIONS)
def test_actions_in_a_completed_workflow_are_409(manager_api, calling, flow, action):
    lead, other, _call = calling
    post(manager_api, other, "drop")
    post(manager_api, lead, "move", {"node": "won"})
    flow.refresh_from_db()
    assert flow.status == WorkflowStatus.COMPLETED
    before = state(lead)

    response = post(manager_api, lead, action)

    assert response.status_code == 409
    assert state(lead) == before


# --- paused workflows -----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_dropping_the_last_lead_while_paused_completes_the_workflow_on_resume(
    manager_api, manager, flow, settings
):
    settings.DIALNEXA_SIMULATOR_DELAY = 600  # the call stays in progress throughout
    lead = LeadFactory(workflow=flow)
    control.perform(flow.pk, WorkflowAction.ACTIVATE, manager)
    drain_tasks()
    assert execution_of(lead).node.key == "call"
    control.perform(flow.pk, WorkflowAction.PAUSE, manager)

    response = post(manager_api, lead, "drop")

    assert response.status_code == 200
    flow.refresh_from_db()
    assert flow.status == WorkflowStatus.PAUSED  # only an active workflow completes
    control.perform(flow.pk, WorkflowAction.RESUME, manager)
    drain_tasks()
    flow.refresh_from_db()
    # SPEC 4: active, has leads, every execution final -> completed.
    assert flow.status == WorkflowStatus.COMPLETED
