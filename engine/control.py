"""Control actions on a workflow (SPEC 4): the one place they are allowed or refused.

The API, the admin and the pages call `perform`; each action locks the workflow row so two
clicks, or a click and the engine, serialise; every change writes a WorkflowEvent.
"""

from django.db import transaction
from django.utils import timezone

from engine.starting import start_pending_leads_task
from engine.ticks import ensure_tick
from workflows.graph import GraphReport
from workflows.graph_store import check_graph
from workflows.models import Edge, Node, Workflow, WorkflowEvent
from workflows.statuses import TRANSITIONS, WorkflowAction, WorkflowStatus, allowed_actions


class ActionRefused(Exception):
    """The action is not allowed from the workflow's current status; nothing changed."""

    def __init__(self, workflow: Workflow, action: WorkflowAction):
        # Legacy `running` is reported as `active`, as everywhere else.
        self.status = WorkflowStatus(workflow.status).effective.value
        self.action = WorkflowAction(action)
        self.allowed_actions = [a.value for a in allowed_actions(workflow.status)]
        current = WorkflowStatus(workflow.status)
        if self.action is WorkflowAction.CANCEL and current.is_final:
            detail = f"This workflow is {current.value} and cannot be cancelled again."
        else:
            shown = (
                current.value
                if current is current.effective
                else (f"{current.value} (legacy, read as {current.effective.value})")
            )
            detail = (
                f"Cannot {self.action.label.lower()} a workflow that is {shown}. "
                f"Allowed: {', '.join(self.allowed_actions)}."
            )
        self.detail = detail
        super().__init__(detail)


class GraphInvalid(Exception):
    """Activation refused: the graph has errors (each names its node)."""

    def __init__(self, report: GraphReport):
        self.report = report
        count = len(report.errors)
        self.detail = f"The graph has {count} problem{'s' if count != 1 else ''}; fix them first."
        super().__init__(self.detail)


_STAMP = {
    WorkflowStatus.ACTIVE: "activated_at",
    WorkflowStatus.PAUSED: "paused_at",
    WorkflowStatus.CANCELLED: "cancelled_at",
    WorkflowStatus.COMPLETED: "completed_at",
}


def _user_or_none(actor):
    return actor if actor is not None and actor.is_authenticated else None


def perform(workflow_id: int, action: str, actor=None) -> Workflow:
    """Run one control action. Returns the changed workflow (for duplicate: the new draft)."""
    action = WorkflowAction(action)
    if action is WorkflowAction.DUPLICATE:
        return duplicate(workflow_id, actor)
    return _transition(workflow_id, action, actor)


def _transition(workflow_id: int, action: WorkflowAction, actor) -> Workflow:
    sources, target = TRANSITIONS[action]
    with transaction.atomic():
        # The row lock serialises actions on one workflow and the engine's moves (which lock
        # the same row), so a pause and a move never both win.
        workflow = Workflow.objects.select_for_update().get(pk=workflow_id)
        if workflow.status not in sources:
            raise ActionRefused(workflow, action)
        warnings = []
        if action is WorkflowAction.ACTIVATE:
            report = check_graph(workflow)
            if not report.is_valid:
                raise GraphInvalid(report)
            warnings = [w.as_dict() for w in report.warnings]
        from_status = workflow.status
        now = timezone.now()
        workflow.status = target
        setattr(workflow, _STAMP[target], now)
        workflow.save(update_fields=["status", _STAMP[target], "updated_at"])
        WorkflowEvent.objects.create(
            workflow=workflow,
            action=action,
            from_status=from_status,
            to_status=target,
            actor=_user_or_none(actor),
            detail={"warnings": warnings} if warnings else {},
        )
        if target is WorkflowStatus.ACTIVE:
            # Enqueued in this transaction (the task queue is a table in this database), so
            # the task exists exactly when the activation does.
            start_pending_leads_task.enqueue(workflow.pk)
            # Resume: due releases and finished calls move on at once.
            ensure_tick()
    return workflow


def duplicate(workflow_id: int, actor=None) -> Workflow:
    """A new draft with the same settings and graph (same keys and configs), and no leads."""
    with transaction.atomic():
        source = Workflow.objects.get(pk=workflow_id)
        copy = Workflow.objects.create(
            workspace=source.workspace,
            name=f"{source.name} (copy)",
            status=WorkflowStatus.DRAFT,
            timezone=source.timezone,
            max_concurrent_calls=source.max_concurrent_calls,
            window_start=source.window_start,
            window_end=source.window_end,
            window_days=source.window_days,
            duplicated_from=source,
            created_by=_user_or_none(actor),
        )
        old_nodes = list(Node.objects.filter(workflow=source).order_by("id"))
        new_nodes = Node.objects.bulk_create(
            Node(workflow=copy, key=n.key, type=n.type, name=n.name, config=n.config)
            for n in old_nodes
        )
        new_by_old_id = {old.pk: new for old, new in zip(old_nodes, new_nodes, strict=True)}
        Edge.objects.bulk_create(
            Edge(
                workflow=copy,
                source=new_by_old_id[e.source_id],
                target=new_by_old_id[e.target_id],
                branch=e.branch,
            )
            for e in Edge.objects.filter(workflow=source)
        )
        WorkflowEvent.objects.create(
            workflow=source,
            action=WorkflowAction.DUPLICATE,
            from_status=source.status,
            to_status=source.status,
            actor=_user_or_none(actor),
            detail={"copy_id": copy.pk},
        )
    return copy
