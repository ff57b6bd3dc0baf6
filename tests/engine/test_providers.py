"""Call providers (SPEC 6): the simulator, and the http provider against a real local dialer."""

import json
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

import pytest
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from calls.models import CallEvent, CallLog, CallStatus
from engine import control, providers
from engine.call_status import record_call_status
from engine.providers import simulate_call_step, simulated_final_status
from engine.signing import HEADER, BadSignature, sign, verify
from engine.starting import start_pending_leads
from engine.sweep import run_tick
from leads.models import ExecutionStatus, LeadExecution, LeadTransition, TransitionReason
from tests.factories import LeadFactory, WorkflowFactory, drain_tasks
from workflows.graph import EdgeSpec, NodeSpec
from workflows.graph_store import replace_graph
from workflows.models import Workflow
from workflows.statuses import Branch, NodeType, WorkflowAction, WorkflowStatus

FINALS = [s for s in CallStatus if s.is_final]
# Every Voice Call output goes to its own terminal, so the branch taken is visible.
NODES = [
    NodeSpec("start", NodeType.ENTRY, "Start"),
    NodeSpec("call", NodeType.VOICE_CALL, "Call 1"),
    NodeSpec("won", NodeType.CONVERTED, "Won"),
    NodeSpec("dnp", NodeType.DROPPED, "Did not pick"),
    NodeSpec("failed", NodeType.DROPPED, "Failed"),
]
EDGES = [
    EdgeSpec("start", "call"),
    EdgeSpec("call", "won", Branch.COMPLETED),
    EdgeSpec("call", "dnp", Branch.DNP),
    EdgeSpec("call", "failed", Branch.FAILED),
]
# Where each final status sends the lead (None: it stays at the call node for review).
TARGET = {
    CallStatus.COMPLETED: "won",
    CallStatus.DID_NOT_PICK: "dnp",
    CallStatus.BUSY: "dnp",
    CallStatus.FAILED: "failed",
    CallStatus.NO_ANSWER: "failed",
    CallStatus.CANCELLED: None,
    CallStatus.RETRY_EXPIRED: None,
}


def only(status: str) -> dict[str, int]:
    """Simulator weights where only `status` can be drawn."""
    return {str(s): (1 if s == status else 0) for s in FINALS}


def new_workflow(workspace, leads: list[dict]):
    workflow = WorkflowFactory(workspace=workspace, window_start=None, window_end=None)
    replace_graph(workflow, NODES, EDGES)
    made = [LeadFactory(workflow=workflow, **lead) for lead in leads]
    return workflow, made


def place_call(workspace, manager, **lead):
    """Run the engine in-process until the lead's call is placed (its provider task queued)."""
    workflow, [made] = new_workflow(workspace, [lead])
    control.perform(workflow.pk, WorkflowAction.ACTIVATE, manager)
    start_pending_leads(workflow.pk)
    run_tick()
    call = CallLog.objects.get(lead=made)
    assert call.status == CallStatus.CREATED
    return workflow, made, call


def events_of(call) -> list[tuple[str, str, str]]:
    return list(
        CallEvent.objects.filter(call=call)
        .order_by("id")
        .values_list("event_id", "status", "ignored_reason")
    )


def routing_row(lead):
    return LeadTransition.objects.get(
        lead=lead, reason__in=[TransitionReason.CALL_ROUTED, TransitionReason.CALL_REVIEW]
    )


def assert_lead_routed_by(lead, status: CallStatus):
    execution = LeadExecution.objects.select_related("node").get(lead=lead)
    row = routing_row(lead)
    assert row.metadata["call_status"] == status
    if TARGET[status] is None:
        assert (execution.node.key, execution.status, execution.needs_review) == (
            "call",
            ExecutionStatus.ACTIVE,
            True,
        )
    else:
        assert execution.node.key == TARGET[status]
        assert execution.status in (ExecutionStatus.COMPLETED, ExecutionStatus.DROPPED)
        assert row.to_node.key == TARGET[status]


@pytest.fixture
def fast_simulator(settings):
    settings.DIALNEXA_CALL_PROVIDER = "simulator"
    settings.DIALNEXA_SIMULATOR_DELAY = 0
    return settings


# --- simulator: which final status -----------------------------------------------------------


