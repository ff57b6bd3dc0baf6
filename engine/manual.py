"""A manager's actions on one lead (SPEC 5): retry the call, move to a node, drop.

Each is one transaction on the locked execution, audited as a history row with the acting
user. A worker holding a lease on the lead loses it: its later write is refused
(engine.moves.move only writes rows whose lease it still holds).
"""

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from calls.models import CallLog, CallStatus
from engine.moves import arrival_fields, arrival_sentence, lock_workflow_for_moves
from engine.sweep import complete_if_done
from engine.ticks import ensure_tick
from leads.models import ExecutionStatus, Lead, LeadExecution, LeadTransition, TransitionReason
from workflows.models import Node
from workflows.statuses import NodeType


class LeadActionRefused(Exception):
    def __init__(self, detail: str):
        self.detail = detail
        super().__init__(detail)


class UnknownNode(Exception):
    def __init__(self, key: str):
        self.detail = f"'{key}' is not a node of this workflow."
        super().__init__(self.detail)


def _locked_execution(lead: Lead) -> LeadExecution:
    status = lock_workflow_for_moves(lead.workflow_id)
    if status is None or status.is_final:
        raise LeadActionRefused(
            f"The workflow is {status.value if status else 'gone'}: its leads can no longer be "
            "changed."
        )
    execution = (
        LeadExecution.objects.select_for_update(of=("self",))
        .select_related("node", "workflow")
        .filter(lead=lead)
        .first()
    )
    if execution is None:
        raise LeadActionRefused(
            "The lead has not started yet (pending): there is nothing to act on."
        )
    if ExecutionStatus(execution.status).is_final:
        raise LeadActionRefused(f"The lead is already {execution.status}.")
    return execution


def _history(execution, to_node, reason, message, metadata, actor, now) -> None:
    LeadTransition.objects.create(
        lead_id=execution.lead_id,
        from_node=execution.node,
        to_node=to_node,
        reason=reason,
        message=message,
        metadata=metadata,
        actor=actor,
        created_at=now,
    )


def retry_call(lead: Lead, actor) -> None:
    """Place a new call at the lead's Voice Call node (a new visit: a new call is allowed)."""
    now = timezone.now()
    with transaction.atomic():
        execution = _locked_execution(lead)
        if execution.node.type != NodeType.VOICE_CALL:
            raise LeadActionRefused(
                f"The lead is at '{execution.node.name}', not at a Voice Call node."
            )
        previous = CallLog.objects.filter(pk=execution.call_id).first()
        if previous is not None and not CallStatus(previous.status).is_final:
            raise LeadActionRefused(
                f"Call {previous.pk} is still {previous.status}; wait for its final status."
            )
        LeadExecution.objects.filter(pk=execution.pk).update(
            visit=F("visit") + 1,
            entered_at=now,
            call=None,
            needs_review=False,
            review_reason="",
            attempts=0,
            release_at=None,
            due_at=now,
            lease_owner="",
            lease_expires_at=None,
        )
        _history(
            execution,
            execution.node,
            TransitionReason.MANUAL_RETRY,
            f"{actor.get_username()} retried the call at '{execution.node.name}'.",
            {
                "previous_call_id": previous.pk if previous else None,
                "previous_call_status": previous.status if previous else None,
                "actor": actor.get_username(),
            },
            actor,
            now,
        )
        ensure_tick()


def move_lead(lead: Lead, node_key: str, actor) -> None:
    now = timezone.now()
    with transaction.atomic():
        execution = _locked_execution(lead)
        target = Node.objects.filter(workflow_id=lead.workflow_id, key=node_key).first()
        if target is None:
            raise UnknownNode(node_key)
        if target.type == NodeType.ENTRY:
            raise LeadActionRefused("Leads cannot be moved back to the entry node.")
        fields = arrival_fields(target, execution.workflow, now)
        LeadExecution.objects.filter(pk=execution.pk).update(**fields)
        _history(
            execution,
            target,
            TransitionReason.MANUAL_MOVE,
            f"{actor.get_username()} moved the lead from '{execution.node.name}' to "
            f"'{target.name}'. {arrival_sentence(target, fields, execution.workflow)}",
            {"actor": actor.get_username()},
            actor,
            now,
        )
        ensure_tick()
    if NodeType(target.type).is_terminal:
        complete_if_done(lead.workflow_id)


def drop_lead(lead: Lead, actor) -> None:
    now = timezone.now()
    with transaction.atomic():
        execution = _locked_execution(lead)
        LeadExecution.objects.filter(pk=execution.pk).update(
            status=ExecutionStatus.DROPPED,
            finished_at=now,
            due_at=None,
            release_at=None,
            needs_review=False,
            lease_owner="",
            lease_expires_at=None,
        )
        _history(
            execution,
            execution.node,
            TransitionReason.MANUAL_DROP,
            f"{actor.get_username()} dropped the lead at '{execution.node.name}'.",
            {"actor": actor.get_username()},
            actor,
            now,
        )
    complete_if_done(lead.workflow_id)
