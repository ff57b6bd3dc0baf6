"""Call providers (SPEC 6): `simulator` (default) and `http`.

Placing a call creates its CallLog and queues the provider's task in the same transaction, so
a call exists exactly when its dialling is queued. Both report statuses through
engine.call_status.record_call_status, the function behind the webhook.
"""

import random
import time
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError
from django.utils import timezone
from django_tasks import task

from calls.models import CallLog, CallStatus
from engine.call_status import StatusReport, record_call_status
from engine.integrations import post_json
from leads.models import Lead, LeadExecution
from workflows.models import Node, Workflow


def place_calls(
    workflow: Workflow, node: Node, pairs: list[tuple[LeadExecution, Lead]], owner: str
) -> list[CallLog]:
    """Create one call per (execution, lead) for this visit and start dialling.

    The unique (lead, node, visit) constraint makes a second call for the same visit
    impossible, whatever the workers do.
    """
    provider = settings.DIALNEXA_CALL_PROVIDER
    try:
        calls = CallLog.objects.bulk_create(
            CallLog(
                lead=lead,
                workflow=workflow,
                node=node,
                visit=execution.visit,
                provider=provider,
                to_number=lead.phone,
                from_number=settings.DIALNEXA_FROM_NUMBER,
                status=CallStatus.CREATED,
            )
            for execution, lead in pairs
        )
    except IntegrityError:
        raise RuntimeError(
            f"a call for this visit already exists at '{node.key}': refusing to call twice"
        ) from None
    for (execution, _lead), call in zip(pairs, calls, strict=True):
        execution.call = call
        execution.due_at = None
        execution.release_at = None
        execution.lease_owner = ""
        execution.lease_expires_at = None
    LeadExecution.objects.bulk_update(
        [e for e, _ in pairs], ["call", "due_at", "release_at", "lease_owner", "lease_expires_at"]
    )
    for call in calls:
        if provider == "http":
            dial_call.enqueue(call.pk)
        else:
            _queue_simulator_step(call.pk, 0)
    return calls


# --- simulator -----------------------------------------------------------------------------

_SIM_STEPS = [CallStatus.INITIATED, CallStatus.CONNECTED]
_END_REASONS = {
    CallStatus.COMPLETED: "conversation_completed",
    CallStatus.DID_NOT_PICK: "no_pickup",
    CallStatus.BUSY: "line_busy",
    CallStatus.FAILED: "carrier_error",
    CallStatus.NO_ANSWER: "no_answer_from_provider",
    CallStatus.CANCELLED: "cancelled_by_provider",
    CallStatus.RETRY_EXPIRED: "retry_window_expired",
}


def simulated_final_status(call: CallLog) -> CallStatus:
    """The lead's `sim_status` field when it names a final status, else drawn by weight."""
    wanted = (call.lead.fields or {}).get("sim_status")
    if wanted in CallStatus.values and CallStatus(wanted).is_final:
        return CallStatus(wanted)
    weights = settings.DIALNEXA_SIMULATOR_WEIGHTS
    statuses = [s for s in weights if weights[s] > 0]
    # Seeded by the call id: the same call always gets the same outcome.
    drawn = random.Random(call.pk).choices(statuses, weights=[weights[s] for s in statuses])
    return CallStatus(drawn[0])


def _final_report(call: CallLog, status: CallStatus) -> StatusReport:
    now = timezone.now()
    name = call.lead.name or "there"
    talked = status is CallStatus.COMPLETED
    transcript = (
        [
            {
                "speaker": "agent",
                "text": f"Hi {name}, this is Ava from DialNexa. Is now a good time?",
            },
            {"speaker": "lead", "text": "Sure, go ahead."},
            {"speaker": "agent", "text": "We help teams follow up with every lead. Interested?"},
            {"speaker": "lead", "text": "Yes, send me the details."},
        ]
        if talked
        else []
    )
    return StatusReport(
        event_id=f"sim-{call.pk}-final",
        status=status,
        occurred_at=now,
        end_reason=_END_REASONS[status],
        duration_s=42 if talked else 0,
        transcript=transcript,
        recording_url=(
            f"{settings.DIALNEXA_PUBLIC_URL.rstrip('/')}/static/sim/recording.wav" if talked else ""
        ),
        post_call={
            "summary": "Interested; asked for details by email." if talked else "",
            "sentiment": "positive" if talked else "neutral",
            "extracted": {"interested": True} if talked else {},
        },
        payload={"simulated": True},
    )


def _queue_simulator_step(call_id: int, step: int) -> None:
    delay = settings.DIALNEXA_SIMULATOR_DELAY
    if delay > 0:
        run_after = timezone.now() + timedelta(seconds=delay)
        simulate_call_step.using(run_after=run_after).enqueue(call_id, step)
    else:
        simulate_call_step.enqueue(call_id, step)