@pytest.mark.parametrize("final", FINALS)
def test_sim_status_decides_the_final_status(fast_simulator, workspace, manager, final):
    # The weights would draw something else: the lead's field wins.
    other = CallStatus.BUSY if final != CallStatus.BUSY else CallStatus.COMPLETED
    fast_simulator.DIALNEXA_SIMULATOR_WEIGHTS = only(other)
    _workflow, lead, call = place_call(workspace, manager, fields={"sim_status": str(final)})

    assert simulated_final_status(call) == final
    assert simulate_call_step.call(call.pk, 0) == final

    call.refresh_from_db()
    assert call.status == final
    assert call.end_reason  # every simulated final status says why the call ended
    assert call.ended_at is not None
    run_tick()
    assert_lead_routed_by(lead, final)


@pytest.mark.parametrize("final", FINALS)
def test_without_sim_status_the_weights_decide(fast_simulator, workspace, manager, final):
    fast_simulator.DIALNEXA_SIMULATOR_WEIGHTS = only(final)
    _workflow, lead, call = place_call(workspace, manager, fields={"plan": "gold"})

    simulate_call_step.call(call.pk, 0)

    call.refresh_from_db()
    assert call.status == final
    run_tick()
    assert_lead_routed_by(lead, final)


@pytest.mark.parametrize("sim_status", ["connected", "initiated", "COMPLETED", "won", "", None, 7])
def test_a_sim_status_that_is_not_a_final_status_falls_back_to_the_weights(
    fast_simulator, workspace, manager, sim_status
):
    fast_simulator.DIALNEXA_SIMULATOR_WEIGHTS = only(CallStatus.NO_ANSWER)
    _workflow, _lead, call = place_call(workspace, manager, fields={"sim_status": sim_status})

    simulate_call_step.call(call.pk, 0)

    assert CallLog.objects.get(pk=call.pk).status == CallStatus.NO_ANSWER


def test_weights_only_draw_statuses_with_a_positive_weight(fast_simulator, workspace):
    fast_simulator.DIALNEXA_SIMULATOR_WEIGHTS = {
        **only(CallStatus.COMPLETED),
        "busy": 1,
    }
    workflow, leads = new_workflow(workspace, [{} for _ in range(40)])
    node = workflow.nodes.get(key="call")
    calls = [
        CallLog.objects.create(
            lead=lead, workflow=workflow, node=node, visit=1, provider="simulator", to_number="+1"
        )
        for lead in leads
    ]

    drawn = [simulated_final_status(call) for call in calls]

    assert set(drawn) == {CallStatus.COMPLETED, CallStatus.BUSY}
    # The same call always gets the same outcome (a repeated step cannot change its mind).
    assert [simulated_final_status(call) for call in calls] == drawn


# --- simulator: the walk through the statuses ------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_simulated_call_goes_initiated_connected_final_through_the_worker(
    fast_simulator, workspace, manager
):
    workflow, [lead] = new_workflow(workspace, [{"fields": {"sim_status": "completed"}}])
    control.perform(workflow.pk, WorkflowAction.ACTIVATE, manager)

    drain_tasks()

    call = CallLog.objects.get(lead=lead)
    assert call.provider == "simulator"
    assert events_of(call) == [
        (f"sim-{call.pk}-initiated", "initiated", ""),
        (f"sim-{call.pk}-connected", "connected", ""),
        (f"sim-{call.pk}-final", "completed", ""),
    ]
    occurred = list(CallEvent.objects.filter(call=call).order_by("id").values_list("occurred_at"))
    assert occurred == sorted(occurred)
    assert call.started_at <= call.answered_at <= call.ended_at
    assert call.provider_call_id == f"sim-{call.pk}"
    assert call.routed_at is not None
    assert_lead_routed_by(lead, CallStatus.COMPLETED)
    workflow.refresh_from_db()
    assert workflow.status == WorkflowStatus.COMPLETED
    history = list(
        LeadTransition.objects.filter(lead=lead)
        .order_by("id")
        .values_list("from_node__key", "to_node__key", "reason")
    )
    assert history == [
        (None, "start", "started"),
        ("start", "call", "moved"),
        ("call", "won", "call_routed"),
    ]


@pytest.mark.django_db(transaction=True)
def test_every_lead_gets_exactly_one_simulated_call(fast_simulator, workspace, manager):
    fast_simulator.DIALNEXA_SIMULATOR_WEIGHTS = {
        "completed": 1,
        "busy": 1,
        "failed": 1,
        "did_not_pick": 0,
        "no_answer": 0,
        "cancelled": 0,
        "retry_expired": 0,
    }
    workflow, leads = new_workflow(workspace, [{} for _ in range(12)])
    Workflow.objects.filter(pk=workflow.pk).update(max_concurrent_calls=50)
    control.perform(workflow.pk, WorkflowAction.ACTIVATE, manager)

    drain_tasks()

    for lead in leads:
        [call] = CallLog.objects.filter(lead=lead)
        assert [e[1] for e in events_of(call)] == ["initiated", "connected", call.status]
        assert_lead_routed_by(lead, CallStatus(call.status))
    workflow.refresh_from_db()
    assert workflow.status == WorkflowStatus.COMPLETED


