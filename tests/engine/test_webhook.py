"""The signed call-status webhook, POST /v1/calls/{id}/status (SPEC 6).

Calls are placed by the real engine (activation, start, sweep); status reports come in through
the Django test client with a real signature.
"""

import json
import time
from datetime import timedelta

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from calls.models import IN_PROGRESS_CALL_STATUSES, CallEvent, CallLog, CallStatus
from engine import control
from engine.signing import HEADER, sign
from engine.starting import start_pending_leads
from engine.sweep import run_tick
from leads.models import ExecutionStatus, LeadExecution, LeadTransition, TransitionReason
from tests.factories import LeadFactory, WorkflowFactory, with_simple_graph
from workflows.statuses import WorkflowAction

FINALS = [s for s in CallStatus if s.is_final]
IN_PROGRESS = [s for s in CallStatus if not s.is_final]
ROUTING_REASONS = [TransitionReason.CALL_ROUTED, TransitionReason.CALL_REVIEW]
# Where the simple graph sends a lead for each final status (None: stays for review).
TARGET = {
    CallStatus.COMPLETED: "won",
    CallStatus.DID_NOT_PICK: "lost",
    CallStatus.BUSY: "lost",
    CallStatus.FAILED: "lost",
    CallStatus.NO_ANSWER: "lost",
    CallStatus.CANCELLED: None,
    CallStatus.RETRY_EXPIRED: None,
}


def lead_with_call(workspace, manager, **lead_fields):
    """A lead of an active workflow, waiting at the Voice Call node for its (simulated) call."""
    workflow = WorkflowFactory(workspace=workspace, window_start=None, window_end=None)
    with_simple_graph(workflow)
    lead = LeadFactory(workflow=workflow, **lead_fields)
    control.perform(workflow.pk, WorkflowAction.ACTIVATE, manager)
    start_pending_leads(workflow.pk)
    run_tick()
    call = CallLog.objects.get(lead=lead)
    execution = LeadExecution.objects.get(lead=lead)
    assert (execution.node.key, execution.call_id, call.status) == ("call", call.pk, "created")
    return workflow, lead, call


@pytest.fixture
def waiting(workspace, manager):
    return lead_with_call(workspace, manager)


def event(event_id: str, status, **extra) -> dict:
    return {
        "event_id": event_id,
        "status": str(status),
        "occurred_at": timezone.now().isoformat(),
        **extra,
    }


def deliver(client, call_id: int, payload, *, header: str | None = None, raw: bytes | None = None):
    body = raw if raw is not None else json.dumps(payload).encode()
    headers = {HEADER: sign(body) if header is None else header}
    return client.post(
        f"/v1/calls/{call_id}/status", data=body, content_type="application/json", headers=headers
    )


def call_snapshot(call_id: int) -> dict:
    return CallLog.objects.filter(pk=call_id).values().get()


def routing_rows(lead, call):
    return LeadTransition.objects.filter(
        lead=lead, reason__in=ROUTING_REASONS, metadata__call_id=call.pk
    )


# --- signatures -----------------------------------------------------------------------------


def _bad_headers(body: bytes) -> dict[str, str | None]:
    now = int(time.time())
    good = sign(body, timestamp=now)
    digest = good.split("v1=", 1)[1]
    return {
        "missing": None,
        "empty": "",
        "no_v1": f"t={now}",
        "no_t": f"v1={digest}",
        "t_not_a_number": f"t=yesterday,v1={digest}",
        "garbage": "not a signature",
        "wrong_secret": sign(body, secret="not-our-secret", timestamp=now),
        "other_body": sign(body + b" ", timestamp=now),
        "digest_for_another_t": f"t={now - 1},v1={digest}",
        "truncated_digest": f"t={now},v1={digest[:-2]}",
        "non_hex_digest": f"t={now},v1={'z' * 64}",
        "non_ascii_digest": f"t={now},v1={'é' * 64}",
        "stale": sign(body, timestamp=now - 301),
        "stale_by_hours": sign(body, timestamp=now - 6 * 3600),
        "future": sign(body, timestamp=now + 301),
    }


BAD_SIGNATURES = list(_bad_headers(b"").keys())


