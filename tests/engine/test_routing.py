"""The seed's Voice Call Node Status Routing table, status by status (SPEC 2, 5, 6).

A lead at a Voice Call node waits for its call's first final status and is routed by its group:
completed -> COMPLETED, did_not_pick/busy -> DNP, failed/no_answer -> FAILED; cancelled and
retry_expired are final but no default output, so the lead stays for review; in-progress
statuses move nothing. Statuses arrive through engine.call_status.record_call_status (what the
simulator uses) and through the real signed webhook.
"""

import json
from datetime import timedelta
from itertools import pairwise

import pytest
from django.utils import timezone

from calls.models import CallEvent, CallLog, CallStatus
from engine import control
from engine.call_status import StatusReport, record_call_status
from engine.signing import HEADER, sign
from engine.starting import start_pending_leads
from engine.sweep import claim, process, run_tick
from engine.why import explain
from leads.models import ExecutionStatus, Lead, LeadExecution, LeadTransition, TransitionReason
from tests.factories import WorkflowFactory, drain_tasks
from workflows.graph import EdgeSpec, NodeSpec
from workflows.graph_store import replace_graph
from workflows.models import WorkflowEvent
from workflows.statuses import Branch, NodeType, WorkflowStatus

CS = CallStatus

# The seed's table, written out here (not read from calls.models) so the code is checked
# against the requirement: status -> (branch, the node that branch leads to in ROUTING_GRAPH).
ROUTES = {
    CS.COMPLETED: (Branch.COMPLETED, "won"),
    CS.DID_NOT_PICK: (Branch.DNP, "dnp_wait"),
    CS.BUSY: (Branch.DNP, "dnp_wait"),
    CS.FAILED: (Branch.FAILED, "failed_end"),
    CS.NO_ANSWER: (Branch.FAILED, "failed_end"),
}
REVIEW = {CS.CANCELLED, CS.RETRY_EXPIRED}
IN_PROGRESS = {CS.CREATED, CS.INITIATED, CS.RECEIVED, CS.CONNECTED, CS.WAITING}

DNP_WAIT_SECONDS = 86400

ROUTING_NODES = [
    NodeSpec("start", NodeType.ENTRY, "Start"),
    NodeSpec("call", NodeType.VOICE_CALL, "Call 1"),
    NodeSpec("won", NodeType.CONVERTED, "Won"),
    NodeSpec("dnp_wait", NodeType.TIME, "Try tomorrow", {"delay_seconds": DNP_WAIT_SECONDS}),
    NodeSpec("failed_end", NodeType.DROPPED, "Failed"),
    NodeSpec("lost", NodeType.DROPPED, "Lost"),
]
ROUTING_EDGES = [
    EdgeSpec("start", "call"),
    EdgeSpec("call", "won", Branch.COMPLETED),
    EdgeSpec("call", "dnp_wait", Branch.DNP),
    EdgeSpec("call", "failed_end", Branch.FAILED),
    EdgeSpec("dnp_wait", "lost"),
]
# Where each target leaves the execution.
TARGET_STATUS = {
    "won": ExecutionStatus.COMPLETED,
    "dnp_wait": ExecutionStatus.ACTIVE,
    "failed_end": ExecutionStatus.DROPPED,
}


def test_the_expected_table_covers_every_call_status_once():
    groups = [set(ROUTES), REVIEW, IN_PROGRESS]
    assert set().union(*groups) == set(CallStatus)
    assert sum(len(g) for g in groups) == len(CallStatus) == 12


# --- helpers ---------------------------------------------------------------------------------


def make_workflow(workspace, nodes=ROUTING_NODES, edges=ROUTING_EDGES, *, leads=1, fields=None):
    workflow = WorkflowFactory(
        workspace=workspace,
        name="Routing",
        timezone="UTC",
        window_start=None,  # calls may be placed at any hour: the tests do not depend on it
        window_end=None,
        max_concurrent_calls=50,
    )
    replace_graph(workflow, nodes, edges)
    for i in range(leads):
        Lead.objects.create(
            workflow=workflow,
            phone=f"+1202555{i:04d}",
            name=f"Lead {i}",
            fields=(fields[i] if fields else {}),
        )
    return workflow


def activate_and_call(workflow, manager) -> list[tuple[Lead, CallLog]]:
    """Activate, start the leads and run one tick: every lead is at 'Call 1' with a call."""
    control.perform(workflow.pk, "activate", manager)
    start_pending_leads(workflow.pk)
    run_tick()
    pairs = []
    for lead in workflow.leads.order_by("id"):
        execution = LeadExecution.objects.select_related("node", "call").get(lead=lead)
        assert execution.node.key == "call"
        assert execution.call is not None
        assert execution.call.status == CS.CREATED
        assert execution.call.node_id == execution.node_id
        pairs.append((lead, execution.call))
    return pairs