def test_a_completed_simulated_call_has_its_conversation(fast_simulator, workspace, manager):
    _workflow, _lead, call = place_call(
        workspace, manager, name="Ann Lee", fields={"sim_status": "completed"}
    )

    simulate_call_step.call(call.pk, 0)

    call.refresh_from_db()
    assert call.status == CallStatus.COMPLETED
    assert call.end_reason
    assert isinstance(call.transcript, list) and len(call.transcript) >= 2
    for turn in call.transcript:
        assert set(turn) == {"speaker", "text"}
        assert isinstance(turn["text"], str) and turn["text"]
    assert {turn["speaker"] for turn in call.transcript} >= {"agent", "lead"}
    assert "Ann Lee" in call.transcript[0]["text"]
    assert call.recording_url.startswith("http")
    assert set(call.post_call) >= {"summary", "sentiment", "extracted"}
    assert call.post_call["summary"]
    assert call.duration_s and call.duration_s > 0


def test_an_unanswered_simulated_call_has_no_conversation(fast_simulator, workspace, manager):
    _workflow, _lead, call = place_call(workspace, manager, fields={"sim_status": "did_not_pick"})

    simulate_call_step.call(call.pk, 0)

    call.refresh_from_db()
    assert call.status == CallStatus.DID_NOT_PICK
    assert call.end_reason
    assert call.transcript == []
    assert call.recording_url == ""
    assert call.duration_s == 0


def test_the_simulator_reports_through_record_call_status(
    fast_simulator, workspace, manager, monkeypatch
):
    """The simulator uses the very function behind the webhook."""
    _workflow, _lead, call = place_call(workspace, manager, fields={"sim_status": "busy"})
    seen = []

    def spy(call_id, report):
        seen.append((call_id, report.event_id, report.status))
        return record_call_status(call_id, report)

    monkeypatch.setattr(providers, "record_call_status", spy)

    simulate_call_step.call(call.pk, 0)

    assert seen == [
        (call.pk, f"sim-{call.pk}-initiated", CallStatus.INITIATED),
        (call.pk, f"sim-{call.pk}-connected", CallStatus.CONNECTED),
        (call.pk, f"sim-{call.pk}-final", CallStatus.BUSY),
    ]
    assert [e[0] for e in events_of(call)] == [event_id for _, event_id, _ in seen]


def test_with_a_delay_each_simulator_step_is_a_later_task(settings, workspace, manager):
    settings.DIALNEXA_SIMULATOR_DELAY = 30
    _workflow, _lead, call = place_call(workspace, manager, fields={"sim_status": "completed"})
    steps = DBTaskResult.objects.filter(task_path="engine.providers.simulate_call_step")
    [first] = steps
    assert first.args_kwargs["args"] == [call.pk, 0]
    assert first.run_after > timezone.now() + timedelta(seconds=20)

    simulate_call_step.call(call.pk, 0)

    call.refresh_from_db()
    assert call.status == CallStatus.INITIATED
    assert [e[1] for e in events_of(call)] == ["initiated"]
    assert sorted(s.args_kwargs["args"][1] for s in steps.all()) == [0, 1]


def test_repeating_a_simulator_step_is_harmless(settings, workspace, manager):
    """A step queued again (a worker died) repeats its fixed event id: a no-op."""
    settings.DIALNEXA_SIMULATOR_DELAY = 30
    _workflow, lead, call = place_call(workspace, manager, fields={"sim_status": "busy"})

    simulate_call_step.call(call.pk, 0)
    simulate_call_step.call(call.pk, 0)
    simulate_call_step.call(call.pk, 1)
    simulate_call_step.call(call.pk, 2)
    assert simulate_call_step.call(call.pk, 2) == "already final"
    assert simulate_call_step.call(call.pk, 0) == "already final"

    assert [e[:2] for e in events_of(call)] == [
        (f"sim-{call.pk}-initiated", "initiated"),
        (f"sim-{call.pk}-connected", "connected"),
        (f"sim-{call.pk}-final", "busy"),
    ]
    run_tick()
    assert_lead_routed_by(lead, CallStatus.BUSY)


# --- http provider ---------------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict
    body: bytes


@dataclass
class FakeDialer:
    """A real HTTP server on 127.0.0.1: answers each request with the next planned answer."""

    answers: list  # (status, json body or None, seconds to wait first); the last one repeats
    received: list[Received] = field(default_factory=list)
    url: str = ""

    def answer_for(self, index: int):
        return self.answers[min(index, len(self.answers) - 1)]


