"""Each node type, the calling window and concurrency cap, completion, pause and cancel
(SPEC 3, 4, 5).

The engine is driven synchronously with engine.sweep.run_tick. Time passes either by moving
`due_at`/`release_at` into the past with a queryset update, or with a frozen clock (`clock`
fixture) where local times and DST matter.
"""

import json
import socket
import threading
import time as wallclock
from datetime import UTC, datetime, time, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.utils import timezone

from calls.models import IN_PROGRESS_CALL_STATUSES, CallLog, CallStatus
from engine import control, manual
from engine.call_status import StatusReport, record_call_status
from engine.signing import HEADER, BadSignature, verify
from engine.starting import start_pending_leads
from engine.sweep import claim, process, run_tick
from engine.why import explain
from leads.models import ExecutionStatus, Lead, LeadExecution, LeadTransition, TransitionReason
from tests.factories import WorkflowFactory, drain_tasks
from workflows.graph import EdgeSpec, NodeSpec
from workflows.graph_store import replace_graph
from workflows.models import WorkflowEvent
from workflows.schedule import next_local_time, window_opening
from workflows.statuses import Branch, NodeType, WorkflowStatus

NY = ZoneInfo("America/New_York")
S = WorkflowStatus

# --- helpers ---------------------------------------------------------------------------------


def make_workflow(workspace, nodes, edges, *, leads=1, tz="UTC", window=None, cap=10):
    start, end = window if window else (None, None)
    workflow = WorkflowFactory(
        workspace=workspace,
        name="Nodes",
        timezone=tz,
        window_start=start,
        window_end=end,
        max_concurrent_calls=cap,
    )
    replace_graph(workflow, nodes, edges)
    Lead.objects.bulk_create(
        Lead(workflow=workflow, phone=f"+1202555{i:04d}", name=f"Lead {i}", fields={"n": i})
        for i in range(leads)
    )
    return workflow


def activate(workflow, manager) -> None:
    control.perform(workflow.pk, "activate", manager)
    start_pending_leads(workflow.pk)


def execution_of(lead) -> LeadExecution:
    return LeadExecution.objects.select_related("node", "call").get(lead=lead)


def only_lead(workflow) -> Lead:
    [lead] = workflow.leads.all()
    return lead


def make_due(workflow) -> None:
    """Time passes: whatever the active executions wait for is due now."""
    past = timezone.now() - timedelta(seconds=1)
    LeadExecution.objects.filter(
        workflow=workflow, status=ExecutionStatus.ACTIVE, due_at__isnull=False
    ).update(due_at=past)
    LeadExecution.objects.filter(
        workflow=workflow, status=ExecutionStatus.ACTIVE, release_at__isnull=False
    ).update(release_at=past)


def history(lead) -> list[LeadTransition]:
    """The lead's history, checked to be contiguous and to end where the execution is."""
    rows = list(
        LeadTransition.objects.filter(lead=lead)
        .select_related("from_node", "to_node")
        .order_by("id")
    )
    assert rows[0].from_node is None
    assert rows[0].reason == TransitionReason.STARTED
    for previous, row in pairwise(rows):
        assert row.from_node_id == previous.to_node_id, (previous, row)
    assert rows[-1].to_node_id == LeadExecution.objects.get(lead=lead).node_id
    return rows


def path(lead) -> list[tuple[str, str]]:
    return [(r.reason, r.to_node.key) for r in history(lead)]


def why(lead) -> str:
    return explain(Lead.objects.get(pk=lead.pk))


def report(call, status, event_id=None):
    return record_call_status(
        call.pk,
        StatusReport(
            event_id=event_id or f"evt-{call.pk}-{status}",
            status=CallStatus(status),
            occurred_at=timezone.now(),
            end_reason=f"end-{status}",
        ),
    )


def complete_events(workflow) -> int:
    return WorkflowEvent.objects.filter(workflow=workflow, action="complete").count()


@pytest.fixture
def clock(monkeypatch):
    """A hand-moved `timezone.now`: starts at the real time; `set` jumps to an instant.

    Each reading advances it by a microsecond, so consecutive steps still happen in order.
    """

    class Clock:
        def __init__(self):
            self.base, self.ticks = timezone.now(), 0

        def set(self, when: datetime) -> None:
            self.base, self.ticks = when, 0

        def now(self) -> datetime:
            self.ticks += 1
            return self.base + timedelta(microseconds=self.ticks)

    frozen = Clock()
    monkeypatch.setattr(timezone, "now", frozen.now)
    return frozen


ENTRY_TO = {
    NodeType.CONVERTED: ExecutionStatus.COMPLETED,
    NodeType.DROPPED: ExecutionStatus.DROPPED,
}


# --- entry and terminals ------------------------------------------------------------------


