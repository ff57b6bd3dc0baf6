"""The engine's heartbeat on Django's tasks framework.

A tick task claims due executions in batches and moves them (engine/sweep.py). Ticks are
queued when something becomes due (activation, a call's final status, new leads), by a tick
for the next known due time, and by every long-running worker's heartbeat — so a tick lost
with a killed worker (django-tasks-db leaves its task RUNNING for ever) costs a few seconds,
not the workflow.
"""

from datetime import datetime

from django.db.models import Q
from django.utils import timezone
from django_tasks import task
from django_tasks_db.models import DBTaskResult, get_date_max

TICK_PATH = "engine.ticks.engine_tick"


@task()
def engine_tick() -> dict:
    # Imported here: the sweep reaches the providers, which report call statuses, which
    # queue ticks through this module.
    from engine.sweep import run_tick

    return run_tick()


def ensure_tick(run_after: datetime | None = None) -> None:
    """Queue a tick unless one is already queued to run by `run_after` (default: now)."""
    when = run_after or timezone.now()
    # django-tasks-db stores "run as soon as possible" as the maximum date.
    already = DBTaskResult.objects.filter(task_path=TICK_PATH, status="READY").filter(
        Q(run_after=get_date_max()) | Q(run_after__lte=when)
    )
    if already.exists():
        return
    if run_after is None:
        engine_tick.enqueue()
    else:
        engine_tick.using(run_after=run_after).enqueue()