def report(call, status, *, event_id=None, end_reason=None):
    return record_call_status(
        call.pk,
        StatusReport(
            event_id=event_id or f"evt-{call.pk}-{status}",
            status=CallStatus(status),
            occurred_at=timezone.now(),
            end_reason=end_reason,
        ),
    )


def post_webhook(client, call, payload: dict, *, signature: str | None = None):
    body = json.dumps(payload).encode()
    return client.post(
        f"/v1/calls/{call.pk}/status",
        data=body,
        content_type="application/json",
        headers={HEADER: signature if signature is not None else sign(body)},
    )


def history(lead) -> list[LeadTransition]:
    """The lead's history, checked to be contiguous and to end where the execution is."""
    rows = list(
        LeadTransition.objects.filter(lead=lead)
        .select_related("from_node", "to_node")
        .order_by("id")
    )
    assert rows, "every started lead has history"
    assert rows[0].from_node is None
    assert rows[0].reason == TransitionReason.STARTED
    for previous, row in pairwise(rows):
        assert row.from_node_id == previous.to_node_id, (previous, row)
    execution = LeadExecution.objects.get(lead=lead)
    assert rows[-1].to_node_id == execution.node_id
    return rows


def assert_outcome(lead, call, status, end_reason):
    """Where the seed says a lead whose call reported `status` must be."""
    status = CallStatus(status)
    execution = LeadExecution.objects.select_related("node").get(lead=lead)
    call.refresh_from_db()
    rows = history(lead)
    reasons = [r.reason for r in rows]
    # Whatever happened, one visit of the node placed exactly one call.
    assert CallLog.objects.filter(lead=lead).count() == 1
    assert call.status == status

    if status in ROUTES:
        branch, target = ROUTES[status]
        assert execution.node.key == target
        assert execution.status == TARGET_STATUS[target]
        assert not execution.needs_review
        assert execution.review_reason == ""
        assert execution.call_id is None
        assert reasons == ["started", "moved", "call_routed"]
        routed = rows[-1]
        assert (routed.from_node.key, routed.to_node.key) == ("call", target)
        assert routed.metadata == {
            "call_id": call.pk,
            "call_status": status.value,
            "end_reason": end_reason,
            "branch": branch.value,
        }
        assert call.routed_at is not None
        if target == "dnp_wait":
            assert execution.release_at == execution.entered_at + timedelta(
                seconds=DNP_WAIT_SECONDS
            )
        else:
            assert execution.finished_at is not None
    elif status in REVIEW:
        assert execution.node.key == "call"
        assert execution.status == ExecutionStatus.ACTIVE
        assert execution.needs_review
        assert status.value in execution.review_reason
        assert "not a default Voice Call output" in execution.review_reason
        assert execution.call_id == call.pk
        assert execution.due_at is None  # nothing more for the engine to do
        assert reasons == ["started", "moved", "call_review"]
        review = rows[-1]
        assert review.from_node.key == review.to_node.key == "call"
        assert review.metadata == {
            "call_id": call.pk,
            "call_status": status.value,
            "end_reason": end_reason,
            "branch": None,
        }
        assert explain(Lead.objects.get(pk=lead.pk)).startswith("Needs review at 'Call 1': ")
    else:
        assert status in IN_PROGRESS
        assert execution.node.key == "call"
        assert execution.status == ExecutionStatus.ACTIVE
        assert not execution.needs_review
        assert execution.call_id == call.pk
        assert reasons == ["started", "moved"]
        assert call.routed_at is None
        assert explain(Lead.objects.get(pk=lead.pk)) == (
            f"Waiting at 'Call 1' for a final status of call {call.pk} (now {status.value})."
        )


# --- every status, through record_call_status -----------------------------------------------


@pytest.mark.parametrize("status", list(CallStatus), ids=lambda s: s.value)
def test_each_call_status_routes_the_lead_as_the_seed_says(workspace, manager, status):
    workflow = make_workflow(workspace)
    [(lead, call)] = activate_and_call(workflow, manager)
    end_reason = f"reason-for-{status.value}"

    recorded = report(call, status, end_reason=end_reason)
    assert recorded.outcome == "applied"
    run_tick()
    assert_outcome(lead, call, status, end_reason)

    # More ticks change nothing: the lead was routed (or held, or left waiting) once.
    run_tick()
    run_tick()
    assert_outcome(lead, call, status, end_reason)