@pytest.mark.parametrize("terminal", [NodeType.CONVERTED, NodeType.DROPPED])
def test_entry_moves_on_at_once_and_a_terminal_finishes_the_execution(workspace, manager, terminal):
    workflow = make_workflow(
        workspace,
        [NodeSpec("start", NodeType.ENTRY, "Start"), NodeSpec("end", terminal, "The end")],
        [EdgeSpec("start", "end")],
        leads=3,
    )
    activate(workflow, manager)
    for lead in workflow.leads.all():
        execution = execution_of(lead)
        assert execution.node.key == "start"
        assert execution.due_at is not None and execution.due_at <= timezone.now()
        assert why(lead) == "At the entry node 'Start'; it moves on at once."

    stats = run_tick()

    assert stats["moved"] == 3
    for lead in workflow.leads.all():
        execution = execution_of(lead)
        assert execution.node.key == "end"
        assert execution.status == ENTRY_TO[terminal]
        assert execution.finished_at is not None
        assert execution.due_at is None
        assert path(lead) == [("started", "start"), ("moved", "end")]
        assert why(lead).startswith(
            "Completed: reached" if terminal == NodeType.CONVERTED else "Dropped: reached"
        )
    workflow.refresh_from_db()
    assert workflow.status == S.COMPLETED
    assert workflow.completed_at is not None
    event = WorkflowEvent.objects.get(workflow=workflow, action="complete")
    assert (event.from_status, event.to_status) == (S.ACTIVE, S.COMPLETED)

    # Finished executions are never picked up again.
    assert run_tick() == {}
    assert complete_events(workflow) == 1


def test_entry_leads_to_a_call_in_the_same_tick(workspace, manager):
    workflow = make_workflow(
        workspace,
        [
            NodeSpec("start", NodeType.ENTRY, "Start"),
            NodeSpec("call", NodeType.VOICE_CALL, "Call 1"),
            NodeSpec("won", NodeType.CONVERTED, "Won"),
        ],
        [EdgeSpec("start", "call"), EdgeSpec("call", "won", Branch.COMPLETED)],
    )
    activate(workflow, manager)
    run_tick()
    lead = only_lead(workflow)
    execution = execution_of(lead)
    assert execution.node.key == "call"
    assert execution.call is not None
    assert CallLog.objects.filter(lead=lead).count() == 1


# --- time node: delay ------------------------------------------------------------------------

DELAY_GRAPH = (
    [
        NodeSpec("start", NodeType.ENTRY, "Start"),
        NodeSpec("wait", NodeType.TIME, "Wait 1h", {"delay_seconds": 3600}),
        NodeSpec("won", NodeType.CONVERTED, "Won"),
    ],
    [EdgeSpec("start", "wait"), EdgeSpec("wait", "won")],
)


def test_time_node_delay_waits_until_the_release_and_then_moves(workspace, manager):
    workflow = make_workflow(workspace, *DELAY_GRAPH)
    lead = only_lead(workflow)
    activate(workflow, manager)
    before = timezone.now()
    run_tick()

    execution = execution_of(lead)
    assert execution.node.key == "wait"
    assert execution.release_at == execution.entered_at + timedelta(seconds=3600)
    assert before <= execution.entered_at <= timezone.now()
    assert abs(execution.release_at - (timezone.now() + timedelta(seconds=3600))) < timedelta(
        seconds=30
    )
    assert execution.due_at == execution.release_at
    release_text = execution.release_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    assert why(lead) == f"Waiting at 'Wait 1h' for release at {release_text}."

    # Not due yet: ticks leave it alone.
    assert run_tick() == {}
    assert execution_of(lead).node.key == "wait"

    make_due(workflow)
    run_tick()
    execution = execution_of(lead)
    assert execution.node.key == "won"
    assert execution.status == ExecutionStatus.COMPLETED
    assert path(lead) == [("started", "start"), ("moved", "wait"), ("released", "won")]
    workflow.refresh_from_db()
    assert workflow.status == S.COMPLETED


def test_time_node_with_a_tiny_delay_releases_once_the_time_has_passed(workspace, manager):
    nodes, edges = DELAY_GRAPH
    nodes = [nodes[0], NodeSpec("wait", NodeType.TIME, "Wait", {"delay_seconds": 1}), nodes[2]]
    workflow = make_workflow(workspace, nodes, edges)
    lead = only_lead(workflow)
    activate(workflow, manager)
    run_tick()
    assert execution_of(lead).node.key == "wait"
    run_tick()
    assert execution_of(lead).node.key == "wait"

    wallclock.sleep(1.1)
    run_tick()
    assert execution_of(lead).node.key == "won"
    assert [r for r, _ in path(lead)] == ["started", "moved", "released"]


