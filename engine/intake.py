"""Adding leads to a workflow (SPEC 4): refused once the workflow is final; started promptly
when it is active."""

from django.db import transaction

from engine.starting import start_pending_leads_task
from leads.models import Lead
from workflows.models import Workflow
from workflows.statuses import WorkflowStatus


class WorkflowClosed(Exception):
    def __init__(self, workflow: Workflow):
        self.status = workflow.status
        self.detail = (
            f"This workflow is {workflow.status}: it accepts no new leads. "
            "Duplicate it to run these leads."
        )
        super().__init__(self.detail)


def add_leads(workflow_id: int, leads: list[dict]) -> list[Lead]:
    """Store already-validated leads `{phone, name, fields}` in one transaction."""
    with transaction.atomic():
        # Locked so a cancel cannot commit between the check and the insert.
        workflow = Workflow.objects.select_for_update().get(pk=workflow_id)
        status = WorkflowStatus(workflow.status)
        if status.is_final:
            raise WorkflowClosed(workflow)
        created = Lead.objects.bulk_create(
            Lead(
                workflow=workflow,
                phone=lead["phone"],
                name=lead.get("name", ""),
                fields=lead.get("fields") or {},
            )
            for lead in leads
        )
        if status.processes_leads:
            start_pending_leads_task.enqueue(workflow.pk)
    return created
