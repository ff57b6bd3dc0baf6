"""Moving executions between nodes: the one home of a move (SPEC 5).

A move changes the execution and appends exactly one history row whose `from_node` is the
node the execution was at, in one transaction; so per lead the history is contiguous. Moves
are set-based: one UPDATE for a whole group moving from one node to another.
"""

import json
from dataclasses import dataclass
from datetime import datetime

from django.db import connection
from django.db.models import F

from leads.models import ExecutionStatus, LeadExecution, LeadTransition, TransitionReason
from workflows.models import Edge, Node, Workflow
from workflows.schedule import release_time
from workflows.statuses import NodeType, WorkflowStatus

_FINAL_BY_TERMINAL = {
    NodeType.CONVERTED: ExecutionStatus.COMPLETED,
    NodeType.DROPPED: ExecutionStatus.DROPPED,
}


def lock_workflow_for_moves(workflow_id: int) -> WorkflowStatus | None:
    """Read the workflow's status under a shared row lock, in the caller's transaction.

    Control actions take the exclusive lock, so a pause waits for moves in flight to commit,
    and every move that starts after the pause committed sees `paused` and does nothing.
    Movers share the lock, so they do not wait for each other. (SQLite: the IMMEDIATE
    transaction already serialises everything.)
    """
    table = Workflow._meta.db_table
    suffix = " FOR SHARE" if connection.vendor == "postgresql" else ""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT status FROM {table} WHERE id = %s{suffix}", [workflow_id])
        row = cursor.fetchone()
    return WorkflowStatus(row[0]) if row else None


@dataclass(frozen=True)
class Graph:
    """A workflow's nodes and outputs, read once per batch."""

    nodes: dict[int, Node]
    outputs: dict[tuple[int, str | None], Node]

    @classmethod
    def load(cls, workflow_id: int) -> "Graph":
        nodes = {n.pk: n for n in Node.objects.filter(workflow_id=workflow_id)}
        outputs = {
            (source, branch): nodes[target]
            for source, target, branch in Edge.objects.filter(workflow_id=workflow_id).values_list(
                "source_id", "target_id", "branch"
            )
        }
        return cls(nodes=nodes, outputs=outputs)

    def next_node(self, node: Node, branch: str | None = None) -> Node | None:
        return self.outputs.get((node.pk, branch))


def arrival_fields(node: Node, workflow: Workflow, now: datetime) -> dict:
    """What an execution looks like the moment it enters `node`."""
    fields = {
        "node": node,
        "visit": F("visit") + 1,
        "entered_at": now,
        "call": None,
        "needs_review": False,
        "review_reason": "",
        "attempts": 0,
        "lease_owner": "",
        "lease_expires_at": None,
        "release_at": None,
        "due_at": now,
        "status": ExecutionStatus.ACTIVE,
        "finished_at": None,
    }
    node_type = NodeType(node.type)
    if node_type.is_terminal:
        fields.update(status=_FINAL_BY_TERMINAL[node_type], due_at=None, finished_at=now)
    elif node_type is NodeType.TIME:
        release = release_time(now, node.config, workflow.tz)
        fields.update(release_at=release, due_at=release)
    return fields


def arrival_sentence(node: Node, fields: dict, workflow: Workflow) -> str:
    if NodeType(node.type).is_terminal:
        return f"The lead finished at '{node.name}' ({fields['status']})."
    if fields["release_at"] is not None:
        local = fields["release_at"].astimezone(workflow.tz).strftime("%Y-%m-%d %H:%M %Z")
        return f"It waits at '{node.name}' until {local}."
    return f"It is now at '{node.name}'."


@dataclass(frozen=True)
class Moved:
    execution_id: int
    lead_id: int