@task()
def simulate_call_step(call_id: int, step: int) -> str:
    """Walk a simulated call: initiated -> connected -> its final status."""
    call = CallLog.objects.select_related("lead").get(pk=call_id)
    if CallStatus(call.status).is_final:
        return "already final"
    delay = settings.DIALNEXA_SIMULATOR_DELAY
    while True:
        if step < len(_SIM_STEPS):
            report = StatusReport(
                event_id=f"sim-{call.pk}-{_SIM_STEPS[step].value}",
                status=_SIM_STEPS[step],
                occurred_at=timezone.now(),
                provider_call_id=f"sim-{call.pk}",
            )
        else:
            report = _final_report(call, simulated_final_status(call))
        record_call_status(call.pk, report)
        if step >= len(_SIM_STEPS):
            return report.status.value
        step += 1
        if delay > 0:
            _queue_simulator_step(call.pk, step)
            return f"step {step} queued"


_NEXT_SIM_STEP = {
    CallStatus.CREATED: 0,
    CallStatus.INITIATED: 1,
    CallStatus.RECEIVED: 1,
    CallStatus.CONNECTED: 2,
    CallStatus.WAITING: 2,
}
# An http call still `created` this long after placing: its dial task was lost.
_DIAL_STALLED_AFTER = timedelta(minutes=5)


def redrive_stalled_calls(limit: int = 500) -> int:
    """Queue again the provider step of calls whose task died with a killed worker.

    Otherwise such a call would stay in progress for ever, holding its lead and a slot of the
    workflow's max_concurrent_calls. Repeating a step is harmless: the simulator's event ids
    are fixed per step (a duplicate is a no-op), and the dialer receives the same call_id.
    """
    now = timezone.now()
    sim_cutoff = now - timedelta(seconds=max(60.0, settings.DIALNEXA_SIMULATOR_DELAY * 10))
    stalled_sim = list(
        CallLog.objects.filter(
            provider="simulator", status__in=list(_NEXT_SIM_STEP), updated_at__lt=sim_cutoff
        ).values_list("pk", "status")[:limit]
    )
    stalled_dial = list(
        CallLog.objects.filter(
            provider="http", status=CallStatus.CREATED, updated_at__lt=now - _DIAL_STALLED_AFTER
        ).values_list("pk", flat=True)[:limit]
    )
    for call_id, status in stalled_sim:
        _queue_simulator_step(call_id, _NEXT_SIM_STEP[CallStatus(status)])
    for call_id in stalled_dial:
        dial_call.enqueue(call_id)
    touched = [pk for pk, _ in stalled_sim] + stalled_dial
    # Touch them so the next heartbeat does not queue them again straight away.
    CallLog.objects.filter(pk__in=touched).update(updated_at=now)
    return len(touched)


# --- http dialer ---------------------------------------------------------------------------


@task()
def dial_call(call_id: int) -> str:
    """POST the signed dial request; a dialer that keeps failing ends the call `failed`."""
    call = CallLog.objects.select_related("lead", "node").get(pk=call_id)
    if call.status != CallStatus.CREATED:
        return "already dialled"
    base = settings.DIALNEXA_PUBLIC_URL.rstrip("/")
    payload = {
        "call_id": call.pk,
        "to": call.to_number,
        "from": call.from_number,
        "lead": {"id": call.lead.pk, "name": call.lead.name, "fields": call.lead.fields},
        "node": call.node.key,
        "callback_url": f"{base}/v1/calls/{call.pk}/status",
    }
    attempts = settings.DIALNEXA_HTTP_RETRIES + 1
    last = None
    for attempt in range(attempts):
        last = post_json(
            settings.DIALNEXA_DIALER_URL, payload, settings.DIALNEXA_HTTP_TIMEOUT_SECONDS
        )
        if last.ok:
            # The dialer accepted the call: it is initiated, so it is never dialled again.
            provider_call_id = str((last.answer or {}).get("provider_call_id") or "")[:128]
            record_call_status(
                call.pk,
                StatusReport(
                    event_id=f"dial-accepted-{call.pk}",
                    status=CallStatus.INITIATED,
                    occurred_at=timezone.now(),
                    provider_call_id=provider_call_id or None,
                    payload={"dial_http_status": last.http_status},
                ),
            )
            return f"dialled (HTTP {last.http_status})"
        if attempt + 1 < attempts:
            time.sleep(settings.DIALNEXA_HTTP_BACKOFF_SECONDS * (2**attempt))
    record_call_status(
        call.pk,
        StatusReport(
            event_id=f"dial-error-{call.pk}",
            status=CallStatus.FAILED,
            occurred_at=timezone.now(),
            end_reason="dial_error",
            payload={"dial_error": last.describe() if last else "", "attempts": attempts},
        ),
    )
    return f"dial failed: {last.describe() if last else ''}"
