"""Uploading a lead file: store it, queue its import, start its leads when it is done."""

from django.conf import settings
from django.db import transaction
from django_tasks import task

from engine.intake import WorkflowClosed
from engine.starting import start_pending_leads
from leads.importing import import_lead_file
from leads.models import LeadFile
from workflows.models import Workflow
from workflows.statuses import WorkflowStatus


class FileTooLarge(Exception):
    def __init__(self, size: int):
        limit = settings.DIALNEXA_MAX_UPLOAD_BYTES
        self.detail = (
            f"The file is {size / 1024 / 1024:.1f} MB; the limit is {limit / 1024 / 1024:.0f} MB."
        )
        super().__init__(self.detail)


def accept_upload(workflow_id: int, upload, user) -> LeadFile:
    """Store the uploaded file as a LeadFile and queue its import (one transaction)."""
    if upload.size > settings.DIALNEXA_MAX_UPLOAD_BYTES:
        raise FileTooLarge(upload.size)
    with transaction.atomic():
        workflow = Workflow.objects.select_for_update().get(pk=workflow_id)
        if WorkflowStatus(workflow.status).is_final:
            raise WorkflowClosed(workflow)
        lead_file = LeadFile(
            workflow=workflow,
            original_name=upload.name[:255],
            uploaded_by=user if user and user.is_authenticated else None,
        )
        lead_file.file.save(upload.name, upload, save=False)
        lead_file.save()
        import_lead_file_task.enqueue(lead_file.pk)
    return lead_file


@task()
def import_lead_file_task(lead_file_id: int) -> dict:
    lead_file = import_lead_file(lead_file_id)
    started = 0
    if lead_file.workflow.workflow_status.processes_leads:
        # Leads imported into an active workflow start promptly (SPEC 4).
        started = start_pending_leads(lead_file.workflow_id)
    return {
        "status": lead_file.status,
        "imported": lead_file.rows_imported,
        "rejected": lead_file.rows_rejected,
        "started": started,
    }
