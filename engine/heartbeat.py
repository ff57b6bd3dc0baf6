"""What each worker's heartbeat does (see engine/management/commands/db_worker.py)."""

import time

from django.db.models import Count

from engine.providers import redrive_stalled_calls
from engine.starting import start_pending_leads_task
from engine.ticks import ensure_tick
from leads.models import Lead, LeadExecution
from workflows.models import Workflow
from workflows.statuses import WorkflowStatus

# Looking for pending leads (two counts per active workflow) and stalled calls: every 30 s.
_PENDING_CHECK_SECONDS = 30.0
_last_pending_check = 0.0


def workflows_with_pending_leads() -> list[int]:
    active = list(
        Workflow.objects.filter(
            status__in=[WorkflowStatus.ACTIVE, WorkflowStatus.RUNNING]
        ).values_list("id", flat=True)
    )
    if not active:
        return []
    leads = dict(
        Lead.objects.filter(workflow_id__in=active)
        .values_list("workflow_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    started = dict(
        LeadExecution.objects.filter(workflow_id__in=active)
        .values_list("workflow_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    return [wf for wf in active if leads.get(wf, 0) > started.get(wf, 0)]


def beat(now: float | None = None) -> None:
    global _last_pending_check
    ensure_tick()
    current = time.monotonic() if now is None else now
    if current - _last_pending_check >= _PENDING_CHECK_SECONDS:
        _last_pending_check = current
        for workflow_id in workflows_with_pending_leads():
            start_pending_leads_task.enqueue(workflow_id)
        redrive_stalled_calls()
