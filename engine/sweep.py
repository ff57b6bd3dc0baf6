"""The sweep: claim due executions in batches and move them (SPEC 5, issue: engine).

The execution table is the source of truth. A worker claims a batch of due executions with a
lease (`select_for_update(skip_locked=True)` on PostgreSQL, so any number of workers share
the work), handles them grouped by workflow and node, and writes only rows it still holds
(engine.moves.move). A lease that expires — its worker died — makes the rows due for anyone.
"""

import logging
import os
import socket
import time as clock
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Min, Q
from django.utils import timezone

from calls.models import IN_PROGRESS_CALL_STATUSES, CallLog, CallStatus
from engine.integrations import Attempt, post_lead
from engine.moves import Graph, hold_for_review, lock_workflow_for_moves, move, move_ids
from engine.providers import place_calls
from engine.ticks import ensure_tick
from leads.models import ExecutionStatus, Lead, LeadExecution, TransitionReason
from workflows.models import Workflow, WorkflowEvent
from workflows.schedule import window_opening
from workflows.statuses import NodeType, WorkflowStatus

log = logging.getLogger(__name__)

PROCESSING = [WorkflowStatus.ACTIVE, WorkflowStatus.RUNNING]


def new_owner() -> str:
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _due(now, limit: int):
    """Due, unleased executions of processing workflows, locked for this transaction.

    Ordered and SKIP LOCKED: concurrent workers take disjoint batches without waiting for each
    other. The processing workflows are looked up first (a handful) so that the scan walks the
    partial (due_at, id) index and stops after `limit` rows, with no join.
    """
    processing = list(
        Workflow.objects.filter(status__in=PROCESSING).values_list("id", flat=True).order_by("id")
    )
    if processing and connection.vendor == "postgresql":
        # Share-lock the workflows before any execution row, the order every other mover uses
        # (manual actions, the leased path): no lock cycle with a pause queued between them.
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT id FROM {Workflow._meta.db_table} WHERE id = ANY(%s) ORDER BY id "
                "FOR SHARE",
                [processing],
            )
    return (
        LeadExecution.objects.filter(
            status=ExecutionStatus.ACTIVE, due_at__lte=now, workflow_id__in=processing
        )
        .filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now))
        .order_by("due_at", "id")
        .select_for_update(skip_locked=True, of=("self",))[:limit]
    )


def _lease(ids: list[int], owner: str, now) -> None:
    LeadExecution.objects.filter(id__in=ids).update(
        lease_owner=owner,
        lease_expires_at=now + timedelta(seconds=settings.DIALNEXA_LEASE_SECONDS),
    )


def claim(owner: str, limit: int) -> list[int]:
    """Lease up to `limit` due executions of processing workflows to `owner`."""
    now = timezone.now()
    with transaction.atomic():
        ids = list(_due(now, limit).values_list("id", flat=True))
        if ids:
            _lease(ids, owner, now)
    return ids


# Nodes whose move needs nothing from outside the database: moved inside the claiming
# transaction itself, with no lease (the row locks are enough) — the hot path of a sweep.
_INSTANT = (NodeType.ENTRY, NodeType.TIME)
_INSTANT_REASONS = {
    NodeType.ENTRY: (TransitionReason.MOVED, "Left the entry node '{name}'."),
    NodeType.TIME: (TransitionReason.RELEASED, "Released by '{name}'."),
}


