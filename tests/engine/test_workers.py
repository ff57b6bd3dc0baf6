"""Real worker processes (`manage.py db_worker`) sharing one database (SPEC 5, 6, 8).

Every worker here is a subprocess on the test database, as in a deployment: several workers
claim disjoint batches (SELECT ... FOR UPDATE SKIP LOCKED + a lease), respect the workflow's
concurrency cap together, and a worker killed mid-batch costs its leads one lease, never a
double move.

Multi-worker tests need PostgreSQL (SQLite serialises writers; several processes only queue on
its lock): they are defined only when DATABASE_URL is PostgreSQL, so nothing is skipped on
SQLite; there, a one-worker drain runs instead (it runs on PostgreSQL too).
"""

import json
import os
import signal
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django_tasks_db.models import DBTaskResult

from calls.models import CALL_ROUTING, IN_PROGRESS_CALL_STATUSES, CallLog, CallStatus
from engine import control
from engine.starting import start_pending_leads
from leads.models import ExecutionStatus, Lead, LeadExecution, LeadTransition, TransitionReason
from tests.engine.engine_checks import (
    WorkerPool,
    assert_calls_sound,
    assert_every_lead_finished_once,
    assert_history_contiguous,
    assert_no_failed_tasks,
    final_places,
    on_postgres,
    tick_results,
    unfinished,
    wait_until,
    worker_env,
)
from tests.factories import WorkflowFactory
from workflows.graph import EdgeSpec, NodeSpec
from workflows.graph_store import replace_graph
from workflows.models import Node
from workflows.statuses import Branch, NodeType, WorkflowAction, WorkflowStatus

FINAL_STATUSES = [s for s in CallStatus if s.is_final]
ROUTED_STATUSES = [s for s in FINAL_STATUSES if s in CALL_ROUTING]

# entry -> call -> won (COMPLETED) / lost (DNP, FAILED); statuses without a default output
# (cancelled, retry_expired) stay at `call` for review.
CALL_OUTPUTS = {Branch.COMPLETED: "won", Branch.DNP: "lost", Branch.FAILED: "lost"}
CALL_GRAPH = (
    [
        NodeSpec("start", NodeType.ENTRY, "Start"),
        NodeSpec("call", NodeType.VOICE_CALL, "Call"),
        NodeSpec("won", NodeType.CONVERTED, "Won"),
        NodeSpec("lost", NodeType.DROPPED, "Lost"),
    ],
    [
        EdgeSpec("start", "call"),
        *(EdgeSpec("call", target, branch) for branch, target in CALL_OUTPUTS.items()),
    ],
)


def expected_place(sim_status: CallStatus) -> tuple[str, str]:
    """Where the routing table sends a lead whose call ends `sim_status`."""
    branch = CALL_ROUTING.get(sim_status)
    if branch is None:
        return ("call", "review")
    target = CALL_OUTPUTS[branch]
    return (target, "completed" if target == "won" else "dropped")


def call_workflow(leads: int, statuses: list[CallStatus], *, max_calls: int):
    """An active-able workflow, no calling window, leads' sim_status cycling over `statuses`."""
    workflow = WorkflowFactory(
        max_concurrent_calls=max_calls, window_start=None, window_end=None, window_days=[]
    )
    replace_graph(workflow, *CALL_GRAPH)
    Lead.objects.bulk_create(
        (
            Lead(
                workflow=workflow,
                phone=f"+1202{i:07d}",
                name=f"Lead {i}",
                fields={"sim_status": statuses[i % len(statuses)].value},
            )
            for i in range(leads)
        ),
        batch_size=2000,
    )
    return workflow


def drain_with_workers(workflow, workers: int, tmp_path, timeout: float) -> WorkerPool:
    """Activate, then keep `workers` batch workers busy until every lead is finished."""
    pool = WorkerPool(
        workers,
        worker_env(DIALNEXA_SIMULATOR_DELAY="0", DIALNEXA_BATCH_SIZE="250"),
        tmp_path,
        batch=True,
    )
    control.perform(workflow.pk, WorkflowAction.ACTIVATE)
    try:
        deadline = time.monotonic() + timeout
        while unfinished(workflow.pk):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{unfinished(workflow.pk)} leads unfinished after {timeout}s\n{pool.tail()}"
                )
            pool.keep_full()
            time.sleep(0.2)
        pool.stop(timeout=120)  # batch workers leave once nothing is ready
    finally:
        pool.kill_all()
    return pool