# --- time node: local time of day, across DST ------------------------------------------------


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "clock_time", "expected"),
    [
        # Saturday 10:00 EST -> Sunday 09:00 EDT (clocks went forward at 02:00): 22 h later.
        (utc(2026, 3, 7, 15, 0), time(9, 0), utc(2026, 3, 8, 13, 0)),
        # Early on the change day, before 09:00: the same day, already EDT.
        (utc(2026, 3, 8, 6, 0), time(9, 0), utc(2026, 3, 8, 13, 0)),
        # Saturday 10:00 EDT -> Sunday 09:00 EST (clocks went back at 02:00): 24 h later.
        (utc(2026, 10, 31, 14, 0), time(9, 0), utc(2026, 11, 1, 14, 0)),
        # Exactly 09:00 local: strictly after now, so tomorrow.
        (utc(2026, 11, 1, 14, 0), time(9, 0), utc(2026, 11, 2, 14, 0)),
        # Ambiguous 01:30 on 2026-11-01: its first occurrence (EDT).
        (utc(2026, 11, 1, 4, 0), time(1, 30), utc(2026, 11, 1, 5, 30)),
        # 03:30 UTC is still Saturday 22:30 EST in New York: today's 23:59 (EST).
        (utc(2026, 3, 8, 3, 30), time(23, 59), utc(2026, 3, 8, 4, 59)),
    ],
)
def test_next_local_time_is_dst_correct_in_new_york(now, clock_time, expected):
    result = next_local_time(now, clock_time, NY)
    assert result == expected
    assert result.astimezone(NY).time() == clock_time
    assert result > now


def test_next_local_time_in_the_spring_gap_lands_the_same_day_after_the_gap():
    # 02:30 does not exist in New York on 2026-03-08 (02:00 EST -> 03:00 EDT = 07:00 UTC).
    result = next_local_time(utc(2026, 3, 8, 5, 0), time(2, 30), NY)
    local = result.astimezone(NY)
    assert local.date() == datetime(2026, 3, 8).date()
    assert utc(2026, 3, 8, 7, 0) <= result <= utc(2026, 3, 8, 7, 30)


@pytest.mark.parametrize("start", [utc(2026, 3, 1, 15, 0), utc(2026, 10, 25, 15, 0)])
def test_a_daily_09_00_release_stays_at_09_00_local_through_a_dst_change(start):
    releases, now = [], start
    for _ in range(14):
        now = next_local_time(now, time(9, 0), NY)
        releases.append(now)
    assert all(r.astimezone(NY).time() == time(9, 0) for r in releases)
    gaps = sorted({(b - a) for a, b in pairwise(releases)})
    # One day is 23 h (spring) or 25 h (autumn) long in UTC; every other one 24 h.
    expected_odd = timedelta(hours=23) if start.month == 3 else timedelta(hours=25)
    assert gaps == sorted({timedelta(hours=24), expected_odd})


def test_time_node_at_local_time_releases_at_09_00_in_the_workflow_time_zone(
    workspace, manager, clock
):
    clock.set(utc(2026, 3, 7, 15, 0))  # Saturday 10:00 EST in New York, 15:00 in UTC
    workflow = make_workflow(
        workspace,
        [
            NodeSpec("start", NodeType.ENTRY, "Start"),
            NodeSpec("nine", NodeType.TIME, "Tomorrow 9am", {"at_local_time": "09:00"}),
            NodeSpec("won", NodeType.CONVERTED, "Won"),
        ],
        [EdgeSpec("start", "nine"), EdgeSpec("nine", "won")],
        tz="America/New_York",
    )
    lead = only_lead(workflow)
    activate(workflow, manager)
    run_tick()

    execution = execution_of(lead)
    assert execution.node.key == "nine"
    # 09:00 EDT on Sunday, after the spring-forward: 13:00 UTC (not 14:00, not UTC's 09:00).
    assert execution.release_at == utc(2026, 3, 8, 13, 0)
    assert execution.due_at == execution.release_at
    assert why(lead) == "Waiting at 'Tomorrow 9am' for release at 2026-03-08 09:00 EDT."
    history_row = history(lead)[-1]
    assert "2026-03-08 09:00 EDT" in history_row.message

    clock.set(utc(2026, 3, 8, 12, 59))
    assert run_tick() == {}
    assert execution_of(lead).node.key == "nine"

    clock.set(utc(2026, 3, 8, 13, 0, 1))
    run_tick()
    assert execution_of(lead).node.key == "won"
    assert [r for r, _ in path(lead)] == ["started", "moved", "released"]


# --- calling window ------------------------------------------------------------------------