def claim_and_move(owner: str, limit: int, graphs: dict[int, Graph]) -> tuple[int, dict, list]:
    """Claim up to `limit` due executions; move the entry and time-node ones at once, lease the
    others to `owner` for `process`. Returns (claimed, stats, leased ids, finished workflows).
    """
    now = timezone.now()
    stats: dict[str, int] = defaultdict(int)
    finished: set[int] = set()
    with transaction.atomic():
        rows = list(_due(now, limit).values_list("id", "workflow_id", "node_id"))
        groups: dict[tuple[int, int], list[int]] = defaultdict(list)
        for pk, workflow_id, node_id in rows:
            groups[(workflow_id, node_id)].append(pk)
        leased: list[int] = []
        workflows: dict[int, Workflow | None] = {}
        for (workflow_id, node_id), ids in groups.items():
            if workflow_id not in workflows:
                status = lock_workflow_for_moves(workflow_id)
                workflows[workflow_id] = (
                    Workflow.objects.get(pk=workflow_id)
                    if status is not None and status.processes_leads
                    else None
                )
            workflow = workflows[workflow_id]
            if workflow is None:
                continue  # paused or cancelled since the scan began: leave them due
            graph = graphs.get(workflow_id) or graphs.setdefault(
                workflow_id, Graph.load(workflow_id)
            )
            node = graph.nodes[node_id]
            node_type = NodeType(node.type)
            target = graph.next_node(node)
            if node_type not in _INSTANT or target is None:
                leased += ids
                continue
            reason, message = _INSTANT_REASONS[node_type]
            moved = move_ids(
                ids,
                workflow=workflow,
                from_node=node,
                to_node=target,
                reason=reason,
                message=message.format(name=node.name),
                now=now,
            )
            stats["moved"] += moved
            if moved and NodeType(target.type).is_terminal:
                finished.add(workflow_id)
        if leased:
            _lease(leased, owner, now)
    return len(rows), dict(stats), leased, finished


def release(ids: list[int], owner: str, **changes) -> None:
    """Give back executions this worker holds, optionally changing when they are next due."""
    LeadExecution.objects.filter(id__in=ids, lease_owner=owner).update(
        lease_owner="", lease_expires_at=None, **changes
    )


def _lock_held(ids: list[int], owner: str) -> list[LeadExecution]:
    """The executions among `ids` this worker still holds, locked for this transaction."""
    return list(
        LeadExecution.objects.filter(id__in=ids, lease_owner=owner, status=ExecutionStatus.ACTIVE)
        .select_for_update(of=("self",))
        .select_related("node")
        .order_by("id")
    )


