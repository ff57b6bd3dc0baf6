"""Start an execution at the entry node for every lead of a workflow that has none (SPEC 4).

Set-based: each chunk of leads is one INSERT ... SELECT for the executions and one for their
first history rows, so 1M leads are a few dozen statements, not a million round trips.
"""

import logging

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django_tasks import task

from engine.sweep import complete_if_done
from engine.ticks import ensure_tick
from leads.models import ExecutionStatus, Lead, LeadExecution, LeadTransition, TransitionReason
from workflows.models import Node, Workflow
from workflows.statuses import NodeType

log = logging.getLogger(__name__)

_INSERT_EXECUTIONS = """
INSERT INTO {execution} (lead_id, workflow_id, status, node_id, visit, entered_at, due_at,
                         attempts, needs_review, review_reason, lease_owner, updated_at)
SELECT l.id, l.workflow_id, %(status)s, %(entry)s, 1, %(now)s, %(now)s, 0, %(false)s, '', '',
       %(now)s
FROM {lead} l
WHERE l.workflow_id = %(workflow)s AND l.id > %(after)s AND l.id <= %(upto)s
  AND NOT EXISTS (SELECT 1 FROM {execution} e WHERE e.lead_id = l.id)
ON CONFLICT (lead_id) DO NOTHING
"""

# The first history row of every execution started by the statement above: same leads, same
# instant, and no history yet.
_INSERT_HISTORY = """
INSERT INTO {transition} (lead_id, from_node_id, to_node_id, reason, message, metadata,
                          created_at)
SELECT e.lead_id, NULL, e.node_id, %(reason)s, %(message)s, %(metadata)s, %(now)s
FROM {execution} e
WHERE e.workflow_id = %(workflow)s AND e.lead_id > %(after)s AND e.lead_id <= %(upto)s
  AND e.entered_at = %(now)s
  AND NOT EXISTS (SELECT 1 FROM {transition} t WHERE t.lead_id = e.lead_id)
"""


def _sql(template: str) -> str:
    return template.format(
        execution=LeadExecution._meta.db_table,
        lead=Lead._meta.db_table,
        transition=LeadTransition._meta.db_table,
    )


def start_pending_leads(workflow_id: int, chunk: int | None = None) -> int:
    """Start every pending lead of an active workflow. Returns how many were started.

    Safe to run twice or concurrently: a lead already started is skipped, and each chunk
    re-checks, under the workflow's row lock, that the workflow still processes leads, so no
    lead starts after a pause or cancel commits.
    """
    chunk = chunk or settings.DIALNEXA_START_CHUNK
    entry = Node.objects.filter(workflow_id=workflow_id, type=NodeType.ENTRY).first()
    if entry is None:
        return 0
    message = f"Started at the entry node '{entry.name}'."
    started, after = 0, 0
    while True:
        with transaction.atomic():
            workflow = Workflow.objects.select_for_update().filter(pk=workflow_id).first()
            if workflow is None or not workflow.workflow_status.processes_leads:
                return started
            bound = (
                Lead.objects.filter(workflow_id=workflow_id, id__gt=after)
                .order_by("id")
                .values_list("id", flat=True)[chunk - 1 : chunk]
            )
            upto = next(iter(bound), None)
            last_chunk = upto is None
            params = {
                "workflow": workflow_id,
                "after": after,
                # Past the last lead: the final, partial chunk takes everything that is left.
                "upto": upto if not last_chunk else 2**62,
                # Adapted as Django stores it (SQLite keeps datetimes as text without offset).
                "now": connection.ops.adapt_datetimefield_value(timezone.now()),
                "entry": entry.pk,
                "status": ExecutionStatus.ACTIVE.value,
                "false": False,
                "reason": TransitionReason.STARTED.value,
                "message": message,
                "metadata": "{}",
            }
            with connection.cursor() as cursor:
                cursor.execute(_sql(_INSERT_EXECUTIONS), params)
                started += max(cursor.rowcount, 0)
                cursor.execute(_sql(_INSERT_HISTORY), params)
        if last_chunk:
            break
        after = upto
    if started:
        log.info("workflow %s: started %s lead(s) at %s", workflow_id, started, entry.key)
        ensure_tick()
    else:
        # Resumed with nothing left to do (say, the last lead was dropped while paused).
        complete_if_done(workflow_id)
    return started


@task()
def start_pending_leads_task(workflow_id: int) -> int:
    return start_pending_leads(workflow_id)