CALL_GRAPH = (
    [
        NodeSpec("start", NodeType.ENTRY, "Start"),
        NodeSpec("call", NodeType.VOICE_CALL, "Call 1"),
        NodeSpec("won", NodeType.CONVERTED, "Won"),
        NodeSpec("lost", NodeType.DROPPED, "Lost"),
    ],
    [
        EdgeSpec("start", "call"),
        EdgeSpec("call", "won", Branch.COMPLETED),
        EdgeSpec("call", "lost", Branch.DNP),
        EdgeSpec("call", "lost", Branch.FAILED),
    ],
)


@pytest.mark.parametrize(
    ("tz", "days", "now", "opening", "shown"),
    [
        # 03:00 UTC, window 09:00-17:00 UTC: opens at 09:00 today.
        ("UTC", [], utc(2026, 3, 10, 3, 0), utc(2026, 3, 10, 9, 0), "2026-03-10 09:00 UTC"),
        # 17:00 is the (excluded) end: the next opening is tomorrow.
        ("UTC", [], utc(2026, 3, 10, 17, 0), utc(2026, 3, 11, 9, 0), "2026-03-11 09:00 UTC"),
        # 12:00 UTC is 08:00 EDT (DST began 2026-03-08): opens at 13:00 UTC.
        (
            "America/New_York",
            [],
            utc(2026, 3, 10, 12, 0),
            utc(2026, 3, 10, 13, 0),
            "2026-03-10 09:00 EDT",
        ),
        # Saturday 11:00 EDT, weekdays only: Monday 09:00 EDT.
        (
            "America/New_York",
            [0, 1, 2, 3, 4],
            utc(2026, 3, 14, 15, 0),
            utc(2026, 3, 16, 13, 0),
            "2026-03-16 09:00 EDT",
        ),
    ],
)
def test_outside_the_calling_window_a_lead_waits_for_the_opening_without_a_call(
    workspace, manager, clock, tz, days, now, opening, shown
):
    clock.set(now)
    workflow = make_workflow(workspace, *CALL_GRAPH, tz=tz, window=(time(9, 0), time(17, 0)))
    workflow.window_days = days
    workflow.save()
    lead = only_lead(workflow)
    activate(workflow, manager)
    run_tick()

    execution = execution_of(lead)
    assert execution.node.key == "call"
    assert execution.call is None
    assert not CallLog.objects.filter(workflow=workflow).exists()
    assert execution.release_at == opening
    assert execution.due_at == opening
    assert why(lead) == f"Waiting at 'Call 1' for the calling window to open at {shown}."

    # Still closed a second before the opening.
    clock.set(opening - timedelta(seconds=1))
    assert run_tick() == {}
    assert not CallLog.objects.filter(workflow=workflow).exists()

    # Open: the call is placed and the wait is over.
    clock.set(opening + timedelta(seconds=1))
    run_tick()
    execution = execution_of(lead)
    assert execution.call is not None
    assert execution.release_at is None
    assert CallLog.objects.filter(lead=lead).count() == 1


def test_inside_the_calling_window_the_call_is_placed_at_once(workspace, manager, clock):
    clock.set(utc(2026, 3, 10, 16, 59))  # 12:59 EDT
    workflow = make_workflow(
        workspace, *CALL_GRAPH, tz="America/New_York", window=(time(9, 0), time(17, 0))
    )
    lead = only_lead(workflow)
    activate(workflow, manager)
    run_tick()
    execution = execution_of(lead)
    assert execution.call is not None
    assert execution.release_at is None
    assert execution.call.status == CallStatus.CREATED


def test_window_opening_is_none_inside_and_the_next_start_outside():
    start, end = time(9, 0), time(17, 0)
    assert window_opening(utc(2026, 3, 10, 9, 0), start, end, [], ZoneInfo("UTC")) is None
    assert window_opening(utc(2026, 3, 10, 16, 59), start, end, [], ZoneInfo("UTC")) is None
    assert window_opening(utc(2026, 3, 10, 8, 59), start, end, [], ZoneInfo("UTC")) == utc(
        2026, 3, 10, 9, 0
    )
    # The end is excluded: at 17:00 sharp the window is closed until tomorrow.
    assert window_opening(utc(2026, 3, 10, 17, 0), start, end, [], ZoneInfo("UTC")) == utc(
        2026, 3, 11, 9, 0
    )
    # No window at all: always open.
    assert window_opening(utc(2026, 3, 10, 3, 0), None, None, [], NY) is None
    # Across the autumn change: Sunday 2026-11-01 09:00 EST is 14:00 UTC.
    assert window_opening(utc(2026, 11, 1, 5, 0), start, end, [], NY) == utc(2026, 11, 1, 14, 0)


# --- max_concurrent_calls --------------------------------------------------------------------


def in_flight(workflow) -> int:
    return CallLog.objects.filter(
        workflow=workflow, status__in=list(IN_PROGRESS_CALL_STATUSES)
    ).count()


