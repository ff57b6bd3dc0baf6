"""Workflow statuses, node types, branches and the control-action table (SPEC 2, 3, 4).

Each enum is the one definition used by models, API, admin, pages and the statuses
reference page.
"""

from django.db import models


class WorkflowStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    ACTIVE = "active", "Active"
    PAUSED = "paused", "Paused"
    COMPLETED = "completed", "Completed"
    CANCELLED = "cancelled", "Cancelled"
    # Legacy: older records say running; it is read as active everywhere and never written.
    RUNNING = "running", "Running (legacy)"

    @property
    def is_final(self) -> bool:
        return self in FINAL_WORKFLOW_STATUSES

    @property
    def effective(self) -> "WorkflowStatus":
        """The status to show and to decide by: legacy running reads as active."""
        return WorkflowStatus.ACTIVE if self is WorkflowStatus.RUNNING else self

    @property
    def processes_leads(self) -> bool:
        return self.effective is WorkflowStatus.ACTIVE


FINAL_WORKFLOW_STATUSES = frozenset({WorkflowStatus.COMPLETED, WorkflowStatus.CANCELLED})

WORKFLOW_STATUS_MEANING = {
    WorkflowStatus.DRAFT: "The workflow is still being built. It should not process leads yet.",
    WorkflowStatus.ACTIVE: "The workflow can process leads.",
    WorkflowStatus.PAUSED: "Temporarily stopped: calls already placed finish, new movement waits.",
    WorkflowStatus.COMPLETED: "Finished: every lead reached a terminal node.",
    WorkflowStatus.CANCELLED: "Permanently stopped.",
    WorkflowStatus.RUNNING: "Legacy equivalent of active; treated as active everywhere.",
}


class WorkflowAction(models.TextChoices):
    ACTIVATE = "activate", "Activate"
    PAUSE = "pause", "Deactivate"
    RESUME = "resume", "Resume"
    CANCEL = "cancel", "Cancel"
    DUPLICATE = "duplicate", "Duplicate"


_NON_FINAL = frozenset(s for s in WorkflowStatus if s not in FINAL_WORKFLOW_STATUSES)

# The one table of control actions: action -> (statuses it is allowed from, status it leads to).
# Duplicate is allowed from every status and creates a new draft instead of changing this one.
TRANSITIONS: dict[WorkflowAction, tuple[frozenset[WorkflowStatus], WorkflowStatus | None]] = {
    WorkflowAction.ACTIVATE: (
        frozenset({WorkflowStatus.DRAFT, WorkflowStatus.PAUSED}),
        WorkflowStatus.ACTIVE,
    ),
    WorkflowAction.PAUSE: (
        frozenset({WorkflowStatus.ACTIVE, WorkflowStatus.RUNNING}),
        WorkflowStatus.PAUSED,
    ),
    WorkflowAction.RESUME: (frozenset({WorkflowStatus.PAUSED}), WorkflowStatus.ACTIVE),
    WorkflowAction.CANCEL: (_NON_FINAL, WorkflowStatus.CANCELLED),
    WorkflowAction.DUPLICATE: (frozenset(WorkflowStatus), None),
}


def allowed_actions(status: str) -> list[WorkflowAction]:
    """The control actions a workflow in `status` accepts, in the table's order."""
    current = WorkflowStatus(status)
    return [action for action, (sources, _) in TRANSITIONS.items() if current in sources]


class NodeType(models.TextChoices):
    ENTRY = "entry", "Entry"
    VOICE_CALL = "voice_call", "Voice Call"
    TIME = "time", "Time"
    APPLICATION = "application", "Application"
    CONVERTED = "converted", "Converted (terminal)"
    DROPPED = "dropped", "Dropped (terminal)"

    @property
    def is_terminal(self) -> bool:
        return self in (NodeType.CONVERTED, NodeType.DROPPED)


class Branch(models.TextChoices):
    """Labels of a Voice Call node's outputs."""

    COMPLETED = "COMPLETED", "COMPLETED"
    DNP = "DNP", "DNP"
    FAILED = "FAILED", "FAILED"