@contextmanager
def fake_dialer(*answers):
    dialer = FakeDialer(answers=list(answers))
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            with lock:
                dialer.received.append(Received(self.path, self.headers, body))
                status, answer, wait = dialer.answer_for(len(dialer.received) - 1)
            if wait:
                time.sleep(wait)
            payload = json.dumps(answer).encode() if answer is not None else b""
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:  # the client gave up (timeout)
                pass

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.handle_error = lambda *args: None
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    dialer.url = f"http://127.0.0.1:{server.server_address[1]}/dial"
    try:
        yield dialer
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def http_provider(settings):
    settings.DIALNEXA_CALL_PROVIDER = "http"
    settings.DIALNEXA_PUBLIC_URL = "https://dialnexa.example.com/"
    settings.DIALNEXA_HTTP_RETRIES = 2
    settings.DIALNEXA_HTTP_BACKOFF_SECONDS = 0.01
    settings.DIALNEXA_HTTP_TIMEOUT_SECONDS = 5
    settings.DIALNEXA_WEBHOOK_SECRET = "test-webhook-secret"
    return settings


def callback(client, url: str, payload: dict):
    body = json.dumps(payload).encode()
    return client.post(
        urlparse(url).path, data=body, content_type="application/json", headers={HEADER: sign(body)}
    )


def activate_and_drain(workflow, manager):
    control.perform(workflow.pk, WorkflowAction.ACTIVATE, manager)
    drain_tasks()


@pytest.mark.django_db(transaction=True)
def test_http_provider_dials_signed_and_routes_on_the_callback(
    http_provider, client, workspace, manager
):
    workflow, [lead] = new_workflow(
        workspace, [{"name": "Ann Lee", "phone": "+12025550143", "fields": {"plan": "gold"}}]
    )
    with fake_dialer((200, {"provider_call_id": "dialer-abc-1"}, 0)) as dialer:
        http_provider.DIALNEXA_DIALER_URL = dialer.url
        activate_and_drain(workflow, manager)

    call = CallLog.objects.get(lead=lead)
    assert call.provider == "http"
    assert call.provider_call_id == "dialer-abc-1"
    [request] = dialer.received
    assert request.path == "/dial"
    assert request.headers["Content-Type"] == "application/json"
    verify(request.headers[HEADER], request.body)  # raises if not signed with our secret
    with pytest.raises(BadSignature):
        verify(request.headers[HEADER], request.body + b" ")
    sent = json.loads(request.body)
    assert sent == {
        "call_id": call.pk,
        "to": "+12025550143",
        "from": call.from_number,
        "lead": {"id": lead.pk, "name": "Ann Lee", "fields": {"plan": "gold"}},
        "node": "call",
        "callback_url": f"https://dialnexa.example.com/v1/calls/{call.pk}/status",
    }
    assert sent["from"]
    # The dialer accepted the call (so it is never dialled again) but has not reported yet:
    # the lead waits for the call.
    execution = LeadExecution.objects.get(lead=lead)
    assert (execution.node.key, execution.call_id) == ("call", call.pk)
    assert list(CallEvent.objects.filter(call=call).values_list("event_id", "status")) == [
        (f"dial-accepted-{call.pk}", "initiated")
    ]

    # The dialer reports to callback_url.
    now = timezone.now().isoformat()
    for event_id, status in [("d-1", "initiated"), ("d-2", "connected")]:
        response = callback(
            client,
            sent["callback_url"],
            {"event_id": event_id, "status": status, "occurred_at": now},
        )
        assert response.status_code == 200
    response = callback(
        client,
        sent["callback_url"],
        {
            "event_id": "d-3",
            "status": "completed",
            "occurred_at": now,
            "end_reason": "goal_reached",
            "duration_s": 64,
            "transcript": [{"speaker": "agent", "text": "Hi"}],
            "recording_url": "https://dialer.example.com/rec/1.wav",
            "post_call": {"summary": "ok"},
        },
    )
    assert response.status_code == 200
    drain_tasks()

    call.refresh_from_db()
    assert (call.status, call.end_reason, call.duration_s) == ("completed", "goal_reached", 64)
    assert [e[:2] for e in events_of(call)] == [
        (f"dial-accepted-{call.pk}", "initiated"),
        ("d-1", "initiated"),
        ("d-2", "connected"),
        ("d-3", "completed"),
    ]
    assert_lead_routed_by(lead, CallStatus.COMPLETED)
    assert len(dialer.received) == 1  # dialled once, never again
    workflow.refresh_from_db()
    assert workflow.status == WorkflowStatus.COMPLETED


