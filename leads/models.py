from django.conf import settings
from django.db import models
from django.db.models import Q

from workflows.models import Node, Workflow


class ExecutionStatus(models.TextChoices):
    """A lead's status inside its workflow (SPEC 2).

    `pending` is never stored: it is what a lead without an execution record is.
    """

    PENDING = "pending", "Pending"
    ACTIVE = "active", "Active"
    COMPLETED = "completed", "Completed"
    DROPPED = "dropped", "Dropped"

    @property
    def is_final(self) -> bool:
        return self in (ExecutionStatus.COMPLETED, ExecutionStatus.DROPPED)


EXECUTION_STATUS_MEANING = {
    ExecutionStatus.PENDING: "The lead exists, but no execution record has started yet.",
    ExecutionStatus.ACTIVE: "The lead is currently at a workflow node.",
    ExecutionStatus.COMPLETED: "The lead reached a converted terminal node.",
    ExecutionStatus.DROPPED: "The lead reached a dropped terminal node.",
}


class LeadFileStatus(models.TextChoices):
    UPLOADED = "uploaded", "Uploaded"
    PROCESSING = "processing", "Processing"
    COMPLETED = "completed", "Completed"
    COMPLETED_WITH_ERRORS = "completed_with_errors", "Completed with errors"
    FAILED = "failed", "Failed"


class LeadFile(models.Model):
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="lead_files")
    file = models.FileField(upload_to="lead-files/%Y/%m/")
    original_name = models.CharField(max_length=255)
    status = models.CharField(
        max_length=24, choices=LeadFileStatus.choices, default=LeadFileStatus.UPLOADED
    )
    rows_total = models.PositiveIntegerField(default=0)
    rows_processed = models.PositiveIntegerField(default=0)
    rows_imported = models.PositiveIntegerField(default=0)
    rows_rejected = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    encoding = models.CharField(max_length=16, blank=True)
    columns = models.JSONField(default=list, blank=True)  # the file's header row
    delimiter = models.CharField(max_length=4, blank=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.original_name


class LeadFileRejection(models.Model):
    """One rejected row of a lead file: its row number (the header is row 1), values, reason."""

    lead_file = models.ForeignKey(LeadFile, on_delete=models.CASCADE, related_name="rejections")
    row_number = models.PositiveIntegerField()
    values = models.JSONField(default=list)
    reason = models.TextField()

    class Meta:
        ordering = ["row_number"]
        constraints = [
            # A re-run after a crash cannot report a row twice.
            models.UniqueConstraint(
                fields=["lead_file", "row_number"], name="one_rejection_per_row"
            )
        ]

    def __str__(self) -> str:
        return f"row {self.row_number}: {self.reason}"


class Lead(models.Model):
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="leads")
    phone = models.CharField(max_length=16, help_text="E.164, e.g. +14155550123")
    name = models.CharField(max_length=200, blank=True)
    fields = models.JSONField(default=dict, blank=True)
    lead_file = models.ForeignKey(
        LeadFile, null=True, blank=True, on_delete=models.SET_NULL, related_name="leads"
    )
    # The row of the lead file it came from (the header is row 1), so a later duplicate can
    # name it.
    lead_file_row = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["workflow", "phone"], name="one_lead_per_phone")
        ]
        indexes = [
            # Keyset pages and chunked activation walk a workflow's leads in id order.
            models.Index(fields=["workflow", "id"], name="lead_workflow_id"),
        ]

    def __str__(self) -> str:
        return f"{self.name or 'Lead'} {self.phone}"


class LeadExecution(models.Model):
    """Where one lead is in its workflow. Exactly one per lead, created when it starts."""

    lead = models.OneToOneField(Lead, on_delete=models.CASCADE, related_name="execution")
    # Copied from the lead so per-workflow counts and claims need no join at 1M leads.
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="executions")
    status = models.CharField(
        max_length=16, choices=ExecutionStatus.choices, default=ExecutionStatus.ACTIVE
    )
    node = models.ForeignKey(Node, on_delete=models.PROTECT, related_name="executions")
    # Increments on every move: a call is unique per (lead, node, visit).
    visit = models.PositiveIntegerField(default=1)
    entered_at = models.DateTimeField()
    release_at = models.DateTimeField(null=True, blank=True)
    call = models.ForeignKey(
        "calls.CallLog", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Failed integration attempts at the current node (application nodes retry with backoff).
    attempts = models.PositiveSmallIntegerField(default=0)
    needs_review = models.BooleanField(default=False)
    review_reason = models.TextField(blank=True)
    # When the engine may next look at this execution, and who holds it until when.
    due_at = models.DateTimeField(null=True, blank=True)
    lease_owner = models.CharField(max_length=64, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            # Counts by status x node, the Leads tab's status/node filters.
            models.Index(fields=["workflow", "status", "node"], name="exec_wf_status_node"),
            models.Index(
                fields=["workflow", "node"],
                condition=Q(needs_review=True),
                name="exec_wf_review",
            ),
            # The engine's claim: active executions that are due.
            models.Index(
                fields=["due_at", "id"],
                condition=Q(status="active"),
                name="exec_due",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.lead} at {self.node.key} ({self.status})"


class TransitionReason(models.TextChoices):
    STARTED = "started", "Started at the entry node"
    MOVED = "moved", "Moved on"
    RELEASED = "released", "Released by a time node"
    CALL_ROUTED = "call_routed", "Routed by call status"
    CALL_REVIEW = "call_review", "Call needs review"
    INTEGRATION_OK = "integration_ok", "Integration accepted"
    INTEGRATION_FAILED = "integration_failed", "Integration needs review"
    COMPLETED = "completed", "Reached a converted terminal"
    DROPPED = "dropped", "Reached a dropped terminal"
    MANUAL_RETRY = "manual_retry", "Call retried by a manager"
    MANUAL_MOVE = "manual_move", "Moved by a manager"
    MANUAL_DROP = "manual_drop", "Dropped by a manager"


class LeadTransition(models.Model):
    """Append-only lead history. Per lead, each row's from_node is the previous row's to_node."""

    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="transitions")
    from_node = models.ForeignKey(
        Node, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    to_node = models.ForeignKey(
        Node, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reason = models.CharField(max_length=32, choices=TransitionReason.choices)
    message = models.TextField()
    metadata = models.JSONField(default=dict, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["lead", "id"], name="transition_lead_id")]

    def __str__(self) -> str:
        return f"{self.lead_id}: {self.reason}"
