"""End to end: 200 leads through two Voice Call nodes and a wait, with each provider (SPEC 5, 6).

entry -> call-1 --COMPLETED--> won
                --DNP-------> wait (time) -> call-2 --COMPLETED--> won
                                                    --FAILED-----> lost
                                                    (no DNP output: review at call-2)
                --FAILED----> lost
(cancelled, retry_expired: no default output, review at the call node)

Each lead's `sim_status` cycles over all 12 call statuses. The expected place of every lead
is computed from the seed's routing table (calls.models.CALL_ROUTING) and the graph above;
the drained database must match it lead by lead.

The background work runs on the real task worker (`db_worker --batch`, in this process, so
settings overrides apply); the http provider talks to a fake dialer over real HTTP, which
reports back through the signed webhook of a live server.
"""

import json
import queue
import threading
import urllib.error
import urllib.request
from collections import Counter
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from calls.models import CALL_ROUTING, CallEvent, CallLog, CallStatus
from engine import control
from engine.signing import HEADER, BadSignature, sign, verify
from engine.ticks import ensure_tick
from leads.models import Lead, LeadExecution, LeadTransition, TransitionReason
from tests.engine.engine_checks import (
    assert_calls_sound,
    assert_every_lead_finished_once,
    assert_history_contiguous,
    assert_no_failed_tasks,
    final_places,
    unfinished,
)
from tests.factories import WorkflowFactory, drain_tasks
from workflows.graph import EdgeSpec, NodeSpec
from workflows.graph_store import replace_graph
from workflows.statuses import Branch, NodeType, WorkflowAction, WorkflowStatus

LEADS = 200
ALL_STATUSES = list(CallStatus)  # 5 in progress + 7 final
# In-progress sim_status values are not outcomes: the simulator draws from the weights, which
# here can only give `busy` (a zero weight must never be drawn).
FALLBACK = CallStatus.BUSY
WEIGHTS = {FALLBACK.value: 1, CallStatus.COMPLETED.value: 0}

OUTPUTS = {
    "call1": {Branch.COMPLETED: "won", Branch.DNP: "wait", Branch.FAILED: "lost"},
    "call2": {Branch.COMPLETED: "won", Branch.FAILED: "lost"},
}
AFTER_WAIT = {"wait": "call2"}
TERMINAL = {"won": "completed", "lost": "dropped"}
NODES = [
    NodeSpec("start", NodeType.ENTRY, "Start"),
    NodeSpec("call1", NodeType.VOICE_CALL, "Call 1"),
    NodeSpec("wait", NodeType.TIME, "Wait a day", {"delay_seconds": 86_400}),
    NodeSpec("call2", NodeType.VOICE_CALL, "Call 2"),
    NodeSpec("won", NodeType.CONVERTED, "Won"),
    NodeSpec("lost", NodeType.DROPPED, "Lost"),
]
EDGES = [
    EdgeSpec("start", "call1"),
    *(EdgeSpec(src, dst, branch) for src, out in OUTPUTS.items() for branch, dst in out.items()),
    *(EdgeSpec(src, dst) for src, dst in AFTER_WAIT.items()),
]


def outcome(sim_status: CallStatus) -> CallStatus:
    return sim_status if sim_status.is_final else FALLBACK


def expected_route(sim_status: CallStatus) -> tuple[tuple[str, str], list[str]]:
    """((node, completed | dropped | review), the call nodes visited) by the routing table."""
    final = outcome(sim_status)
    node, called = "call1", []
    while True:
        called.append(node)
        branch = CALL_ROUTING.get(final)
        target = OUTPUTS[node].get(branch) if branch else None
        if target is None:
            return (node, "review"), called
        if target in AFTER_WAIT:
            node = AFTER_WAIT[target]
            continue
        return (target, TERMINAL[target]), called


def make_workflow():
    workflow = WorkflowFactory(
        max_concurrent_calls=1000, window_start=None, window_end=None, window_days=[]
    )
    replace_graph(workflow, NODES, EDGES)
    Lead.objects.bulk_create(
        Lead(
            workflow=workflow,
            phone=f"+1202555{i:04d}",
            name=f"Lead {i}",
            fields={"sim_status": ALL_STATUSES[i % len(ALL_STATUSES)].value},
        )
        for i in range(LEADS)
    )
    return workflow


def settle(done, between=lambda: None, rounds: int = 30) -> None:
    """Run the task worker until `done()`; `between` waits for outside work (callbacks)."""
    for _ in range(rounds):
        drain_tasks()
        between()
        if done():
            return
    raise AssertionError("the workflow did not settle")