# --- through the real signed webhook ----------------------------------------------------------


@pytest.mark.parametrize(
    "status",
    [CS.COMPLETED, CS.BUSY, CS.NO_ANSWER, CS.RETRY_EXPIRED, CS.CONNECTED],
    ids=lambda s: s.value,
)
def test_webhook_status_routes_the_lead_as_the_seed_says(workspace, manager, client, status):
    workflow = make_workflow(workspace)
    [(lead, call)] = activate_and_call(workflow, manager)

    answer = post_webhook(
        client,
        call,
        {
            "event_id": "provider-evt-1",
            "status": status.value,
            "occurred_at": timezone.now().isoformat(),
            "end_reason": "from_the_provider",
            "duration_s": 12,
        },
    )

    assert answer.status_code == 200, answer.content
    assert answer.json()["result"] == "applied"
    run_tick()
    assert_outcome(lead, call, status, "from_the_provider")

    # The provider delivers the same event again (at-least-once): a no-op, still routed once.
    again = post_webhook(
        client,
        call,
        {
            "event_id": "provider-evt-1",
            "status": status.value,
            "occurred_at": timezone.now().isoformat(),
            "end_reason": "from_the_provider",
        },
    )
    assert again.status_code == 200
    assert again.json()["result"] == "duplicate"
    run_tick()
    assert_outcome(lead, call, status, "from_the_provider")
    assert CallEvent.objects.filter(call=call).count() == 1


def test_webhook_with_a_bad_signature_stores_nothing_and_routes_nothing(workspace, manager, client):
    workflow = make_workflow(workspace)
    [(lead, call)] = activate_and_call(workflow, manager)
    payload = {
        "event_id": "forged",
        "status": "completed",
        "occurred_at": timezone.now().isoformat(),
    }

    forged = post_webhook(client, call, payload, signature=sign(b"{}"))
    wrong_secret = post_webhook(
        client, call, payload, signature=sign(json.dumps(payload).encode(), secret="not-ours")
    )

    assert forged.status_code == wrong_secret.status_code == 401
    run_tick()
    assert not CallEvent.objects.filter(call=call).exists()
    assert_outcome(lead, call, CS.CREATED, "")


# --- a missing output ---------------------------------------------------------------------

MISSING_OUTPUT_REMOVES = {
    Branch.COMPLETED: {"won"},
    Branch.DNP: {"dnp_wait", "lost"},
    Branch.FAILED: {"failed_end"},
}


@pytest.mark.parametrize(
    ("missing", "status"),
    [
        (Branch.COMPLETED, CS.COMPLETED),
        (Branch.DNP, CS.DID_NOT_PICK),
        (Branch.DNP, CS.BUSY),
        (Branch.FAILED, CS.FAILED),
        (Branch.FAILED, CS.NO_ANSWER),
    ],
    ids=lambda v: v.value,
)
def test_a_missing_output_keeps_the_lead_at_the_node_for_review(
    workspace, manager, missing, status
):
    # Without the branch, its target (and what only it leads to) goes too: the graph stays valid.
    gone = MISSING_OUTPUT_REMOVES[missing]
    nodes = [n for n in ROUTING_NODES if n.key not in gone]
    edges = [e for e in ROUTING_EDGES if e.target not in gone and e.source not in gone]
    workflow = make_workflow(workspace, nodes, edges, leads=2)
    [(held_lead, held_call), (other_lead, other_call)] = activate_and_call(workflow, manager)
    # Activation succeeded with a warning naming the branch, not an error.
    activation = WorkflowEvent.objects.get(workflow=workflow, action="activate")
    assert any(missing.value in w["message"] for w in activation.detail["warnings"])
    # The other lead's call ends in a group that has an output.
    other_status = CS.FAILED if missing != Branch.FAILED else CS.COMPLETED

    report(held_call, status, end_reason="x")
    report(other_call, other_status, end_reason="y")
    run_tick()
    run_tick()

    execution = LeadExecution.objects.select_related("node").get(lead=held_lead)
    assert execution.node.key == "call"
    assert execution.status == ExecutionStatus.ACTIVE
    assert execution.needs_review
    assert f"no {missing.value} output" in execution.review_reason
    assert status.value in execution.review_reason
    rows = history(held_lead)
    assert [r.reason for r in rows] == ["started", "moved", "call_review"]
    assert rows[-1].metadata["branch"] == missing.value
    assert rows[-1].metadata["call_status"] == status.value
    why = explain(Lead.objects.get(pk=held_lead.pk))
    assert why.startswith("Needs review at 'Call 1': ")
    assert f"no {missing.value} output" in why

    # The other branch still routes normally.
    assert_outcome(other_lead, other_call, other_status, "y")