def assert_drained_correctly(workflow) -> None:
    assert_no_failed_tasks()
    # Batch workers ran every task to the end: none is left RUNNING or READY to run now.
    assert not DBTaskResult.objects.filter(status="RUNNING").exists()
    assert not DBTaskResult.objects.ready().exists()
    assert_every_lead_finished_once(workflow.pk)
    assert_history_contiguous(workflow.pk)
    calls = assert_calls_sound(workflow.pk)
    # Each lead visited `call` once and got exactly one call, which ended as its sim_status.
    leads = dict(Lead.objects.filter(workflow=workflow).values_list("id", "fields"))
    assert sorted(c["lead_id"] for c in calls) == sorted(leads)
    assert all(c["status"] == leads[c["lead_id"]]["sim_status"] for c in calls)
    # ... and is where the routing table sends it.
    places = final_places(workflow.pk)
    wrong = {
        lead_id: (place, expected_place(CallStatus(leads[lead_id]["sim_status"])))
        for lead_id, place in places.items()
        if place != expected_place(CallStatus(leads[lead_id]["sim_status"]))
    }
    assert not wrong, f"{len(wrong)} leads routed against the table, e.g. {list(wrong.items())[:3]}"
    # Review leads are active executions: the workflow does not complete by itself.
    workflow.refresh_from_db()
    has_review = any(status == "review" for _, status in places.values())
    assert workflow.status == (WorkflowStatus.ACTIVE if has_review else WorkflowStatus.COMPLETED)


# --- one worker: SQLite and PostgreSQL ----------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_one_worker_process_drains_500_leads_through_a_voice_call(tmp_path):
    workflow = call_workflow(500, FINAL_STATUSES, max_calls=10_000)

    drain_with_workers(workflow, 1, tmp_path, timeout=300)

    assert_drained_correctly(workflow)
    counts = Counter(final_places(workflow.pk).values())
    per_status = 500 // len(FINAL_STATUSES)
    assert counts[("call", "review")] >= 2 * per_status  # cancelled + retry_expired


# --- several workers: PostgreSQL ------------------------------------------------------------

if on_postgres():

    def _drain_5000_with(workers: int, tmp_path) -> None:
        workflow = call_workflow(5000, FINAL_STATUSES, max_calls=100_000)

        drain_with_workers(workflow, workers, tmp_path, timeout=600)

        assert_drained_correctly(workflow)
        # The workers really shared the work: every slot ran tasks, and at least two
        # processes ran ticks that moved leads.
        slots_with_tasks = {
            wid.split("-")[0]
            for ids in DBTaskResult.objects.values_list("worker_ids", flat=True)
            for wid in ids
        }
        assert slots_with_tasks == {f"slot{i}" for i in range(workers)}
        moving_workers = {
            ids[-1] for ids, status, value in tick_results() if value and value.get("moved")
        }
        assert len(moving_workers) >= 2, moving_workers

    @pytest.mark.postgres_only
    @pytest.mark.django_db(transaction=True)
    def test_two_worker_processes_drain_5000_leads_each_lead_moved_once(tmp_path):
        _drain_5000_with(2, tmp_path)

    @pytest.mark.postgres_only
    @pytest.mark.django_db(transaction=True)
    def test_three_worker_processes_drain_5000_leads_each_lead_moved_once(tmp_path):
        _drain_5000_with(3, tmp_path)

    @pytest.mark.postgres_only
    @pytest.mark.django_db(transaction=True)
    def test_three_workers_never_exceed_max_concurrent_calls(tmp_path):
        workflow = call_workflow(60, ROUTED_STATUSES, max_calls=3)
        pool = WorkerPool(
            3,
            worker_env(
                DIALNEXA_SIMULATOR_DELAY="0.3",
                DIALNEXA_CAPACITY_RETRY_SECONDS="0.2",
                DIALNEXA_HEARTBEAT_SECONDS="1",
            ),
            tmp_path,
            batch=False,
            args=["--interval", "0.05"],
        )
        calls = CallLog.objects.filter(
            workflow=workflow, status__in=list(IN_PROGRESS_CALL_STATUSES)
        )
        try:
            pool.keep_full()
            control.perform(workflow.pk, WorkflowAction.ACTIVATE)
            observed = []
            deadline = time.monotonic() + 240
            while unfinished(workflow.pk):
                observed.append(calls.count())
                assert len(pool.alive()) == 3, pool.tail()
                assert time.monotonic() < deadline, f"not finished in time\n{pool.tail()}"
                time.sleep(0.01)
            pool.stop(timeout=60)
        finally:
            pool.kill_all()

        assert max(observed) == 3, Counter(observed)  # the cap was reached, never passed
        # Exact, not sampled: a call is in flight from its creation to its final status,
        # and a call placed after another ended was created after that one's ended_at.
        edges = sorted(
            point
            for created, ended in CallLog.objects.filter(workflow=workflow).values_list(
                "created_at", "ended_at"
            )
            for point in ((created, 1), (ended, -1))
        )
        in_flight, most = 0, 0
        for _, step in edges:
            in_flight += step
            most = max(most, in_flight)
        assert most == 3
        assert_no_failed_tasks()
        assert_every_lead_finished_once(workflow.pk)
        assert_history_contiguous(workflow.pk)
        assert_calls_sound(workflow.pk)
        workflow.refresh_from_db()
        assert workflow.status == WorkflowStatus.COMPLETED
        # Several workers took part in placing and walking the calls.
        workers_used = DBTaskResult.objects.exclude(worker_ids=[]).values_list(
            "worker_ids", flat=True
        )
        assert len({ids[-1] for ids in workers_used}) > 1