def process(ids: list[int], owner: str) -> dict:
    stats: dict[str, int] = defaultdict(int)
    rows = list(
        LeadExecution.objects.filter(id__in=ids, lease_owner=owner)
        .values_list("id", "workflow_id", "node_id")
        .order_by("id")
    )
    by_workflow: dict[int, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    for pk, workflow_id, node_id in rows:
        by_workflow[workflow_id][node_id].append(pk)
    for workflow_id, by_node in by_workflow.items():
        workflow = Workflow.objects.get(pk=workflow_id)
        graph = Graph.load(workflow_id)
        finished = False
        for node_id, node_ids in by_node.items():
            node = graph.nodes[node_id]
            handler = _HANDLERS[NodeType(node.type)]
            finished |= handler(workflow, graph, node, node_ids, owner, stats)
        if finished:
            complete_if_done(workflow_id)
    return dict(stats)


def _still_processing(workflow: Workflow, ids: list[int], owner: str) -> bool:
    status = lock_workflow_for_moves(workflow.pk)
    if status is None or not status.processes_leads:
        # Paused or cancelled since the claim: give the leads back untouched.
        release(ids, owner)
        return False
    return True


def _advance(workflow, graph, node, ids, owner, stats, reason, message) -> bool:
    target = graph.next_node(node)
    with transaction.atomic():
        if not _still_processing(workflow, ids, owner):
            return False
        executions = _lock_held(ids, owner)
        if target is None:  # validation forbids it; never strand a lead silently
            for execution in executions:
                hold_for_review(
                    execution,
                    reason=TransitionReason.MOVED,
                    metadata={},
                    review_reason=f"'{node.name}' has no output.",
                    now=timezone.now(),
                )
            return False
        moved = move(
            executions,
            workflow=workflow,
            from_node=node,
            to_node=target,
            reason=reason,
            message=message,
            owner=owner,
            now=timezone.now(),
        )
    stats["moved"] += len(moved)
    return NodeType(target.type).is_terminal and bool(moved)


def _handle_instant(workflow, graph, node, ids, owner, stats) -> bool:
    """Entry and time nodes claimed by `claim` (the fast path moves them in claim_and_move)."""
    reason, message = _INSTANT_REASONS[NodeType(node.type)]
    return _advance(
        workflow, graph, node, ids, owner, stats, reason, message.format(name=node.name)
    )


def _handle_voice_call(workflow, graph, node, ids, owner, stats) -> bool:
    now = timezone.now()
    finished = False
    with transaction.atomic():
        if not _still_processing(workflow, ids, owner):
            return False
        executions = _lock_held(ids, owner)
        # Read the calls after locking the executions: a status report that commits later
        # makes the execution due again, so nothing waits on a status it missed.
        calls = CallLog.objects.in_bulk([e.call_id for e in executions if e.call_id])
        to_place, waiting, by_target = [], [], defaultdict(list)
        for execution in executions:
            call = calls.get(execution.call_id)
            if call is None or call.visit != execution.visit:
                to_place.append(execution)
            elif not CallStatus(call.status).is_final:
                waiting.append(execution.pk)
            elif call.routed_at is None:
                branch = CallStatus(call.status).branch
                target = graph.next_node(node, branch) if branch else None
                if target is None:
                    _hold_call_for_review(execution, node, call, branch, now)
                    stats["review"] += 1
                else:
                    by_target[target.pk].append((execution, call, branch))
            else:
                waiting.append(execution.pk)
        release(waiting, owner, due_at=None)
        routed_calls = []
        for target_id, group in by_target.items():
            target = graph.nodes[target_id]
            moved = move(
                [e for e, _, _ in group],
                workflow=workflow,
                from_node=node,
                to_node=target,
                reason=TransitionReason.CALL_ROUTED,
                message=f"Call ended and was routed by '{node.name}'.",
                metadata=[
                    {
                        "call_id": c.pk,
                        "call_status": c.status,
                        "end_reason": c.end_reason,
                        "branch": b,
                    }
                    for _, c, b in group
                ],
                owner=owner,
                now=now,
            )
            moved_ids = {m.execution_id for m in moved}
            routed_calls += [c.pk for e, c, _ in group if e.pk in moved_ids]
            stats["moved"] += len(moved)
            finished |= NodeType(target.type).is_terminal and bool(moved)
        CallLog.objects.filter(pk__in=routed_calls, routed_at__isnull=True).update(routed_at=now)
        if to_place:
            _place_or_wait(workflow, node, to_place, owner, stats, now)
    return finished


def _hold_call_for_review(execution, node, call, branch, now) -> None:
    if branch is None:
        reason = (
            f"Call {call.pk} ended {call.status}: not a default Voice Call output, so the lead "
            f"stays at '{node.name}' for review."
        )
    else:
        reason = (
            f"Call {call.pk} ended {call.status} ({branch}) but '{node.name}' has no {branch} "
            "output, so the lead stays here for review."
        )
    hold_for_review(
        execution,
        reason=TransitionReason.CALL_REVIEW,
        review_reason=reason,
        metadata={
            "call_id": call.pk,
            "call_status": call.status,
            "end_reason": call.end_reason,
            "branch": branch,
        },
        now=now,
    )
    CallLog.objects.filter(pk=call.pk, routed_at__isnull=True).update(routed_at=now)


def _lock_call_capacity(workflow_id: int) -> None:
    """Serialise call placement per workflow, so max_concurrent_calls holds with any number of
    workers. A transaction-level advisory lock on PostgreSQL (SQLite serialises writers)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [7301, workflow_id])


def _place_or_wait(workflow, node, executions, owner, stats, now) -> None:
    opening = window_opening(
        now, workflow.window_start, workflow.window_end, workflow.window_days, workflow.tz
    )
    ids = [e.pk for e in executions]
    if opening is not None:
        release(ids, owner, release_at=opening, due_at=opening)
        stats["outside_window"] += len(ids)
        return
    _lock_call_capacity(workflow.pk)
    in_flight = CallLog.objects.filter(
        workflow=workflow, status__in=IN_PROGRESS_CALL_STATUSES
    ).count()
    capacity = max(workflow.max_concurrent_calls - in_flight, 0)
    placing, later = executions[:capacity], executions[capacity:]
    if placing:
        leads = Lead.objects.in_bulk([e.lead_id for e in placing])
        place_calls(workflow, node, [(e, leads[e.lead_id]) for e in placing], owner=owner)
        stats["calls_placed"] += len(placing)
    if later:
        retry_at = now + timedelta(seconds=settings.DIALNEXA_CAPACITY_RETRY_SECONDS)
        release([e.pk for e in later], owner, release_at=None, due_at=retry_at)
        stats["at_capacity"] += len(later)


_POST_THREADS = 8


def _handle_application(workflow, graph, node, ids, owner, stats) -> bool:
    target = graph.next_node(node)
    if not Workflow.objects.filter(pk=workflow.pk, status__in=PROCESSING).exists():
        release(ids, owner)  # paused since the claim: send nothing
        return False
    # At most a lease's worth of requests (8 at a time) per batch; the rest go back to the
    # queue. The lease is then stretched to cover every request timing out, so a slow
    # integration is never claimed and POSTed again by a second worker mid-request.
    timeout = float(node.config.get("timeout_seconds", settings.DIALNEXA_HTTP_TIMEOUT_SECONDS))
    fits = max(1, int(settings.DIALNEXA_LEASE_SECONDS / timeout)) * _POST_THREADS
    ids, later = ids[:fits], ids[fits:]
    release(later, owner)
    rounds = -(-len(ids) // _POST_THREADS)
    LeadExecution.objects.filter(id__in=ids, lease_owner=owner).update(
        lease_expires_at=timezone.now() + timedelta(seconds=rounds * timeout + 5)
    )
    executions = list(
        LeadExecution.objects.filter(id__in=ids, lease_owner=owner).select_related("lead")
    )
    # The HTTP requests run outside any transaction (they may take seconds), a few at a time;
    # the lease keeps other workers off these leads meanwhile.
    with ThreadPoolExecutor(max_workers=_POST_THREADS) as pool:
        results = pool.map(lambda e: post_lead(workflow, node, e), executions)
        attempts = {e.pk: attempt for e, attempt in zip(executions, results, strict=True)}
    now = timezone.now()
    finished = False
    with transaction.atomic():
        if not _still_processing(workflow, ids, owner):
            return False
        held = [e for e in _lock_held(ids, owner) if e.pk in attempts]
        ok = [e for e in held if attempts[e.pk].ok]
        if ok and target is not None:
            moved = move(
                ok,
                workflow=workflow,
                from_node=node,
                to_node=target,
                reason=TransitionReason.INTEGRATION_OK,
                message=f"The integration '{node.name}' accepted the lead.",
                metadata=[attempts[e.pk].as_metadata() for e in ok],
                owner=owner,
                now=now,
            )
            stats["moved"] += len(moved)
            finished = NodeType(target.type).is_terminal and bool(moved)
        for execution in held:
            attempt = attempts[execution.pk]
            if attempt.ok:
                continue
            _integration_failed(execution, node, attempt, owner, now)
            stats["integration_failures"] += 1
    return finished


def _integration_failed(execution, node, attempt: Attempt, owner, now) -> None:
    failures = execution.attempts + 1
    if failures > settings.DIALNEXA_HTTP_RETRIES:
        hold_for_review(
            execution,
            reason=TransitionReason.INTEGRATION_FAILED,
            review_reason=(
                f"Integration '{node.name}' failed ({attempt.describe()}) after {failures} "
                "attempts; needs integration review."
            ),
            metadata={**attempt.as_metadata(), "attempts": failures},
            now=now,
        )
        LeadExecution.objects.filter(pk=execution.pk).update(attempts=failures)
        return
    backoff = settings.DIALNEXA_HTTP_BACKOFF_SECONDS * (2 ** (failures - 1))
    LeadExecution.objects.filter(pk=execution.pk, lease_owner=owner).update(
        attempts=failures,
        due_at=now + timedelta(seconds=backoff),
        lease_owner="",
        lease_expires_at=None,
    )


def _handle_terminal(workflow, graph, node, ids, owner, stats) -> bool:
    # A terminal finishes the execution on arrival; an active one here is repaired.
    with transaction.atomic():
        release(ids, owner, due_at=None)
    return False


_HANDLERS = {
    NodeType.ENTRY: _handle_instant,
    NodeType.TIME: _handle_instant,
    NodeType.VOICE_CALL: _handle_voice_call,
    NodeType.APPLICATION: _handle_application,
    NodeType.CONVERTED: _handle_terminal,
    NodeType.DROPPED: _handle_terminal,
}


def complete_if_done(workflow_id: int) -> bool:
    """An active workflow with leads, all of them final, becomes `completed` (SPEC 4)."""
    if LeadExecution.objects.filter(
        workflow_id=workflow_id, status=ExecutionStatus.ACTIVE
    ).exists():
        return False
    with transaction.atomic():
        workflow = Workflow.objects.select_for_update().get(pk=workflow_id)
        if not workflow.workflow_status.processes_leads:
            return False
        if not workflow.leads.exists():
            return False
        if workflow.executions.filter(status=ExecutionStatus.ACTIVE).exists():
            return False
        if workflow.leads.filter(execution__isnull=True).exists():
            return False
        previous = workflow.status
        workflow.status = WorkflowStatus.COMPLETED
        workflow.completed_at = timezone.now()
        workflow.save(update_fields=["status", "completed_at", "updated_at"])
        WorkflowEvent.objects.create(
            workflow=workflow,
            action="complete",
            from_status=previous,
            to_status=WorkflowStatus.COMPLETED,
            detail={"reason": "every lead is final"},
        )
    log.info("workflow %s completed", workflow_id)
    return True


def next_due_at():
    """When the next tick has work: the first due time, or the first lease to expire."""
    now = timezone.now()
    waiting = LeadExecution.objects.filter(
        status=ExecutionStatus.ACTIVE, due_at__isnull=False, workflow__status__in=PROCESSING
    )
    free = waiting.filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now))
    first_free = free.aggregate(first=Min("due_at"))["first"]
    first_expiry = waiting.filter(lease_expires_at__gte=now).aggregate(
        first=Min("lease_expires_at")
    )["first"]
    candidates = [t for t in (first_free, first_expiry) if t is not None]
    return min(candidates) if candidates else None


def run_tick(budget_seconds: float | None = None, batch_size: int | None = None) -> dict:
    """Claim and process batches until nothing is due or the time budget is spent."""
    budget = budget_seconds if budget_seconds is not None else settings.DIALNEXA_TICK_SECONDS
    size = batch_size or settings.DIALNEXA_BATCH_SIZE
    owner = new_owner()
    started = clock.monotonic()
    totals: dict[str, int] = defaultdict(int)
    graphs: dict[int, Graph] = {}  # a non-draft workflow's graph never changes
    while clock.monotonic() - started < budget:
        claimed, stats, leased, finished = claim_and_move(owner, size, graphs)
        if not claimed:
            break
        if claimed == size:
            # More is probably due: let an idle worker start on it in parallel.
            ensure_tick()
        for workflow_id in finished:
            complete_if_done(workflow_id)
        if leased:
            stats = {**stats}
            for key, value in process(leased, owner).items():
                stats[key] = stats.get(key, 0) + value
        for key, value in stats.items():
            totals[key] += value
        totals["batches"] += 1
    else:
        ensure_tick()
    upcoming = next_due_at()
    if upcoming is not None and upcoming > timezone.now():
        ensure_tick(run_after=upcoming)
    return dict(totals)