def test_max_concurrent_calls_caps_the_calls_in_progress(workspace, manager):
    workflow = make_workflow(workspace, *CALL_GRAPH, leads=5, cap=2)
    activate(workflow, manager)
    run_tick()

    assert CallLog.objects.filter(workflow=workflow).count() == 2
    waiting = LeadExecution.objects.filter(workflow=workflow, call__isnull=True)
    assert waiting.count() == 3
    assert all(e.node.key == "call" for e in waiting.select_related("node"))
    assert all(e.due_at > timezone.now() for e in waiting)  # they look again later

    # Time passes, but both calls are still in progress: no third call.
    make_due(workflow)
    run_tick()
    assert CallLog.objects.filter(workflow=workflow).count() == 2

    # One call ends: its lead is routed and exactly one more call is placed.
    first = CallLog.objects.filter(workflow=workflow).order_by("id").first()
    report(first, CallStatus.COMPLETED)
    run_tick()
    make_due(workflow)
    run_tick()
    assert execution_of(first.lead).node.key == "won"
    assert CallLog.objects.filter(workflow=workflow).count() == 3
    assert in_flight(workflow) == 2

    # Both end: the last two get their calls, never more than two at a time.
    for call in CallLog.objects.filter(workflow=workflow, status=CallStatus.CREATED):
        report(call, CallStatus.BUSY)
    run_tick()
    make_due(workflow)
    run_tick()
    assert CallLog.objects.filter(workflow=workflow).count() == 5
    assert in_flight(workflow) == 2
    for lead in workflow.leads.all():
        assert CallLog.objects.filter(lead=lead).count() == 1


# --- application node against a real HTTP server ---------------------------------------------


class _Hook(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _HookHandler)
        self.statuses = [200]  # answered in turn; the last one repeats
        self.delay = 0.0
        self.requests: list[dict] = []
        self.before_answer = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"

    def handle_error(self, request, client_address):  # a client that timed out: not our test
        pass


class _HookHandler(BaseHTTPRequestHandler):
    def do_POST(self):
        server = self.server
        body = self.rfile.read(int(self.headers["Content-Length"]))
        server.requests.append(
            {
                "path": self.path,
                "signature": self.headers.get(HEADER),
                "content_type": self.headers.get("Content-Type"),
                "body": body,
            }
        )
        if server.delay:
            wallclock.sleep(server.delay)
        if server.before_answer:
            server.before_answer()
        status = server.statuses.pop(0) if len(server.statuses) > 1 else server.statuses[0]
        answer = b'{"received": true}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


@pytest.fixture
def hook():
    server = _Hook()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


def app_graph(url, **config):
    return (
        [
            NodeSpec("start", NodeType.ENTRY, "Start"),
            NodeSpec("crm", NodeType.APPLICATION, "Send to CRM", {"url": url, **config}),
            NodeSpec("won", NodeType.CONVERTED, "Won"),
        ],
        [EdgeSpec("start", "crm"), EdgeSpec("crm", "won")],
    )


@pytest.mark.parametrize("status", [200, 201, 202])
def test_application_2xx_moves_on_with_a_signed_json_post_of_the_lead(
    workspace, manager, hook, status
):
    hook.statuses = [status]
    workflow = make_workflow(workspace, *app_graph(hook.url))
    lead = only_lead(workflow)
    activate(workflow, manager)
    run_tick()

    [request] = hook.requests
    assert request["path"] == "/hook"
    assert request["content_type"] == "application/json"
    verify(request["signature"], request["body"])  # raises if not signed by us
    with pytest.raises(BadSignature):
        verify(request["signature"], request["body"] + b" ")
    sent = json.loads(request["body"])
    assert sent["lead"] == {
        "id": lead.pk,
        "phone": lead.phone,
        "name": lead.name,
        "fields": lead.fields,
    }
    assert (sent["workflow_id"], sent["node"], sent["attempt"]) == (workflow.pk, "crm", 1)

    execution = execution_of(lead)
    assert execution.node.key == "won"
    assert execution.status == ExecutionStatus.COMPLETED
    rows = history(lead)
    assert [(r.reason, r.to_node.key) for r in rows] == [
        ("started", "start"),
        ("moved", "crm"),
        ("integration_ok", "won"),
    ]
    assert rows[-1].metadata == {"http_status": status, "error": None}
    workflow.refresh_from_db()
    assert workflow.status == S.COMPLETED


