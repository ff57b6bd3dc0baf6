from datetime import time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q

from workflows.statuses import (
    Branch,
    NodeType,
    WorkflowAction,
    WorkflowStatus,
    allowed_actions,
)

ALL_DAYS = [0, 1, 2, 3, 4, 5, 6]  # Monday is 0, as in Python's date.weekday()


def validate_timezone(value: str) -> None:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(
            f"{value!r} is not a known time zone (e.g. 'America/New_York')"
        ) from None


class Workspace(models.Model):
    name = models.CharField(max_length=120, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    MANAGER = "manager", "Campaign manager"
    AGENT = "agent", "Support agent"


class Membership(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.AGENT)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "workspace"], name="one_membership_per_user")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.workspace} ({self.role})"


class Workflow(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.PROTECT, related_name="workflows")
    name = models.CharField(max_length=200)
    status = models.CharField(
        max_length=16, choices=WorkflowStatus.choices, default=WorkflowStatus.DRAFT
    )
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    max_concurrent_calls = models.PositiveIntegerField(
        default=10, validators=[MinValueValidator(1)]
    )
    # A null window start means calls may be placed at any hour.
    window_start = models.TimeField(null=True, blank=True, default=time(9, 0))
    window_end = models.TimeField(null=True, blank=True, default=time(20, 0))
    window_days = models.JSONField(default=list, blank=True)
    duplicated_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="duplicates"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    activated_at = models.DateTimeField(null=True, blank=True)
    paused_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["workspace", "status"], name="workflow_ws_status")]

    def __str__(self) -> str:
        return self.name

    @property
    def workflow_status(self) -> WorkflowStatus:
        return WorkflowStatus(self.status)

    @property
    def display_status(self) -> WorkflowStatus:
        return self.workflow_status.effective

    @property
    def allowed_actions(self) -> list[WorkflowAction]:
        return allowed_actions(self.status)

    def has_entry_node(self) -> bool:
        return self.nodes.filter(type=NodeType.ENTRY).exists()

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def calling_window(self) -> dict | None:
        if self.window_start is None or self.window_end is None:
            return None
        return {
            "start": self.window_start.strftime("%H:%M"),
            "end": self.window_end.strftime("%H:%M"),
            "days": list(self.window_days if self.window_days else ALL_DAYS),
        }


class Node(models.Model):
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="nodes")
    key = models.CharField(
        max_length=64,
        validators=[
            RegexValidator(
                r"^[a-z0-9][a-z0-9_-]*$",
                "Use lowercase letters, digits, '-' and '_', starting with a letter or digit.",
            )
        ],
    )
    type = models.CharField(max_length=16, choices=NodeType.choices)
    name = models.CharField(max_length=200)
    config = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["workflow", "key"], name="one_node_key_per_workflow")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.key})"


class Edge(models.Model):
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="edges")
    source = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="outputs")
    target = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="inputs")
    # NULL, not "": the API contract says a non-Voice-Call edge has branch null.
    branch = models.CharField(  # noqa: DJ001
        max_length=16, choices=Branch.choices, null=True, blank=True
    )

    class Meta:
        ordering = ["id"]
        constraints = [
            # A Voice Call node has each labelled output at most once.
            models.UniqueConstraint(
                fields=["source", "branch"],
                condition=Q(branch__isnull=False),
                name="one_output_per_branch",
            )
        ]

    def __str__(self) -> str:
        label = f" [{self.branch}]" if self.branch else ""
        return f"{self.source.key} -> {self.target.key}{label}"


# Control actions, plus the one change the engine makes by itself.
AUDIT_ACTIONS = [*WorkflowAction.choices, ("complete", "Completed (every lead final)")]


class WorkflowEvent(models.Model):
    """Append-only audit of control actions: who did what, when, from which status to which."""

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="events")
    action = models.CharField(max_length=16, choices=AUDIT_ACTIONS)
    from_status = models.CharField(max_length=16, choices=WorkflowStatus.choices)
    to_status = models.CharField(max_length=16, choices=WorkflowStatus.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.action}: {self.from_status} -> {self.to_status}"
