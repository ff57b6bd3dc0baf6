"""django-tasks-db's `db_worker`, plus the engine's heartbeat.

Every long-running worker checks every DIALNEXA_HEARTBEAT_SECONDS that a sweep tick is
queued (and that no lead of an active workflow was left pending), so the engine keeps going
even after a worker died mid-task: django-tasks-db never recovers that task (it stays
RUNNING, upstream issue django-tasks#46), and a tick lost with it must not stall the leads.
"""

import logging
import threading

from django.conf import settings
from django.db import close_old_connections, connection
from django_tasks_db.management.commands.db_worker import Command as DbWorkerCommand

from engine.heartbeat import beat

log = logging.getLogger(__name__)


def _heartbeat_loop(stop: threading.Event) -> None:
    while not stop.wait(settings.DIALNEXA_HEARTBEAT_SECONDS):
        try:
            close_old_connections()
            beat()
        except Exception:  # the heartbeat must outlive a database hiccup
            log.exception("engine heartbeat failed; trying again")
        finally:
            connection.close()


class Command(DbWorkerCommand):
    help = DbWorkerCommand.help + " Also keeps the DialNexa engine's sweep ticking."

    def handle(self, *args, **options):
        stop = threading.Event()
        if not options.get("batch"):
            threading.Thread(
                target=_heartbeat_loop, args=(stop,), name="engine-heartbeat", daemon=True
            ).start()
        try:
            return super().handle(*args, **options)
        finally:
            stop.set()