# --- exactly once ---------------------------------------------------------------------------


def test_the_first_final_status_wins_and_the_lead_is_routed_once(workspace, manager):
    workflow = make_workflow(workspace)
    [(lead, call)] = activate_and_call(workflow, manager)

    assert report(call, CS.BUSY, event_id="e1", end_reason="line_busy").outcome == "applied"
    # Before the engine routes: the same event again, then a different final status.
    assert report(call, CS.BUSY, event_id="e1").outcome == "duplicate"
    late = report(call, CS.COMPLETED, event_id="e2", end_reason="talked")
    assert late.outcome == "ignored"
    # ... and a late in-progress status.
    assert report(call, CS.CONNECTED, event_id="e3").outcome == "ignored"
    for _ in range(3):
        run_tick()

    assert_outcome(lead, call, CS.BUSY, "line_busy")
    events = list(CallEvent.objects.filter(call=call).order_by("id"))
    assert [e.event_id for e in events] == ["e1", "e2", "e3"]
    assert [bool(e.ignored_reason) for e in events] == [False, True, True]
    assert "conflicting" in events[1].ignored_reason

    # After the move, yet another final status reaches the call but not the lead.
    report(call, CS.FAILED, event_id="e4")
    run_tick()
    assert_outcome(lead, call, CS.BUSY, "line_busy")
    assert (
        LeadTransition.objects.filter(lead=lead, reason=TransitionReason.CALL_ROUTED).count() == 1
    )


def test_a_worker_whose_lease_was_taken_over_cannot_route_the_lead_again(workspace, manager):
    workflow = make_workflow(workspace)
    [(lead, call)] = activate_and_call(workflow, manager)
    report(call, CS.COMPLETED, end_reason="done")

    # Worker A claims the lead, then stalls past its lease; worker B takes over and routes.
    ids = claim("worker-a", 10)
    assert ids == [LeadExecution.objects.get(lead=lead).pk]
    LeadExecution.objects.filter(pk__in=ids).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    run_tick()
    assert_outcome(lead, call, CS.COMPLETED, "done")

    # Worker A wakes up and processes its stale batch: nothing moves, nothing is written.
    assert process(ids, "worker-a") == {}
    assert_outcome(lead, call, CS.COMPLETED, "done")


def test_review_status_then_a_late_routable_status_keeps_the_lead_in_review(workspace, manager):
    workflow = make_workflow(workspace)
    [(lead, call)] = activate_and_call(workflow, manager)
    report(call, CS.RETRY_EXPIRED, event_id="first", end_reason="retry_window_expired")
    run_tick()

    report(call, CS.COMPLETED, event_id="second")
    LeadExecution.objects.filter(lead=lead).update(due_at=timezone.now())  # even if woken up
    run_tick()

    assert_outcome(lead, call, CS.RETRY_EXPIRED, "retry_window_expired")


def test_many_leads_in_one_batch_each_route_by_their_own_call(workspace, manager):
    statuses = list(CallStatus)
    workflow = make_workflow(workspace, leads=len(statuses))
    pairs = activate_and_call(workflow, manager)
    for (_lead, call), status in zip(pairs, statuses, strict=True):
        report(call, status, end_reason=f"r-{status.value}")

    run_tick()

    for (lead, call), status in zip(pairs, statuses, strict=True):
        assert_outcome(lead, call, status, f"r-{status.value}")
    # Leads remain active at 'Call 1' (in progress, review) and at 'Try tomorrow'.
    workflow.refresh_from_db()
    assert workflow.status == WorkflowStatus.ACTIVE


# --- why -----------------------------------------------------------------------------------


