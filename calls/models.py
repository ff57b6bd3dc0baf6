from django.db import models

from leads.models import Lead
from workflows.models import Node, Workflow
from workflows.statuses import Branch


class CallStatus(models.TextChoices):
    # In progress
    CREATED = "created", "Created"
    INITIATED = "initiated", "Initiated"
    RECEIVED = "received", "Received"
    CONNECTED = "connected", "Connected"
    WAITING = "waiting", "Waiting"
    # Final
    COMPLETED = "completed", "Completed"
    DID_NOT_PICK = "did_not_pick", "Did not pick"
    BUSY = "busy", "Busy"
    FAILED = "failed", "Failed"
    NO_ANSWER = "no_answer", "No answer"
    CANCELLED = "cancelled", "Cancelled"
    RETRY_EXPIRED = "retry_expired", "Retry expired"

    @property
    def is_final(self) -> bool:
        return self not in IN_PROGRESS_CALL_STATUSES

    @property
    def branch(self) -> Branch | None:
        """The Voice Call output this final status routes to; None: no branch (yet)."""
        return CALL_ROUTING.get(self)


IN_PROGRESS_CALL_STATUSES = frozenset(
    {
        CallStatus.CREATED,
        CallStatus.INITIATED,
        CallStatus.RECEIVED,
        CallStatus.CONNECTED,
        CallStatus.WAITING,
    }
)

# The seed's Voice Call Node Status Routing table. Final statuses missing here (cancelled,
# retry_expired) have no default output: the lead stays at the node with needs_review.
CALL_ROUTING: dict[CallStatus, Branch] = {
    CallStatus.COMPLETED: Branch.COMPLETED,
    CallStatus.DID_NOT_PICK: Branch.DNP,
    CallStatus.BUSY: Branch.DNP,
    CallStatus.FAILED: Branch.FAILED,
    CallStatus.NO_ANSWER: Branch.FAILED,
}

CALL_STATUS_MEANING = {
    CallStatus.COMPLETED: "The call connected and ended.",
    CallStatus.DID_NOT_PICK: "The recipient did not complete a live conversation.",
    CallStatus.BUSY: "The recipient did not complete a live conversation.",
    CallStatus.FAILED: "The call failed or the provider returned no answer.",
    CallStatus.NO_ANSWER: "The call failed or the provider returned no answer.",
    CallStatus.CANCELLED: "Final, but not a default Voice Call output: review required.",
    CallStatus.RETRY_EXPIRED: "Final, but not a default Voice Call output: review required.",
}


class CallLog(models.Model):
    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="calls")
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="calls")
    node = models.ForeignKey(Node, on_delete=models.PROTECT, related_name="calls")
    # The execution's visit number when the call was placed: one call per node visit.
    visit = models.PositiveIntegerField()
    provider = models.CharField(max_length=32)
    provider_call_id = models.CharField(max_length=128, blank=True)
    to_number = models.CharField(max_length=16)
    from_number = models.CharField(max_length=16, blank=True)
    status = models.CharField(max_length=16, choices=CallStatus.choices, default=CallStatus.CREATED)
    end_reason = models.CharField(max_length=200, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    duration_s = models.PositiveIntegerField(null=True, blank=True)
    transcript = models.JSONField(default=list, blank=True)
    recording_url = models.URLField(max_length=500, blank=True)
    post_call = models.JSONField(default=dict, blank=True)
    # The lead was routed on this call's first final status; set once, never unset.
    routed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["lead", "node", "visit"], name="one_call_per_visit")
        ]
        indexes = [
            models.Index(fields=["workflow", "status"], name="call_wf_status"),
            models.Index(fields=["lead", "id"], name="call_lead_id"),
        ]

    def __str__(self) -> str:
        return f"Call {self.pk} to {self.to_number} ({self.status})"

    @property
    def call_status(self) -> CallStatus:
        return CallStatus(self.status)


class CallEvent(models.Model):
    """Every status report received for a call, duplicates and late ones included."""

    call = models.ForeignKey(CallLog, on_delete=models.CASCADE, related_name="events")
    event_id = models.CharField(max_length=128)
    status = models.CharField(max_length=16, choices=CallStatus.choices)
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField(auto_now_add=True)
    payload = models.JSONField(default=dict, blank=True)
    # Set when this event did not change the call (late in-progress, or a conflicting final).
    ignored_reason = models.CharField(max_length=200, blank=True)
    # How many times the provider delivered this event_id (at-least-once delivery).
    deliveries = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["occurred_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["call", "event_id"], name="one_event_id_per_call")
        ]

    def __str__(self) -> str:
        return f"{self.event_id}: {self.status}"
