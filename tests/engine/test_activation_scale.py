"""Activation is set-based: its query count does not grow with the number of leads."""

import math
import threading
import time

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from django_tasks_db.models import DBTaskResult

from engine import control
from engine.starting import start_pending_leads
from leads.models import LeadExecution, LeadTransition
from tests.factories import add_leads, with_simple_graph
from workflows.models import Workflow, WorkflowEvent
from workflows.statuses import WorkflowAction, WorkflowStatus


def _queries(func) -> int:
    with CaptureQueriesContext(connection) as ctx:
        func()
    return len(ctx.captured_queries)


def test_activating_10000_leads_issues_a_bounded_number_of_queries(workflow, manager):
    with_simple_graph(workflow)
    add_leads(workflow, 10_000)

    activate_queries = _queries(lambda: control.perform(workflow.pk, WorkflowAction.ACTIVATE))
    chunk = 2_500
    start_queries = _queries(lambda: start_pending_leads(workflow.pk, chunk=chunk))

    assert LeadExecution.objects.filter(workflow=workflow).count() == 10_000
    assert LeadTransition.objects.filter(lead__workflow=workflow).count() == 10_000
    # The status change: lock, graph check, update, audit, enqueue — no per-lead work.
    assert activate_queries <= 12
    # Per chunk: the workflow lock, the chunk's bound, two INSERT ... SELECT, and (inside the
    # test's transaction) a SAVEPOINT and its RELEASE; plus one for the entry node and two to
    # queue the engine's tick.
    chunks = math.ceil(10_000 / chunk) + 1
    assert start_queries <= 3 + 6 * chunks, start_queries


def test_start_query_count_is_the_same_for_ten_leads_and_ten_thousand(workspace):
    small = with_simple_graph(
        Workflow.objects.create(workspace=workspace, name="small", status=WorkflowStatus.ACTIVE)
    )
    large = with_simple_graph(
        Workflow.objects.create(workspace=workspace, name="large", status=WorkflowStatus.ACTIVE)
    )
    add_leads(small, 10)
    add_leads(large, 10_000)

    def measure(workflow) -> int:
        DBTaskResult.objects.all().delete()  # each run queues its own tick
        return _queries(lambda: start_pending_leads(workflow.pk))

    assert measure(small) == measure(large)
    assert LeadExecution.objects.filter(workflow=large).count() == 10_000


def test_starting_twice_starts_each_lead_once(workflow):
    with_simple_graph(workflow)
    workflow.status = WorkflowStatus.ACTIVE
    workflow.save()
    add_leads(workflow, 30)

    assert start_pending_leads(workflow.pk, chunk=7) == 30
    assert start_pending_leads(workflow.pk, chunk=7) == 0
    assert LeadTransition.objects.filter(lead__workflow=workflow).count() == 30


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_activations_change_the_state_once(workflow, manager, monkeypatch):
    """Two threads, two database connections, both pressing Activate at the same moment."""
    with_simple_graph(workflow)
    real_check = control.check_graph

    def slow_check(wf):
        # Widen the window between reading the status and writing it: without the row lock
        # both activations would read `draft` here and both would win.
        time.sleep(0.3)
        return real_check(wf)

    monkeypatch.setattr(control, "check_graph", slow_check)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def press_activate():
        try:
            barrier.wait()
            control.perform(workflow.pk, WorkflowAction.ACTIVATE, manager)
            outcomes.append("activated")
        except control.ActionRefused:
            outcomes.append("refused")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=press_activate) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(outcomes) == ["activated", "refused"]
    assert WorkflowEvent.objects.filter(workflow=workflow, action="activate").count() == 1
    workflow.refresh_from_db()
    assert workflow.status == WorkflowStatus.ACTIVE


@pytest.mark.django_db(transaction=True)
def test_pause_and_activate_racing_never_both_win(workflow, manager, monkeypatch):
    with_simple_graph(workflow)
    workflow.status = WorkflowStatus.PAUSED
    workflow.save()
    real_check = control.check_graph
    monkeypatch.setattr(control, "check_graph", lambda wf: (time.sleep(0.3), real_check(wf))[1])
    barrier = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def press(action):
        try:
            barrier.wait()
            control.perform(workflow.pk, action, manager)
            outcomes[action] = "done"
        except control.ActionRefused:
            outcomes[action] = "refused"
        finally:
            connections.close_all()

    threads = [
        threading.Thread(target=press, args=(action,))
        for action in (WorkflowAction.ACTIVATE, WorkflowAction.RESUME)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(outcomes.values()) == ["done", "refused"]
    assert WorkflowEvent.objects.filter(workflow=workflow).count() == 1
