"""What each worker's heartbeat does (see engine/management/commands/db_worker.py)."""

import time

from engine.lead_files import import_lead_file_task
from engine.providers import redrive_stalled_calls
from engine.starting import start_pending_leads_task
from engine.ticks import ensure_tick
from leads.counts import status_counts
from leads.models import ExecutionStatus, LeadFile, LeadFileStatus
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
    counts = status_counts(active)
    return [wf for wf in active if counts[wf][ExecutionStatus.PENDING] > 0]


# Lead files seen importing: id -> (rows processed, when that count was first seen).
_imports_seen: dict[int, tuple[int, float]] = {}
_IMPORT_STALLED_SECONDS = 300.0


def redrive_stalled_imports(current: float) -> list[int]:
    """Queue again an import whose task died with its worker (no progress for 5 minutes).

    Safe even if the first run was only slow: each batch checks the file's checkpoint under
    its row lock, so one of the two runs stops.
    """
    requeued = []
    in_progress = dict(
        LeadFile.objects.filter(
            status__in=[LeadFileStatus.UPLOADED, LeadFileStatus.PROCESSING]
        ).values_list("id", "rows_processed")
    )
    for file_id in list(_imports_seen):
        if file_id not in in_progress:
            del _imports_seen[file_id]
    for file_id, processed in in_progress.items():
        seen = _imports_seen.get(file_id)
        if seen is None or seen[0] != processed:
            _imports_seen[file_id] = (processed, current)
        elif current - seen[1] >= _IMPORT_STALLED_SECONDS:
            import_lead_file_task.enqueue(file_id)
            _imports_seen[file_id] = (processed, current)
            requeued.append(file_id)
    return requeued


def beat(now: float | None = None) -> None:
    global _last_pending_check
    ensure_tick()
    current = time.monotonic() if now is None else now
    if current - _last_pending_check >= _PENDING_CHECK_SECONDS:
        _last_pending_check = current
        for workflow_id in workflows_with_pending_leads():
            start_pending_leads_task.enqueue(workflow_id)
        redrive_stalled_calls()
        redrive_stalled_imports(current)