# --- a worker killed mid-batch: SQLite and PostgreSQL ---------------------------------------


class _Integration(ThreadingHTTPServer):
    """An application node's endpoint answering 200 to every POST.

    `hold=True`: requests block until `release` is set, so the worker that sent them is
    provably inside its batch. `delay`: every answer takes that long.
    """

    daemon_threads = True

    def __init__(self, *, hold: bool = False, delay: float = 0.0):
        super().__init__(("127.0.0.1", 0), _IntegrationHandler)
        self.delay = delay
        self.first_request = threading.Event()
        self.release = threading.Event()
        if not hold:
            self.release.set()
        self.requests: list[tuple[float, int]] = []  # (when, lead id)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"

    def posts_per_lead(self) -> Counter:
        return Counter(lead for _, lead in self.requests)


class _IntegrationHandler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append((time.time(), body["lead"]["id"]))
        self.server.first_request.set()
        self.server.release.wait(timeout=120)
        time.sleep(self.server.delay)
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b"{}")
        except OSError:
            pass  # the killed worker's connection is gone

    def log_message(self, *args):
        pass


def _integration_workflow(url: str, timeout_seconds: int, leads: int):
    """entry -> application (`url`) -> converted, started: every lead at the entry, due."""
    workflow = WorkflowFactory(window_start=None, window_end=None)
    replace_graph(
        workflow,
        [
            NodeSpec("start", NodeType.ENTRY, "Start"),
            NodeSpec(
                "crm", NodeType.APPLICATION, "CRM", {"url": url, "timeout_seconds": timeout_seconds}
            ),
            NodeSpec("won", NodeType.CONVERTED, "Won"),
        ],
        [EdgeSpec("start", "crm"), EdgeSpec("crm", "won")],
    )
    Lead.objects.bulk_create(
        Lead(workflow=workflow, phone=f"+1202555{i:04d}", name=f"Lead {i}") for i in range(leads)
    )
    workflow.status = WorkflowStatus.ACTIVE
    workflow.save()
    assert start_pending_leads(workflow.pk) == leads  # also queues the first tick
    return workflow, Node.objects.get(workflow=workflow, key="crm")


