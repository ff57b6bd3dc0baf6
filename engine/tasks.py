"""Background work on Django's tasks framework (django-tasks, database backend)."""

from django_tasks import task

from engine.starting import start_pending_leads


@task()
def start_pending_leads_task(workflow_id: int) -> int:
    return start_pending_leads(workflow_id)
