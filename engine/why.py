"""'Why is this lead here?': one sentence for any lead (SPEC 5).

The rules are the seed's Troubleshooting section.
"""

from datetime import datetime
from zoneinfo import ZoneInfo

from calls.models import CallStatus
from leads.models import ExecutionStatus, Lead, LeadFileStatus
from workflows.statuses import NodeType, WorkflowStatus

_FILE_IN_PROGRESS = (LeadFileStatus.UPLOADED, LeadFileStatus.PROCESSING)


def _local(when: datetime, tz: ZoneInfo) -> str:
    return when.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")


def explain(lead: Lead, *, has_entry: bool | None = None) -> str:
    """The sentence a support agent reads first on the lead page.

    Expects `lead.workflow`, `lead.lead_file` and `lead.execution` (with node and call) to be
    loaded or loadable. `has_entry` lets a list page check the workflow's entry node once.
    """
    workflow = lead.workflow
    status = WorkflowStatus(workflow.status)
    execution = getattr(lead, "execution", None)

    if execution is None:
        if lead.lead_file_id and lead.lead_file.status in _FILE_IN_PROGRESS:
            return (
                f"Pending: its lead file '{lead.lead_file.original_name}' is still processing; "
                "the lead starts once the import finishes."
            )
        if has_entry is None:
            has_entry = workflow.has_entry_node()
        if status is WorkflowStatus.DRAFT:
            if not has_entry:
                return (
                    "Pending: the workflow is a draft without a valid entry node; add one, "
                    "then activate the workflow."
                )
            return "Pending: the workflow is a draft and has not been activated yet."
        if status is WorkflowStatus.PAUSED:
            return "Pending: the workflow is paused; the lead starts when it is resumed."
        if status.is_final:
            return f"Pending: the workflow is {status.value}, so this lead will not start."
        if not has_entry:
            return "Pending: the workflow has no valid entry node."
        return "Pending: the workflow is active; the lead is queued to start at the entry node."

    node = execution.node
    tz = workflow.tz
    if execution.status == ExecutionStatus.COMPLETED:
        return f"Completed: reached the converted node '{node.name}'."
    if execution.status == ExecutionStatus.DROPPED:
        if node.type != NodeType.DROPPED:
            return f"Dropped by a manager at '{node.name}'."
        return f"Dropped: reached the dropped node '{node.name}'."

    if execution.needs_review:
        return f"Needs review at '{node.name}': {execution.review_reason}"
    if status.is_final:
        return f"Stopped at '{node.name}': the workflow was {status.value}; nothing moves any more."

    call = execution.call
    if node.type == NodeType.VOICE_CALL and call is not None:
        call_status = CallStatus(call.status)
        if call_status.is_final and call.routed_at is None:
            if status is WorkflowStatus.PAUSED:
                return (
                    f"Waiting at '{node.name}': call {call.pk} ended {call_status.value}; the "
                    "workflow is paused, so the lead moves on when it is resumed."
                )
            return f"At '{node.name}': call {call.pk} ended {call_status.value}; routing the lead."
        if not call_status.is_final:
            waiting = (
                f"Waiting at '{node.name}' for a final status of call {call.pk} "
                f"(now {call_status.value})"
            )
            if status is WorkflowStatus.PAUSED:
                return waiting + "; the workflow is paused, so the lead waits after the call ends."
            return waiting + "."
    if status is WorkflowStatus.PAUSED:
        return (
            f"Waiting at '{node.name}': the workflow is paused; "
            "the lead moves on when it is resumed."
        )

    if execution.release_at is not None:
        release = _local(execution.release_at, tz)
        if node.type == NodeType.VOICE_CALL:
            return f"Waiting at '{node.name}' for the calling window to open at {release}."
        return f"Waiting at '{node.name}' for release at {release}."
    if node.type == NodeType.ENTRY:
        return f"At the entry node '{node.name}'; it moves on at once."
    if node.type == NodeType.VOICE_CALL:
        return f"At '{node.name}': the call is queued to be placed."
    if node.type == NodeType.APPLICATION:
        return f"At '{node.name}': the lead is being sent to the integration."
    return f"At '{node.name}'."