@pytest.mark.parametrize("case", BAD_SIGNATURES)
def test_bad_signature_is_401_and_stores_nothing(client, waiting, case):
    _workflow, lead, call = waiting
    payload = event("ev-1", CallStatus.COMPLETED, end_reason="done", duration_s=12)
    body = json.dumps(payload).encode()
    header = _bad_headers(body)[case]
    before = call_snapshot(call.pk)
    execution_before = LeadExecution.objects.filter(lead=lead).values().get()

    headers = {} if header is None else {HEADER: header}
    response = client.post(
        f"/v1/calls/{call.pk}/status", data=body, content_type="application/json", headers=headers
    )

    assert response.status_code == 401, response.content
    answer = response.json()
    assert set(answer) >= {"error", "detail"}
    assert answer["error"] and answer["detail"]
    assert not CallEvent.objects.filter(call=call).exists()
    assert call_snapshot(call.pk) == before
    assert LeadExecution.objects.filter(lead=lead).values().get() == execution_before


def test_missing_and_stale_signatures_say_why(client, waiting):
    _workflow, _lead, call = waiting
    body = json.dumps(event("ev-1", CallStatus.BUSY)).encode()

    missing = client.post(f"/v1/calls/{call.pk}/status", data=body, content_type="application/json")
    stale = deliver(client, call.pk, None, raw=body, header=sign(body, timestamp=0))

    assert missing.status_code == stale.status_code == 401
    assert HEADER in missing.json()["detail"]
    assert "5 minutes" in stale.json()["detail"]


def test_a_signature_a_little_old_or_early_is_accepted(client, waiting):
    """The 5-minute tolerance allows for clock skew both ways."""
    _workflow, _lead, call = waiting
    now = int(time.time())
    first = json.dumps(event("ev-1", CallStatus.INITIATED)).encode()
    second = json.dumps(event("ev-2", CallStatus.CONNECTED)).encode()

    old = deliver(client, call.pk, None, raw=first, header=sign(first, timestamp=now - 240))
    early = deliver(client, call.pk, None, raw=second, header=sign(second, timestamp=now + 60))

    assert (old.status_code, early.status_code) == (200, 200)
    assert CallLog.objects.get(pk=call.pk).status == CallStatus.CONNECTED


def test_the_signature_covers_the_exact_bytes(client, waiting):
    """Same JSON, different spacing: the signature of the compact form does not match."""
    _workflow, _lead, call = waiting
    payload = event("ev-1", CallStatus.COMPLETED)
    compact = json.dumps(payload, separators=(",", ":")).encode()
    spaced = json.dumps(payload, indent=2).encode()

    response = deliver(client, call.pk, None, raw=spaced, header=sign(compact))

    assert response.status_code == 401
    assert not CallEvent.objects.exists()


def test_the_webhook_needs_no_session_or_token(client, waiting, manager):
    """The signature is the authentication: a logged-in user without one is refused."""
    _workflow, _lead, call = waiting
    client.force_login(manager)
    body = json.dumps(event("ev-1", CallStatus.COMPLETED)).encode()

    response = client.post(
        f"/v1/calls/{call.pk}/status", data=body, content_type="application/json"
    )

    assert response.status_code == 401
    assert not CallEvent.objects.exists()


# --- bad requests ---------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["finished", "COMPLETED", "", None, 3])
def test_unknown_status_is_400_and_stores_nothing(client, waiting, status):
    _workflow, _lead, call = waiting
    before = call_snapshot(call.pk)
    payload = {"event_id": "ev-1", "status": status, "occurred_at": timezone.now().isoformat()}

    response = deliver(client, call.pk, payload)

    assert response.status_code == 400, response.content
    assert set(response.json()) >= {"error", "detail"}
    assert not CallEvent.objects.exists()
    assert call_snapshot(call.pk) == before


def test_unknown_call_is_404(client, waiting):
    _workflow, _lead, call = waiting
    before = call_snapshot(call.pk)
    missing = CallLog.objects.order_by("-pk").first().pk + 1000

    response = deliver(client, missing, event("ev-1", CallStatus.COMPLETED))

    assert response.status_code == 404
    assert set(response.json()) >= {"error", "detail"}
    assert not CallEvent.objects.exists()
    assert call_snapshot(call.pk) == before


def test_unknown_call_with_a_bad_signature_is_401(client, waiting):
    """The signature is checked first: nobody learns which call ids exist without the secret."""
    response = deliver(client, 987654, event("ev-1", "completed"), header="t=1,v1=00")
    assert response.status_code == 401