def waiting_at_wait_or_done(workflow) -> bool:
    moving = LeadExecution.objects.filter(workflow=workflow, status="active", needs_review=False)
    return unfinished(workflow.pk) == moving.filter(node__key="wait").count()


def run_through(workflow, between=lambda: None) -> dict:
    leads = {
        pk: CallStatus(fields["sim_status"])
        for pk, fields in Lead.objects.filter(workflow=workflow).values_list("id", "fields")
    }
    expected = {pk: expected_route(s) for pk, s in leads.items()}
    assert Counter(leads.values()) == Counter(
        {s: LEADS // 12 + (1 if ALL_STATUSES.index(s) < LEADS % 12 else 0) for s in CallStatus}
    )

    control.perform(workflow.pk, WorkflowAction.ACTIVATE)
    settle(lambda: waiting_at_wait_or_done(workflow), between)

    # Phase 1: every DNP at call-1 waits at `wait`, due in a day; nothing else is moving.
    at_wait = LeadExecution.objects.filter(workflow=workflow, node__key="wait")
    assert sorted(at_wait.values_list("lead_id", flat=True)) == sorted(
        pk for pk, (_, called) in expected.items() if "call2" in called
    )
    day = timezone.now() + timedelta(hours=23)
    assert all(r and r > day for r in at_wait.values_list("release_at", flat=True))

    # The day passes.
    past = timezone.now() - timedelta(seconds=1)
    assert at_wait.update(release_at=past, due_at=past) > 0
    ensure_tick()
    settle(lambda: unfinished(workflow.pk) == 0, between)

    assert_no_failed_tasks()
    places = final_places(workflow.pk)
    wrong = {pk: (places[pk], route[0]) for pk, route in expected.items() if places[pk] != route[0]}
    assert not wrong, f"{len(wrong)} leads not where the routing table sends them: {wrong}"
    assert Counter(places.values()) == Counter(route[0] for route in expected.values())
    assert_every_lead_finished_once(workflow.pk)
    history = assert_history_contiguous(workflow.pk)
    calls = assert_calls_sound(workflow.pk)

    # One call per visited Voice Call node, each ending as the lead's outcome.
    made = Counter()
    for call in CallLog.objects.filter(workflow=workflow).values("lead_id", "node__key", "status"):
        made[call["lead_id"]] += 1
        assert call["node__key"] in expected[call["lead_id"]][1]
        assert call["status"] == outcome(leads[call["lead_id"]]), call
    assert made == Counter({pk: len(route[1]) for pk, route in expected.items()})
    assert len(calls) == sum(len(route[1]) for route in expected.values())

    # The wait released each of its leads exactly once, to call-2.
    released = Counter(
        LeadTransition.objects.filter(
            lead__workflow=workflow, reason=TransitionReason.RELEASED
        ).values_list("lead_id", "to_node__key")
    )
    assert released == Counter(
        {(pk, "call2"): 1 for pk, (_, called) in expected.items() if "call2" in called}
    )
    assert len(history) == LEADS

    # Leads held for review keep the workflow active.
    workflow.refresh_from_db()
    assert workflow.status == WorkflowStatus.ACTIVE
    return {"expected": expected, "places": places}


@pytest.mark.django_db(transaction=True)
def test_simulator_routes_200_leads_as_the_routing_table_predicts(settings):
    settings.DIALNEXA_CALL_PROVIDER = "simulator"
    settings.DIALNEXA_SIMULATOR_DELAY = 0
    settings.DIALNEXA_SIMULATOR_WEIGHTS = WEIGHTS
    workflow = make_workflow()

    result = run_through(workflow)

    counts = Counter(result["places"].values())
    # The prediction is not trivial: every kind of end is reached.
    assert set(counts) == {
        ("won", "completed"),
        ("lost", "dropped"),
        ("call1", "review"),
        ("call2", "review"),
    }
    # The simulator's own reports: initiated, connected, final, per call.
    assert set(
        Counter(CallEvent.objects.filter(call__workflow=workflow).values_list("call_id")).values()
    ) == {3}


# --- http provider --------------------------------------------------------------------------


class FakeDialer(ThreadingHTTPServer):
    """A dialer: checks our signature, answers 200 with a provider call id, then reports the
    call to its callback_url like a real provider — at least once and not always in order."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _DialerHandler)
        self.jobs: queue.Queue = queue.Queue()
        self.dialled: list[int] = []
        self.refused: list[str] = []
        self.answers: list[tuple[int, str, int, dict]] = []  # (call, event, HTTP, body)
        threading.Thread(target=self.serve_forever, daemon=True).start()
        threading.Thread(target=self._report_calls, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/dial"

    def _report_calls(self) -> None:
        while True:
            payload = self.jobs.get()
            try:
                self._report(payload)
            finally:
                self.jobs.task_done()

    def _report(self, payload: dict) -> None:
        call_id = payload["call_id"]
        wanted = CallStatus(payload["lead"]["fields"]["sim_status"])
        final = outcome(wanted)
        events = [(f"{call_id}-1", CallStatus.INITIATED), (f"{call_id}-2", CallStatus.CONNECTED)]
        if not wanted.is_final:
            events.append((f"{call_id}-3", wanted))  # applied, or ignored as older
        events += [
            (f"{call_id}-final", final),
            (f"{call_id}-final", final),  # redelivered: a no-op
            (f"{call_id}-late", CallStatus.CONNECTED),  # late in-progress: ignored
        ]
        if call_id % 3 == 0:  # a second, different final: kept, flagged, not applied
            other = CallStatus.FAILED if final != CallStatus.FAILED else CallStatus.COMPLETED
            events.append((f"{call_id}-conflict", other))
        for event_id, status in events:
            body = json.dumps(
                {
                    "event_id": event_id,
                    "status": status.value,
                    "occurred_at": timezone.now().isoformat(),
                    "end_reason": f"fake_{status.value}" if status.is_final else "",
                    "duration_s": 30 if status is CallStatus.COMPLETED else 0,
                }
            ).encode()
            request = urllib.request.Request(
                payload["callback_url"],
                data=body,
                method="POST",
                headers={"Content-Type": "application/json", HEADER: sign(body)},
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    code, answer = response.status, json.loads(response.read())
            except urllib.error.HTTPError as exc:
                code, answer = exc.code, {"error": exc.read().decode(errors="replace")}
            self.answers.append((call_id, event_id, code, answer))


class _DialerHandler(BaseHTTPRequestHandler):
    def do_POST(self):
        raw = self.rfile.read(int(self.headers["Content-Length"]))
        try:
            verify(self.headers.get(HEADER), raw)
        except BadSignature as exc:
            self.server.refused.append(str(exc))
            self.send_response(401)
            self.end_headers()
            return
        payload = json.loads(raw)
        self.server.dialled.append(payload["call_id"])
        body = json.dumps({"provider_call_id": f"fake-{payload['call_id']}"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.server.jobs.put(payload)  # report after answering, as a provider does

    def log_message(self, *args):
        pass


@pytest.mark.django_db(transaction=True)
def test_http_provider_routes_200_leads_as_the_routing_table_predicts(settings, live_server):
    dialer = FakeDialer()
    settings.DIALNEXA_CALL_PROVIDER = "http"
    settings.DIALNEXA_DIALER_URL = dialer.url
    settings.DIALNEXA_PUBLIC_URL = live_server.url
    settings.DIALNEXA_SIMULATOR_WEIGHTS = {CallStatus.COMPLETED.value: 1}  # must not matter
    workflow = make_workflow()
    try:
        result = run_through(workflow, between=dialer.jobs.join)
    finally:
        dialer.shutdown()

    assert not dialer.refused
    calls = dict(CallLog.objects.filter(workflow=workflow).values_list("id", "provider_call_id"))
    # Each call dialled once, its provider id recorded.
    assert sorted(dialer.dialled) == sorted(calls)
    assert all(pid == f"fake-{pk}" for pk, pid in calls.items())
    # Every callback was accepted (200); repeats and late or conflicting ones changed nothing.
    assert {code for *_, code, _ in dialer.answers} == {200}
    by_event = Counter((event.split("-", 1)[1], a["result"]) for _, event, _, a in dialer.answers)
    assert by_event[("final", "duplicate")] == len(calls)
    assert by_event[("late", "ignored")] == len(calls)
    conflicts = [c for c in calls if c % 3 == 0]
    assert by_event[("conflict", "ignored")] == len(conflicts)
    flagged = CallEvent.objects.filter(call_id__in=conflicts, event_id__endswith="-conflict")
    assert flagged.count() == len(conflicts)
    assert all(
        "conflicting final" in reason for reason in flagged.values_list("ignored_reason", flat=True)
    )
    assert Counter(result["places"].values()) == Counter(
        route[0] for route in result["expected"].values()
    )