def test_why_says_which_call_the_lead_waits_for_and_its_current_status(
    workspace, manager, manager_api
):
    workflow = make_workflow(workspace)
    [(lead, call)] = activate_and_call(workflow, manager)

    assert explain(Lead.objects.get(pk=lead.pk)) == (
        f"Waiting at 'Call 1' for a final status of call {call.pk} (now created)."
    )
    report(call, CS.INITIATED)
    report(call, CS.CONNECTED)
    run_tick()

    expected = f"Waiting at 'Call 1' for a final status of call {call.pk} (now connected)."
    assert explain(Lead.objects.get(pk=lead.pk)) == expected
    answer = manager_api.get(f"/v1/leads/{lead.pk}")
    assert answer.status_code == 200
    body = answer.json()
    assert body["why"] == expected
    assert (body["current_node"], body["call_id"], body["status"]) == ("call", call.pk, "active")

    report(call, CS.RETRY_EXPIRED, end_reason="retry_window_expired")
    run_tick()
    body = manager_api.get(f"/v1/leads/{lead.pk}").json()
    assert body["needs_review"] is True
    assert "retry_expired" in body["review_reason"]
    assert body["why"] == f"Needs review at 'Call 1': {body['review_reason']}"


# --- end to end with the simulator and the real worker -------------------------------------


@pytest.mark.django_db(transaction=True)
def test_simulated_calls_route_by_their_sim_status_through_the_worker(workspace, manager, settings):
    settings.DIALNEXA_SIMULATOR_DELAY = 0
    settings.DIALNEXA_CALL_PROVIDER = "simulator"
    wanted = [CS.COMPLETED, CS.BUSY, CS.NO_ANSWER, CS.CANCELLED]
    workflow = make_workflow(
        workspace, leads=len(wanted), fields=[{"sim_status": s.value} for s in wanted]
    )

    control.perform(workflow.pk, "activate", manager)
    drain_tasks()

    for lead, status in zip(workflow.leads.order_by("id"), wanted, strict=True):
        call = CallLog.objects.get(lead=lead)
        assert [e.status for e in call.events.order_by("id")] == [
            "initiated",
            "connected",
            status.value,
        ]
        assert call.end_reason
        assert_outcome(lead, call, status, call.end_reason)


# --- a retry loop through a time node: one call per visit ---------------------------------


def test_a_dnp_loop_through_a_time_node_places_one_new_call_per_visit(workspace, manager):
    nodes = [
        NodeSpec("start", NodeType.ENTRY, "Start"),
        NodeSpec("call", NodeType.VOICE_CALL, "Call 1"),
        NodeSpec("won", NodeType.CONVERTED, "Won"),
        NodeSpec("retry", NodeType.TIME, "Retry later", {"delay_seconds": 3600}),
        NodeSpec("lost", NodeType.DROPPED, "Lost"),
    ]
    edges = [
        EdgeSpec("start", "call"),
        EdgeSpec("call", "won", Branch.COMPLETED),
        EdgeSpec("call", "retry", Branch.DNP),
        EdgeSpec("call", "lost", Branch.FAILED),
        EdgeSpec("retry", "call"),
    ]
    workflow = make_workflow(workspace, nodes, edges)
    [(lead, first)] = activate_and_call(workflow, manager)

    report(first, CS.DID_NOT_PICK, end_reason="no_pickup")
    run_tick()
    assert LeadExecution.objects.get(lead=lead).node.key == "retry"
    run_tick()  # not due yet: no second call
    assert CallLog.objects.filter(lead=lead).count() == 1

    LeadExecution.objects.filter(lead=lead).update(due_at=timezone.now() - timedelta(seconds=1))
    run_tick()

    execution = LeadExecution.objects.select_related("node", "call").get(lead=lead)
    assert execution.node.key == "call"
    second = execution.call
    assert second is not None and second.pk != first.pk
    assert second.visit != first.visit
    assert CallLog.objects.filter(lead=lead).count() == 2
    # A late, conflicting report for the first call does not touch the second visit.
    report(first, CS.COMPLETED, event_id="late")
    run_tick()
    assert LeadExecution.objects.get(lead=lead).node.key == "call"
    assert explain(Lead.objects.get(pk=lead.pk)) == (
        f"Waiting at 'Call 1' for a final status of call {second.pk} (now created)."
    )

    report(second, CS.COMPLETED, end_reason="talked")
    run_tick()
    run_tick()

    rows = history(lead)
    assert [(r.reason, r.to_node.key) for r in rows] == [
        ("started", "start"),
        ("moved", "call"),
        ("call_routed", "retry"),
        ("released", "call"),
        ("call_routed", "won"),
    ]
    assert [r.metadata["call_id"] for r in rows if r.reason == "call_routed"] == [
        first.pk,
        second.pk,
    ]
    assert [r.metadata["branch"] for r in rows if r.reason == "call_routed"] == [
        "DNP",
        "COMPLETED",
    ]
    assert LeadExecution.objects.get(lead=lead).status == ExecutionStatus.COMPLETED
    assert CallLog.objects.filter(lead=lead).count() == 2