@pytest.mark.parametrize(
    "payload",
    [
        {"status": "completed", "occurred_at": "2025-01-01T10:00:00Z"},  # no event_id
        {"event_id": "ev-1", "status": "completed"},  # no occurred_at
        {"event_id": "ev-1", "status": "completed", "occurred_at": "yesterday"},
        {
            "event_id": "ev-1",
            "status": "completed",
            "occurred_at": "2025-01-01T10:00:00Z",
            "duration_s": -3,
        },
        ["completed"],
    ],
    ids=["no_event_id", "no_occurred_at", "bad_time", "negative_duration", "not_an_object"],
)
def test_malformed_event_is_400_and_stores_nothing(client, waiting, payload):
    _workflow, _lead, call = waiting
    before = call_snapshot(call.pk)

    response = deliver(client, call.pk, payload)

    assert response.status_code == 400, response.content
    assert set(response.json()) >= {"error", "detail"}
    assert not CallEvent.objects.exists()
    assert call_snapshot(call.pk) == before


def test_a_body_that_is_not_json_is_400(client, waiting):
    _workflow, _lead, call = waiting
    raw = b"status=completed"

    response = deliver(client, call.pk, None, raw=raw)

    assert response.status_code == 400
    assert not CallEvent.objects.exists()


# --- valid events ---------------------------------------------------------------------------


def test_valid_final_event_is_stored_and_updates_the_call(client, waiting):
    _workflow, lead, call = waiting
    occurred = timezone.now() - timedelta(seconds=5)
    transcript = [
        {"speaker": "agent", "text": "Hello, is this Ann?"},
        {"speaker": "lead", "text": "Yes."},
    ]
    payload = {
        "event_id": "prov-evt-1",
        "status": "completed",
        "occurred_at": occurred.isoformat(),
        "end_reason": "customer_hung_up",
        "duration_s": 37,
        "transcript": transcript,
        "recording_url": "https://recordings.example.com/c1.mp3",
        "post_call": {"summary": "Wants a demo", "sentiment": "positive", "extracted": {"x": 1}},
    }

    response = deliver(client, call.pk, payload)

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "completed"
    [stored] = CallEvent.objects.filter(call=call)
    assert (stored.event_id, stored.status, stored.ignored_reason) == (
        "prov-evt-1",
        "completed",
        "",
    )
    assert stored.occurred_at == occurred
    assert stored.payload["end_reason"] == "customer_hung_up"
    call.refresh_from_db()
    assert call.status == CallStatus.COMPLETED
    assert call.end_reason == "customer_hung_up"
    assert call.duration_s == 37
    assert call.transcript == transcript
    assert call.recording_url == "https://recordings.example.com/c1.mp3"
    assert call.post_call == payload["post_call"]
    assert call.ended_at == occurred
    # The lead is made due, and the next tick routes it by the status.
    run_tick()
    execution = LeadExecution.objects.get(lead=lead)
    assert (execution.status, execution.node.key) == (ExecutionStatus.COMPLETED, "won")
    [routed] = routing_rows(lead, call)
    assert routed.metadata["call_status"] == "completed"
    assert routed.metadata["end_reason"] == "customer_hung_up"


def test_in_progress_events_update_the_call_and_do_not_route(client, waiting):
    _workflow, lead, call = waiting
    started = timezone.now() - timedelta(seconds=30)
    answered = started + timedelta(seconds=4)

    first = deliver(
        client,
        call.pk,
        {
            "event_id": "e1",
            "status": "initiated",
            "occurred_at": started.isoformat(),
            "provider_call_id": "prov-77",
        },
    )
    second = deliver(
        client,
        call.pk,
        {"event_id": "e2", "status": "connected", "occurred_at": answered.isoformat()},
    )
    run_tick()

    assert (first.status_code, second.status_code) == (200, 200)
    call.refresh_from_db()
    assert call.status == CallStatus.CONNECTED
    assert (call.started_at, call.answered_at, call.provider_call_id) == (
        started,
        answered,
        "prov-77",
    )
    execution = LeadExecution.objects.get(lead=lead)
    assert (execution.node.key, execution.status, execution.call_id) == ("call", "active", call.pk)
    assert not routing_rows(lead, call).exists()
    # Without a duration in the final report, it is measured from answer to end.
    ended = answered + timedelta(seconds=25)
    deliver(client, call.pk, {"event_id": "e3", "status": "busy", "occurred_at": ended.isoformat()})
    call.refresh_from_db()
    assert (call.status, call.duration_s, call.ended_at) == ("busy", 25, ended)