def move(
    executions: list[LeadExecution],
    *,
    workflow: Workflow,
    from_node: Node,
    to_node: Node,
    reason: TransitionReason,
    message: str,
    metadata: dict | list[dict] | None = None,
    owner: str | None = None,
    actor=None,
    now: datetime,
) -> list[Moved]:
    """Move `executions` (all at `from_node`) to `to_node`; one history row each.

    Call inside a transaction that has checked the workflow's status. With `owner`, only
    executions this worker still holds the lease on move: a worker whose lease was taken over
    by another is refused here, so no lead moves twice. Returns what actually moved.
    `metadata` is one dict for all, or a list parallel to `executions`.
    """
    if not executions:
        return []
    by_id = {e.pk: i for i, e in enumerate(executions)}
    held = LeadExecution.objects.filter(
        pk__in=list(by_id), node=from_node, status=ExecutionStatus.ACTIVE
    )
    if owner is not None:
        held = held.filter(lease_owner=owner)
    locked = list(held.select_for_update().values_list("pk", "lead_id").order_by("pk"))
    if not locked:
        return []
    fields = arrival_fields(to_node, workflow, now)
    LeadExecution.objects.filter(pk__in=[pk for pk, _ in locked]).update(**fields)
    sentence = f"{message} {arrival_sentence(to_node, fields, workflow)}"
    if not isinstance(metadata, list):
        _history_for_group(
            [pk for pk, _ in locked],
            from_node,
            to_node,
            reason,
            sentence,
            metadata or {},
            actor,
            now,
        )
        return [Moved(pk, lead_id) for pk, lead_id in locked]
    rows = []
    for pk, lead_id in locked:
        meta = metadata[by_id[pk]] if isinstance(metadata, list) else (metadata or {})
        rows.append(
            LeadTransition(
                lead_id=lead_id,
                from_node=from_node,
                to_node=to_node,
                reason=reason,
                message=sentence,
                metadata=meta,
                actor=actor,
                created_at=now,
            )
        )
    LeadTransition.objects.bulk_create(rows, batch_size=1000)
    return [Moved(pk, lead_id) for pk, lead_id in locked]


# Rows that just arrived at the target (node and entry instant): exactly the ones moved.
_HISTORY_FROM_EXECUTIONS = """
INSERT INTO {transition} (lead_id, from_node_id, to_node_id, reason, message, metadata,
                          actor_id, created_at)
SELECT lead_id, %s, %s, %s, %s, %s, %s, %s FROM {execution}
WHERE id IN ({ids}) AND node_id = %s AND entered_at = %s
"""


def _history_for_group(ids, from_node, to_node, reason, sentence, metadata, actor, now) -> None:
    """One INSERT ... SELECT for a group with the same history row: the hot path of a sweep."""
    sql = _HISTORY_FROM_EXECUTIONS.format(
        transition=LeadTransition._meta.db_table,
        execution=LeadExecution._meta.db_table,
        ids=", ".join(["%s"] * len(ids)),
    )
    params = [
        from_node.pk,
        to_node.pk,
        reason.value,
        sentence,
        json.dumps(metadata),
        actor.pk if actor is not None else None,
        connection.ops.adapt_datetimefield_value(now),
        *ids,
        to_node.pk,
        connection.ops.adapt_datetimefield_value(now),
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def move_ids(
    ids: list[int],
    *,
    workflow: Workflow,
    from_node: Node,
    to_node: Node,
    reason: TransitionReason,
    message: str,
    now: datetime,
) -> int:
    """Move executions this transaction has already locked (the sweep's claim): one UPDATE and
    one INSERT ... SELECT of history, whatever the number of leads. Returns how many moved."""
    fields = arrival_fields(to_node, workflow, now)
    moved = LeadExecution.objects.filter(
        pk__in=ids, node=from_node, status=ExecutionStatus.ACTIVE
    ).update(**fields)
    if moved:
        sentence = f"{message} {arrival_sentence(to_node, fields, workflow)}"
        _history_for_group(ids, from_node, to_node, reason, sentence, {}, None, now)
    return moved


def hold_for_review(
    execution: LeadExecution,
    *,
    reason: TransitionReason,
    review_reason: str,
    metadata: dict,
    now: datetime,
    actor=None,
) -> None:
    """The lead stays at its node, flagged `needs_review`; history says why."""
    LeadExecution.objects.filter(pk=execution.pk).update(
        needs_review=True,
        review_reason=review_reason,
        due_at=None,
        release_at=None,
        lease_owner="",
        lease_expires_at=None,
    )
    LeadTransition.objects.create(
        lead_id=execution.lead_id,
        from_node_id=execution.node_id,
        to_node_id=execution.node_id,
        reason=reason,
        message=review_reason,
        metadata=metadata,
        actor=actor,
        created_at=now,
    )