def test_application_500_retries_with_backoff_then_needs_integration_review(
    workspace, manager, hook, settings
):
    settings.DIALNEXA_HTTP_RETRIES = 2
    settings.DIALNEXA_HTTP_BACKOFF_SECONDS = 30
    hook.statuses = [500]
    workflow = make_workflow(workspace, *app_graph(hook.url))
    lead = only_lead(workflow)
    activate(workflow, manager)

    for attempt, backoff in [(1, 30), (2, 60)]:
        if attempt > 1:
            make_due(workflow)
        run_tick()
        execution = execution_of(lead)
        assert len(hook.requests) == attempt
        assert execution.node.key == "crm"
        assert execution.attempts == attempt
        assert not execution.needs_review
        pushed_back = execution.due_at - timezone.now()
        assert timedelta(seconds=backoff - 5) < pushed_back <= timedelta(seconds=backoff)
        # Not due yet: a tick sends nothing.
        run_tick()
        assert len(hook.requests) == attempt

    make_due(workflow)
    run_tick()

    assert len(hook.requests) == 3  # the first attempt and DIALNEXA_HTTP_RETRIES retries
    assert [json.loads(r["body"])["attempt"] for r in hook.requests] == [1, 2, 3]
    execution = execution_of(lead)
    assert execution.node.key == "crm"
    assert execution.status == ExecutionStatus.ACTIVE
    assert execution.needs_review
    assert "HTTP 500" in execution.review_reason
    assert "integration review" in execution.review_reason
    assert execution.due_at is None
    rows = history(lead)
    assert [r.reason for r in rows] == ["started", "moved", "integration_failed"]
    assert rows[-1].from_node.key == rows[-1].to_node.key == "crm"
    assert rows[-1].metadata["http_status"] == 500
    assert rows[-1].metadata["attempts"] == 3
    assert why(lead) == f"Needs review at 'Send to CRM': {execution.review_reason}"

    # Held for review: nothing more is sent, and the workflow is not complete.
    make_due(workflow)
    run_tick()
    assert len(hook.requests) == 3
    workflow.refresh_from_db()
    assert workflow.status == S.ACTIVE


def test_application_that_recovers_on_a_retry_moves_on(workspace, manager, hook, settings):
    settings.DIALNEXA_HTTP_RETRIES = 3
    settings.DIALNEXA_HTTP_BACKOFF_SECONDS = 0.01
    hook.statuses = [503, 200]
    workflow = make_workflow(workspace, *app_graph(hook.url))
    lead = only_lead(workflow)
    activate(workflow, manager)
    run_tick()
    wallclock.sleep(0.05)
    run_tick()

    assert len(hook.requests) == 2
    execution = execution_of(lead)
    assert execution.node.key == "won"
    assert not execution.needs_review
    assert [r.reason for r in history(lead)] == ["started", "moved", "integration_ok"]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_application_connection_refused_retries_then_needs_review(workspace, manager, settings):
    settings.DIALNEXA_HTTP_RETRIES = 1
    settings.DIALNEXA_HTTP_BACKOFF_SECONDS = 30
    workflow = make_workflow(workspace, *app_graph(f"http://127.0.0.1:{_closed_port()}/hook"))
    lead = only_lead(workflow)
    activate(workflow, manager)

    run_tick()
    execution = execution_of(lead)
    assert execution.attempts == 1
    assert not execution.needs_review
    assert execution.due_at > timezone.now() + timedelta(seconds=25)

    make_due(workflow)
    run_tick()
    execution = execution_of(lead)
    assert execution.node.key == "crm"
    assert execution.needs_review
    assert "refused" in execution.review_reason.lower()
    assert "after 2 attempts" in execution.review_reason
    last = history(lead)[-1]
    assert last.reason == TransitionReason.INTEGRATION_FAILED
    assert last.metadata["http_status"] is None
    assert "refused" in last.metadata["error"].lower()


def test_application_timeout_counts_as_a_failure(workspace, manager, hook, settings):
    settings.DIALNEXA_HTTP_RETRIES = 0
    hook.delay = 3.0
    workflow = make_workflow(workspace, *app_graph(hook.url, timeout_seconds=0.3))
    lead = only_lead(workflow)
    activate(workflow, manager)

    started = wallclock.monotonic()
    run_tick()
    assert wallclock.monotonic() - started < 2.5  # gave up at the timeout, not the answer

    execution = execution_of(lead)
    assert execution.node.key == "crm"
    assert execution.needs_review
    assert "timed out" in execution.review_reason
    assert "after 1 attempts" in execution.review_reason
    assert len(hook.requests) == 1


# --- workflow completion ----------------------------------------------------------------------


def test_workflow_does_not_complete_while_a_lead_is_in_review(workspace, manager):
    workflow = make_workflow(workspace, *CALL_GRAPH, leads=2)
    activate(workflow, manager)
    run_tick()
    done, stuck = (CallLog.objects.get(lead=lead) for lead in workflow.leads.order_by("id"))

    report(done, CallStatus.COMPLETED)
    report(stuck, CallStatus.RETRY_EXPIRED)
    run_tick()

    assert execution_of(done.lead).status == ExecutionStatus.COMPLETED
    assert execution_of(stuck.lead).needs_review
    workflow.refresh_from_db()
    assert workflow.status == S.ACTIVE
    assert complete_events(workflow) == 0

    # A manager drops the stuck lead: now every execution is final.
    manual.drop_lead(stuck.lead, manager)
    workflow.refresh_from_db()
    assert workflow.status == S.COMPLETED
    assert complete_events(workflow) == 1