def test_duplicate_event_id_is_a_200_no_op(client, waiting):
    _workflow, lead, call = waiting
    payload = event("ev-dup", CallStatus.COMPLETED, end_reason="first")

    first = deliver(client, call.pk, payload)
    snapshot = call_snapshot(call.pk)
    # The same event again, even with different content: nothing happens.
    again = deliver(client, call.pk, {**payload, "status": "busy", "end_reason": "second"})
    same = deliver(client, call.pk, payload)

    assert (first.status_code, again.status_code, same.status_code) == (200, 200, 200)
    assert CallEvent.objects.filter(call=call).count() == 1
    assert call_snapshot(call.pk) == snapshot
    assert CallLog.objects.get(pk=call.pk).end_reason == "first"
    run_tick()
    assert routing_rows(lead, call).count() == 1


def test_late_in_progress_after_final_is_kept_flagged_and_changes_nothing(client, waiting):
    _workflow, lead, call = waiting
    deliver(client, call.pk, event("ev-final", CallStatus.NO_ANSWER, end_reason="no_answer"))
    snapshot = call_snapshot(call.pk)

    response = deliver(
        client,
        call.pk,
        event("ev-late", CallStatus.CONNECTED, recording_url="https://r.example.com/late.mp3"),
    )

    assert response.status_code == 200
    call.refresh_from_db()
    assert call.status == CallStatus.NO_ANSWER
    assert call_snapshot(call.pk) == snapshot
    late = CallEvent.objects.get(call=call, event_id="ev-late")
    assert late.status == CallStatus.CONNECTED
    assert late.ignored_reason
    assert CallEvent.objects.get(call=call, event_id="ev-final").ignored_reason == ""
    run_tick()
    [routed] = routing_rows(lead, call)
    assert routed.metadata["call_status"] == "no_answer"
    assert LeadExecution.objects.get(lead=lead).node.key == "lost"


def test_an_older_in_progress_status_does_not_move_the_call_back(client, waiting):
    _workflow, _lead, call = waiting
    deliver(client, call.pk, event("e-conn", CallStatus.CONNECTED))

    response = deliver(client, call.pk, event("e-init", CallStatus.INITIATED))

    assert response.status_code == 200
    assert CallLog.objects.get(pk=call.pk).status == CallStatus.CONNECTED
    assert CallEvent.objects.get(call=call, event_id="e-init").ignored_reason


def test_a_second_different_final_is_kept_flagged_and_the_first_stays(client, waiting):
    _workflow, lead, call = waiting
    deliver(
        client, call.pk, event("ev-1", CallStatus.COMPLETED, end_reason="talked", duration_s=50)
    )
    run_tick()
    snapshot = call_snapshot(call.pk)

    response = deliver(
        client, call.pk, event("ev-2", CallStatus.FAILED, end_reason="carrier", duration_s=0)
    )
    run_tick()

    assert response.status_code == 200
    call.refresh_from_db()
    assert (call.status, call.end_reason, call.duration_s) == ("completed", "talked", 50)
    assert call_snapshot(call.pk) == snapshot
    second = CallEvent.objects.get(call=call, event_id="ev-2")
    assert second.status == CallStatus.FAILED
    assert second.ignored_reason
    assert routing_rows(lead, call).count() == 1
    execution = LeadExecution.objects.get(lead=lead)
    assert (execution.status, execution.node.key) == ("completed", "won")


def test_a_second_final_before_the_tick_does_not_change_the_routing(client, waiting):
    """The first final decides, even if the sweep only runs after the second one arrived."""
    _workflow, lead, call = waiting
    deliver(client, call.pk, event("a", CallStatus.BUSY))
    deliver(client, call.pk, event("b", CallStatus.COMPLETED))

    run_tick()

    assert CallLog.objects.get(pk=call.pk).status == CallStatus.BUSY
    execution = LeadExecution.objects.get(lead=lead)
    assert (execution.status, execution.node.key) == ("dropped", "lost")
    [routed] = routing_rows(lead, call)
    assert routed.metadata["call_status"] == "busy"


