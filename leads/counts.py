"""Per-workflow lead counts: by execution status and by node (SPEC 7 `counts`).

Two grouped queries over the (workflow, status, node) index plus one count of leads, whatever
the number of leads.
"""

from django.db.models import Count, Q

from leads.models import ExecutionStatus, Lead, LeadExecution
from workflows.models import Node, Workflow


def status_counts(workflow_ids: list[int]) -> dict[int, dict[str, int]]:
    """Lead counts per execution status for each workflow: two grouped queries in all.

    `pending` is leads without an execution (SPEC 2), so leads minus started executions.
    """
    counts = {pk: dict.fromkeys(ExecutionStatus.values, 0) for pk in workflow_ids}
    started = dict.fromkeys(workflow_ids, 0)
    for workflow_id, status, n in (
        LeadExecution.objects.filter(workflow_id__in=workflow_ids)
        .values_list("workflow_id", "status")
        .annotate(n=Count("id"))
        .order_by()
    ):
        counts[workflow_id][status] = n
        started[workflow_id] += n
    for workflow_id, n in (
        Lead.objects.filter(workflow_id__in=workflow_ids)
        .values_list("workflow_id")
        .annotate(n=Count("id"))
        .order_by()
    ):
        counts[workflow_id][ExecutionStatus.PENDING] = max(n - started[workflow_id], 0)
    return counts


def workflow_counts(workflow: Workflow) -> dict:
    statuses = status_counts([workflow.pk])[workflow.pk]
    # The API's shape (SPEC 7); the dashboard reads the finer node_counts.
    nodes = {
        key: {"active": c["active"], "needs_review": c["needs_review"]}
        for key, c in node_counts(workflow).items()
    }
    return {"statuses": statuses, "nodes": nodes}


NODE_COUNT_KEYS = ("active", "waiting_release", "waiting_call", "needs_review")


def node_counts(workflow: Workflow) -> dict[str, dict[str, int]]:
    """Per node key: active leads, and of those how many wait for a release time, wait for a
    call's final status, or need review. One grouped query, no join."""
    keys = dict(Node.objects.filter(workflow=workflow).order_by("id").values_list("id", "key"))
    nodes = {key: dict.fromkeys(NODE_COUNT_KEYS, 0) for key in keys.values()}
    for row in (
        LeadExecution.objects.filter(workflow=workflow, status=ExecutionStatus.ACTIVE)
        .values("node_id")
        .annotate(
            active=Count("id"),
            waiting_release=Count("id", filter=Q(release_at__isnull=False)),
            # A placed call clears due_at until its final status makes the lead due again.
            waiting_call=Count(
                "id", filter=Q(call__isnull=False, due_at__isnull=True, needs_review=False)
            ),
            needs_review=Count("id", filter=Q(needs_review=True)),
        )
        .order_by()
    ):
        nodes[keys[row["node_id"]]] = {k: row[k] for k in NODE_COUNT_KEYS}
    return nodes
