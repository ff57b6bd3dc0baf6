"""Per-workflow lead counts: by execution status and by node (SPEC 7 `counts`).

Two grouped queries over the (workflow, status, node) index plus one count of leads, whatever
the number of leads.
"""

from django.db.models import Count, Q

from leads.models import ExecutionStatus, Lead, LeadExecution
from workflows.models import Node, Workflow


def workflow_counts(workflow: Workflow) -> dict:
    statuses = {status.value: 0 for status in ExecutionStatus}
    started = 0
    for row in (
        LeadExecution.objects.filter(workflow=workflow)
        .values("status")
        .annotate(n=Count("id"))
        .order_by()
    ):
        statuses[row["status"]] = row["n"]
        started += row["n"]
    statuses[ExecutionStatus.PENDING] = max(
        Lead.objects.filter(workflow=workflow).count() - started, 0
    )

    nodes = {
        key: {"active": 0, "needs_review": 0}
        for key in Node.objects.filter(workflow=workflow)
        .order_by("id")
        .values_list("key", flat=True)
    }
    for row in (
        LeadExecution.objects.filter(workflow=workflow, status=ExecutionStatus.ACTIVE)
        .values("node__key")
        .annotate(active=Count("id"), needs_review=Count("id", filter=Q(needs_review=True)))
        .order_by()
    ):
        nodes[row["node__key"]] = {"active": row["active"], "needs_review": row["needs_review"]}
    return {"statuses": statuses, "nodes": nodes}