def test_every_event_is_kept(client, waiting):
    _workflow, _lead, call = waiting
    sequence = [
        ("e1", "initiated"),
        ("e2", "connected"),
        ("e1", "initiated"),  # duplicate
        ("e3", "initiated"),  # older
        ("e4", "completed"),
        ("e5", "waiting"),  # late
        ("e6", "busy"),  # conflicting final
        ("e4", "completed"),  # duplicate
    ]
    for event_id, status in sequence:
        assert deliver(client, call.pk, event(event_id, status)).status_code == 200

    events = list(CallEvent.objects.filter(call=call).order_by("id"))
    assert [(e.event_id, e.status) for e in events] == [
        ("e1", "initiated"),
        ("e2", "connected"),
        ("e3", "initiated"),
        ("e4", "completed"),
        ("e5", "waiting"),
        ("e6", "busy"),
    ]
    assert [bool(e.ignored_reason) for e in events] == [False, False, True, False, True, True]
    assert CallLog.objects.get(pk=call.pk).status == CallStatus.COMPLETED


@pytest.mark.parametrize("final", FINALS)
def test_each_final_status_routes_by_its_group(client, waiting, final):
    _workflow, lead, call = waiting

    deliver(client, call.pk, event("ev", final))
    run_tick()

    execution = LeadExecution.objects.get(lead=lead)
    [row] = routing_rows(lead, call)
    assert row.metadata["call_status"] == final
    if TARGET[final] is None:
        assert (execution.node.key, execution.status, execution.needs_review) == (
            "call",
            "active",
            True,
        )
        assert row.reason == TransitionReason.CALL_REVIEW
    else:
        assert execution.node.key == TARGET[final]
        assert row.reason == TransitionReason.CALL_ROUTED


# --- property: unordered, at-least-once delivery --------------------------------------------


@st.composite
def deliveries(draw):
    """Distinct events (some in progress, at least one final), shuffled, partly repeated."""
    progress = draw(st.lists(st.sampled_from(IN_PROGRESS), max_size=4))
    finals = draw(st.lists(st.sampled_from(FINALS), min_size=1, max_size=3))
    distinct = [(f"evt-{i}", status) for i, status in enumerate(progress + finals)]
    repeats = draw(st.lists(st.sampled_from(distinct), max_size=4))
    order = draw(st.permutations(distinct + repeats))
    # Where the sweep runs between deliveries (it may run at any time).
    ticks = draw(st.lists(st.booleans(), min_size=len(order), max_size=len(order)))
    return distinct, order, ticks


@pytest.mark.django_db
@hsettings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(plan=deliveries())
def test_any_delivery_order_routes_once_on_the_first_final(client, workspace, manager, plan):
    distinct, order, ticks = plan
    _workflow, lead, call = lead_with_call(workspace, manager)

    for (event_id, status), tick in zip(order, ticks, strict=True):
        response = deliver(client, call.pk, event(event_id, status))
        assert response.status_code == 200, response.content
        if tick:
            run_tick()
    run_tick()

    first_final = next(status for _, status in order if status.is_final)
    call.refresh_from_db()
    assert call.status == first_final
    assert call.routed_at is not None
    [row] = routing_rows(lead, call)
    assert row.metadata["call_status"] == first_final
    assert (
        not LeadTransition.objects.filter(lead=lead, reason__in=ROUTING_REASONS)
        .exclude(pk=row.pk)
        .exists()
    )
    execution = LeadExecution.objects.get(lead=lead)
    if TARGET[first_final] is None:
        assert (execution.node.key, execution.needs_review) == ("call", True)
    else:
        assert execution.node.key == TARGET[first_final]
        assert execution.status != ExecutionStatus.ACTIVE
    stored = dict(CallEvent.objects.filter(call=call).values_list("event_id", "status"))
    assert stored == {event_id: str(status) for event_id, status in distinct}
    # Only the first final changed the call; every other final is flagged.
    finals_kept = CallEvent.objects.filter(call=call, status__in=[str(s) for s in FINALS])
    assert finals_kept.filter(ignored_reason="").count() == 1
    assert CallStatus(call.status) not in IN_PROGRESS_CALL_STATUSES
    # History stays contiguous whatever the order.
    rows = list(LeadTransition.objects.filter(lead=lead).order_by("id"))
    assert all(rows[i].from_node_id == rows[i - 1].to_node_id for i in range(1, len(rows)))