def test_workflow_does_not_complete_while_a_lead_has_not_started(workspace, manager):
    nodes = [NodeSpec("start", NodeType.ENTRY, "Start"), NodeSpec("won", NodeType.CONVERTED)]
    workflow = make_workflow(workspace, nodes, [EdgeSpec("start", "won")])
    activate(workflow, manager)
    late = Lead.objects.create(workflow=workflow, phone="+12025559999", name="Late")

    run_tick()

    workflow.refresh_from_db()
    assert workflow.status == S.ACTIVE
    assert complete_events(workflow) == 0
    start_pending_leads(workflow.pk)
    run_tick()
    assert execution_of(late).status == ExecutionStatus.COMPLETED
    workflow.refresh_from_db()
    assert workflow.status == S.COMPLETED


def test_workflow_whose_last_lead_finished_while_paused_completes_on_resume(workspace, manager):
    """SPEC 4: an active workflow with leads, all final, becomes `completed` by itself."""
    workflow = make_workflow(workspace, *DELAY_GRAPH)
    lead = only_lead(workflow)
    activate(workflow, manager)
    run_tick()
    control.perform(workflow.pk, "pause", manager)
    manual.drop_lead(lead, manager)  # allowed while paused; the workflow may not complete yet
    workflow.refresh_from_db()
    assert workflow.status == S.PAUSED

    control.perform(workflow.pk, "resume", manager)
    start_pending_leads(workflow.pk)
    run_tick()

    assert execution_of(lead).status == ExecutionStatus.DROPPED
    workflow.refresh_from_db()
    assert workflow.status == S.COMPLETED
    assert complete_events(workflow) == 1


# --- pause, resume, cancel ------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_pause_lets_a_placed_call_finish_but_the_lead_moves_only_after_resume(
    workspace, manager, settings
):
    settings.DIALNEXA_SIMULATOR_DELAY = 3600  # the simulator stays out of the way
    workflow = make_workflow(workspace, *CALL_GRAPH)
    lead = only_lead(workflow)
    control.perform(workflow.pk, "activate", manager)
    drain_tasks()
    call = execution_of(lead).call
    assert call is not None and call.status == CallStatus.CREATED

    control.perform(workflow.pk, "pause", manager)
    assert report(call, CallStatus.CONNECTED).outcome == "applied"
    assert why(lead) == (
        f"Waiting at 'Call 1' for a final status of call {call.pk} (now connected); "
        "the workflow is paused, so the lead waits after the call ends."
    )
    assert report(call, CallStatus.COMPLETED).outcome == "applied"
    drain_tasks()
    assert run_tick() == {}

    call.refresh_from_db()
    assert call.status == CallStatus.COMPLETED  # the call's final status is recorded
    assert call.routed_at is None
    execution = execution_of(lead)
    assert execution.node.key == "call"
    assert execution.status == ExecutionStatus.ACTIVE
    assert [r for r, _ in path(lead)] == ["started", "moved"]
    assert why(lead) == (
        f"Waiting at 'Call 1': call {call.pk} ended completed; the workflow is paused, "
        "so the lead moves on when it is resumed."
    )

    control.perform(workflow.pk, "resume", manager)
    drain_tasks()  # only the ticks queued by the resume itself

    execution = execution_of(lead)
    assert execution.node.key == "won"
    assert execution.status == ExecutionStatus.COMPLETED
    assert path(lead)[-1] == ("call_routed", "won")
    workflow.refresh_from_db()
    assert workflow.status == S.COMPLETED


def test_a_lead_at_the_entry_of_a_paused_workflow_does_not_move(workspace, manager):
    workflow = make_workflow(workspace, *DELAY_GRAPH)
    lead = only_lead(workflow)
    activate(workflow, manager)
    control.perform(workflow.pk, "pause", manager)

    assert run_tick() == {}
    assert execution_of(lead).node.key == "start"
    assert path(lead) == [("started", "start")]
    assert why(lead) == (
        "Waiting at 'Start': the workflow is paused; the lead moves on when it is resumed."
    )

    control.perform(workflow.pk, "resume", manager)
    run_tick()
    assert execution_of(lead).node.key == "wait"


