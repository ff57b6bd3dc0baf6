"""Recording a call's status: the one function behind the webhook and the simulator (SPEC 6).

At-least-once and unordered delivery: a repeated event_id is a no-op; a final status is never
replaced, neither by a late in-progress one nor by a second, different final one (that event
is kept and flagged); every event is kept. The lead is routed once, by the engine, on the
first final status (engine/sweep.py), so here a final status only makes the execution due.
"""

from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from calls.models import CallEvent, CallLog, CallStatus
from engine.ticks import ensure_tick
from leads.models import ExecutionStatus, LeadExecution

# In-progress statuses only move forward along this order; an older one arriving late is kept
# as an event and ignored.
_PROGRESS_ORDER = [
    CallStatus.CREATED,
    CallStatus.INITIATED,
    CallStatus.RECEIVED,
    CallStatus.CONNECTED,
    CallStatus.WAITING,
]


@dataclass(frozen=True)
class StatusReport:
    event_id: str
    status: CallStatus
    occurred_at: datetime
    end_reason: str | None = None
    duration_s: int | None = None
    transcript: list | None = None
    recording_url: str | None = None
    post_call: dict | None = None
    provider_call_id: str | None = None
    payload: dict | None = None


@dataclass(frozen=True)
class Recorded:
    outcome: str  # "applied", "duplicate" or "ignored"
    call: CallLog
    note: str = ""


def _ignored_reason(current: CallStatus, new: CallStatus) -> str:
    if current.is_final and new.is_final:
        if new is current:
            return f"repeated final status, new event id: the call already ended {current.value}"
        return f"conflicting final status: the call already ended {current.value}"
    if current.is_final:
        return f"in-progress status after the final status {current.value}"
    if not new.is_final and _PROGRESS_ORDER.index(new) < _PROGRESS_ORDER.index(current):
        return f"older than the current status {current.value}"
    return ""


def record_call_status(call_id: int, report: StatusReport) -> Recorded:
    with transaction.atomic():
        # Every report for one call serialises on the call's row: duplicates and races between
        # two deliveries of different events are decided one at a time.
        call = CallLog.objects.select_for_update().get(pk=call_id)
        if CallEvent.objects.filter(call=call, event_id=report.event_id).update(
            deliveries=F("deliveries") + 1
        ):
            return Recorded("duplicate", call)
        current = CallStatus(call.status)
        new = CallStatus(report.status)
        ignored = _ignored_reason(current, new)
        CallEvent.objects.create(
            call=call,
            event_id=report.event_id,
            status=new,
            occurred_at=report.occurred_at,
            payload=report.payload or {},
            ignored_reason=ignored,
        )
        if ignored:
            return Recorded("ignored", call, ignored)

        call.status = new
        changed = ["status", "updated_at"]
        if new is CallStatus.INITIATED and call.started_at is None:
            call.started_at = report.occurred_at
            changed.append("started_at")
        if new is CallStatus.CONNECTED and call.answered_at is None:
            call.answered_at = report.occurred_at
            changed.append("answered_at")
        for name in (
            "end_reason",
            "duration_s",
            "transcript",
            "recording_url",
            "post_call",
            "provider_call_id",
        ):
            value = getattr(report, name)
            if value is not None:
                setattr(call, name, value)
                changed.append(name)
        if new.is_final:
            call.ended_at = report.occurred_at
            changed.append("ended_at")
            if call.duration_s is None and call.answered_at is not None:
                call.duration_s = max(int((call.ended_at - call.answered_at).total_seconds()), 0)
                changed.append("duration_s")
        call.save(update_fields=changed)

        if new.is_final:
            # The lead waiting on this call is due now; the engine routes it (exactly once,
            # and only while the workflow is active: a paused workflow's lead waits).
            due = LeadExecution.objects.filter(call=call, status=ExecutionStatus.ACTIVE).update(
                due_at=timezone.now()
            )
            if due:
                ensure_tick()
        return Recorded("applied", call)