def _assert_each_lead_left_crm_once(workflow, crm) -> list[int]:
    assert set(
        LeadExecution.objects.filter(workflow=workflow).values_list("status", "node__key")
    ) == {(ExecutionStatus.COMPLETED, "won")}
    assert_history_contiguous(workflow.pk)
    out_of_crm = Counter(
        LeadTransition.objects.filter(from_node=crm).values_list("lead_id", "reason")
    )
    lead_ids = list(workflow.leads.values_list("id", flat=True))
    assert out_of_crm == Counter({(pk, TransitionReason.INTEGRATION_OK): 1 for pk in lead_ids})
    return lead_ids


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_batch_loses_its_leads_to_another_after_the_lease(tmp_path):
    lease = 3
    server = _Integration(hold=True)
    workflow, crm = _integration_workflow(server.url, timeout_seconds=8, leads=20)
    env = worker_env(DIALNEXA_LEASE_SECONDS=str(lease), DIALNEXA_HEARTBEAT_SECONDS="0.5")
    doomed = WorkerPool(1, env, tmp_path, batch=True, name="doomed")
    rescuer = WorkerPool(1, env, tmp_path, batch=False, args=["--interval", "0.1"], name="rescue")
    try:
        victim = doomed.spawn(0)
        wait_until(server.first_request.is_set, 60, "the worker's first POST", 0.05, doomed.tail)

        # Mid-batch: it moved every lead to `crm`, kept leases on the leads it is posting
        # (as many as fit in its lease) and gave the rest back, due.
        at_crm = dict(
            LeadExecution.objects.filter(workflow=workflow, node=crm).values_list(
                "lead_id", "lease_owner"
            )
        )
        assert len(at_crm) == 20
        held = {lead for lead, owner in at_crm.items() if owner}
        assert held, "the worker holds no lease while posting"
        owners = {at_crm[lead] for lead in held}
        assert len(owners) == 1 and f":{victim.pid}:" in owners.pop()
        wait_until(lambda: set(server.posts_per_lead()) == held, 10, "its POSTs", 0.05)
        lease_ends = max(
            LeadExecution.objects.filter(lead_id__in=held).values_list(
                "lease_expires_at", flat=True
            )
        )
        os.kill(victim.pid, signal.SIGKILL)
        assert victim.wait(timeout=30) == -signal.SIGKILL
        server.release.set()

        # The killed worker wrote nothing past its claim.
        assert not LeadTransition.objects.filter(from_node=crm).exists()

        rescuer.spawn(0)
        wait_until(lambda: not unfinished(workflow.pk), 90, "the rescue", on_timeout=rescuer.tail)
        rescuer.stop(timeout=60)
    finally:
        server.release.set()
        doomed.kill_all()
        rescuer.kill_all()
        server.shutdown()

    lead_ids = _assert_each_lead_left_crm_once(workflow, crm)
    # The rescuer left the killed worker's leads alone until its lease lapsed; then posted them
    # again (at-least-once delivery to integrations). The other leads were posted once.
    blocked = len(held)
    assert all(
        t >= lease_ends.timestamp() - 0.05 for t, lead in server.requests[blocked:] if lead in held
    )
    assert server.posts_per_lead() == Counter({pk: 2 if pk in held else 1 for pk in lead_ids})
    # django-tasks-db never recovers the killed worker's task: it stays RUNNING for ever, so
    # the engine's recovery rests on leases and the heartbeat, not on the task queue.
    ticks = Counter((ids[-1].split("-")[0], status) for ids, status, _ in tick_results())
    assert ticks[("doomed0", "RUNNING")] == 1
    assert ticks[("doomed0", "SUCCESSFUL")] == 0
    assert ticks[("rescue0", "SUCCESSFUL")] >= 1
    assert ticks[("rescue0", "RUNNING")] == 0
    assert_no_failed_tasks()
    workflow.refresh_from_db()
    assert workflow.status == WorkflowStatus.COMPLETED


@pytest.mark.django_db(transaction=True)
def test_an_integration_slower_than_the_lease_but_within_its_timeout_still_moves_leads(
    tmp_path,
):
    """Node timeout 10 s, lease 2 s, the integration answers 200 after 3 s, two workers.

    Each answer arrives within the node's timeout, so each lead must move on once. A worker
    whose lease lapsed mid-POST may lose the lead to the other worker, but then that worker
    must be able to finish it.
    """
    server = _Integration(delay=3.0)
    workflow, crm = _integration_workflow(server.url, timeout_seconds=10, leads=4)
    pool = WorkerPool(
        2,
        worker_env(DIALNEXA_LEASE_SECONDS="2", DIALNEXA_HEARTBEAT_SECONDS="0.5"),
        tmp_path,
        batch=False,
        args=["--interval", "0.1"],
    )
    try:
        pool.keep_full()
        # Generous: two worker processes start from cold on a possibly busy 2-core machine.
        deadline = time.monotonic() + 90
        while unfinished(workflow.pk) and time.monotonic() < deadline:
            time.sleep(0.2)
        stuck = unfinished(workflow.pk)
        pool.stop(timeout=60)
    finally:
        pool.kill_all()
        server.shutdown()

    assert not stuck, (
        f"{stuck} of 4 leads still at 'crm' after 90 s although the integration accepted "
        f"every POST within 3 s; POSTs per lead: {dict(server.posts_per_lead())}"
    )
    _assert_each_lead_left_crm_once(workflow, crm)