@pytest.mark.django_db(transaction=True)
def test_a_dialer_answering_500_every_time_ends_the_call_failed(http_provider, workspace, manager):
    workflow, [lead] = new_workflow(workspace, [{}])
    with fake_dialer((500, {"error": "boom"}, 0)) as dialer:
        http_provider.DIALNEXA_DIALER_URL = dialer.url
        activate_and_drain(workflow, manager)

    assert len(dialer.received) == http_provider.DIALNEXA_HTTP_RETRIES + 1 == 3
    # Every attempt is the same signed request.
    assert len({r.body for r in dialer.received}) == 1
    for request in dialer.received:
        verify(request.headers[HEADER], request.body)
    call = CallLog.objects.get(lead=lead)
    assert (call.status, call.end_reason) == (CallStatus.FAILED, "dial_error")
    [(event_id, status, ignored)] = events_of(call)
    assert (event_id, status, ignored) == (f"dial-error-{call.pk}", "failed", "")
    assert_lead_routed_by(lead, CallStatus.FAILED)
    row = routing_row(lead)
    assert (row.metadata["branch"], row.metadata["end_reason"]) == (Branch.FAILED, "dial_error")


@pytest.mark.django_db(transaction=True)
def test_retries_back_off_and_a_dialer_that_recovers_is_not_failed(
    http_provider, workspace, manager
):
    workflow, [lead] = new_workflow(workspace, [{}])
    with fake_dialer(
        (500, None, 0), (503, None, 0), (202, {"provider_call_id": "late-ok"}, 0)
    ) as dialer:
        http_provider.DIALNEXA_DIALER_URL = dialer.url
        http_provider.DIALNEXA_HTTP_BACKOFF_SECONDS = 0.2
        started = time.monotonic()
        activate_and_drain(workflow, manager)
        elapsed = time.monotonic() - started

    assert len(dialer.received) == 3
    assert elapsed >= 0.2 + 0.4  # backoff 0.2 s, then doubled
    call = CallLog.objects.get(lead=lead)
    assert call.provider_call_id == "late-ok"
    assert call.status == CallStatus.INITIATED  # accepted on the third attempt
    assert list(CallEvent.objects.filter(call=call).values_list("status", flat=True)) == [
        "initiated"
    ]
    execution = LeadExecution.objects.get(lead=lead)
    assert (execution.node.key, execution.call_id) == ("call", call.pk)


@pytest.mark.django_db(transaction=True)
def test_a_2xx_without_a_body_is_accepted_at_once(http_provider, workspace, manager):
    workflow, [lead] = new_workflow(workspace, [{}])
    with fake_dialer((204, None, 0)) as dialer:
        http_provider.DIALNEXA_DIALER_URL = dialer.url
        activate_and_drain(workflow, manager)

    assert len(dialer.received) == 1
    call = CallLog.objects.get(lead=lead)
    assert call.provider_call_id == ""
    assert call.status == CallStatus.INITIATED  # accepted: never dialled again
    assert LeadExecution.objects.get(lead=lead).call_id == call.pk


@pytest.mark.django_db(transaction=True)
def test_an_unreachable_dialer_ends_the_call_failed(http_provider, workspace, manager):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    http_provider.DIALNEXA_DIALER_URL = f"http://127.0.0.1:{port}/dial"
    workflow, [lead] = new_workflow(workspace, [{}])

    activate_and_drain(workflow, manager)

    call = CallLog.objects.get(lead=lead)
    assert (call.status, call.end_reason) == (CallStatus.FAILED, "dial_error")
    assert CallEvent.objects.get(call=call).payload["attempts"] == 3
    assert_lead_routed_by(lead, CallStatus.FAILED)


@pytest.mark.django_db(transaction=True)
def test_a_dialer_that_times_out_every_time_ends_the_call_failed(http_provider, workspace, manager):
    http_provider.DIALNEXA_HTTP_RETRIES = 1
    http_provider.DIALNEXA_HTTP_TIMEOUT_SECONDS = 0.3
    workflow, [lead] = new_workflow(workspace, [{}])
    with fake_dialer((200, {"provider_call_id": "too-late"}, 1.5)) as dialer:
        http_provider.DIALNEXA_DIALER_URL = dialer.url
        activate_and_drain(workflow, manager)
        attempts = len(dialer.received)

    assert attempts == 2
    call = CallLog.objects.get(lead=lead)
    assert (call.status, call.end_reason) == (CallStatus.FAILED, "dial_error")
    assert call.provider_call_id == ""
    assert_lead_routed_by(lead, CallStatus.FAILED)