def test_a_due_time_release_waits_for_resume(workspace, manager):
    workflow = make_workflow(workspace, *DELAY_GRAPH)
    lead = only_lead(workflow)
    activate(workflow, manager)
    run_tick()
    control.perform(workflow.pk, "pause", manager)
    make_due(workflow)

    assert run_tick() == {}
    assert execution_of(lead).node.key == "wait"

    control.perform(workflow.pk, "resume", manager)
    run_tick()
    assert execution_of(lead).node.key == "won"


@pytest.mark.parametrize("where", ["start", "call", "wait"])
def test_a_pause_between_claim_and_processing_moves_nothing(workspace, manager, where):
    """The worker claimed the leads, then the pause committed: its batch must not move them."""
    nodes, _ = CALL_GRAPH
    workflow = make_workflow(
        workspace,
        [*nodes, NodeSpec("wait", NodeType.TIME, "Wait", {"delay_seconds": 60})],
        [
            EdgeSpec("start", "call"),
            EdgeSpec("call", "wait", Branch.COMPLETED),
            EdgeSpec("call", "lost", Branch.DNP),
            EdgeSpec("call", "lost", Branch.FAILED),
            EdgeSpec("wait", "won"),
        ],
    )
    lead = only_lead(workflow)
    activate(workflow, manager)
    if where != "start":
        run_tick()  # at 'call', with a call
        report(execution_of(lead).call, CallStatus.COMPLETED)
    if where == "wait":
        run_tick()  # routed to 'wait'
        make_due(workflow)
    assert execution_of(lead).node.key == where
    steps = len(history(lead))

    ids = claim("worker-a", 10)
    assert ids == [execution_of(lead).pk]
    control.perform(workflow.pk, "pause", manager)
    assert process(ids, "worker-a") == {}

    execution = execution_of(lead)
    assert execution.node.key == where
    assert len(history(lead)) == steps
    assert execution.lease_owner == ""  # given back untouched, not held until the lease ends
    assert CallLog.objects.filter(lead=lead).count() == (0 if where == "start" else 1)

    control.perform(workflow.pk, "resume", manager)
    run_tick()
    assert execution_of(lead).node.key == {"start": "call", "call": "wait", "wait": "won"}[where]


@pytest.mark.django_db(transaction=True)
def test_pause_committed_during_an_application_post_keeps_the_lead_in_place(
    workspace, manager, hook
):
    workflow = make_workflow(workspace, *app_graph(hook.url))
    lead = only_lead(workflow)

    def pause_meanwhile():
        try:
            control.perform(workflow.pk, "pause", manager)
        finally:
            connection.close()  # this thread's own connection

    hook.before_answer = pause_meanwhile
    activate(workflow, manager)
    run_tick()

    assert len(hook.requests) == 1
    workflow.refresh_from_db()
    assert workflow.status == S.PAUSED
    execution = execution_of(lead)
    assert execution.node.key == "crm"  # the 200 came after the pause committed
    assert execution.lease_owner == ""
    assert [r for r, _ in path(lead)] == ["started", "moved"]

    hook.before_answer = None
    control.perform(workflow.pk, "resume", manager)
    run_tick()
    assert execution_of(lead).node.key == "won"
    assert len(hook.requests) == 2


def test_cancel_leaves_every_lead_where_it_is(workspace, manager):
    nodes, _ = CALL_GRAPH
    workflow = make_workflow(
        workspace,
        [
            *nodes,
            NodeSpec("wait", NodeType.TIME, "Wait", {"delay_seconds": 60}),
        ],
        [
            EdgeSpec("start", "call"),
            EdgeSpec("call", "wait", Branch.COMPLETED),
            EdgeSpec("call", "lost", Branch.DNP),
            EdgeSpec("call", "lost", Branch.FAILED),
            EdgeSpec("wait", "won"),
        ],
        leads=3,
    )
    activate(workflow, manager)
    run_tick()
    first, second, third = workflow.leads.order_by("id")
    report(execution_of(first).call, CallStatus.COMPLETED)
    run_tick()  # first -> wait
    report(execution_of(second).call, CallStatus.COMPLETED)  # second: final, not yet routed
    before = {e.lead_id: (e.node_id, e.status) for e in LeadExecution.objects.all()}
    assert execution_of(first).node.key == "wait"

    control.perform(workflow.pk, "cancel", manager)
    make_due(workflow)
    assert run_tick() == {}

    after = {e.lead_id: (e.node_id, e.status) for e in LeadExecution.objects.all()}
    assert after == before
    assert all(status == ExecutionStatus.ACTIVE for _, status in after.values())
    assert execution_of(second).call.routed_at is None
    for lead in (first, second, third):
        assert why(lead).startswith("Stopped at ")
        assert "cancelled" in why(lead)
    workflow.refresh_from_db()
    assert workflow.status == S.CANCELLED
    with pytest.raises(control.ActionRefused):
        control.perform(workflow.pk, "resume", manager)
