"""The seed's Workflow Control Actions table, row by row, allowed and refused."""

import pytest

from engine import control
from leads.models import LeadExecution, LeadTransition
from tests.factories import add_leads, drain_tasks, with_simple_graph
from workflows.models import WorkflowEvent
from workflows.statuses import WorkflowAction, WorkflowStatus

S = WorkflowStatus
A = WorkflowAction

ALLOWED = [
    (A.ACTIVATE, S.DRAFT, S.ACTIVE),
    (A.ACTIVATE, S.PAUSED, S.ACTIVE),
    (A.PAUSE, S.ACTIVE, S.PAUSED),
    (A.PAUSE, S.RUNNING, S.PAUSED),
    (A.RESUME, S.PAUSED, S.ACTIVE),
    (A.CANCEL, S.DRAFT, S.CANCELLED),
    (A.CANCEL, S.ACTIVE, S.CANCELLED),
    (A.CANCEL, S.PAUSED, S.CANCELLED),
    (A.CANCEL, S.RUNNING, S.CANCELLED),
]
REFUSED = [
    (A.ACTIVATE, S.ACTIVE),
    (A.ACTIVATE, S.RUNNING),
    (A.ACTIVATE, S.COMPLETED),
    (A.ACTIVATE, S.CANCELLED),
    (A.PAUSE, S.DRAFT),
    (A.PAUSE, S.PAUSED),
    (A.PAUSE, S.COMPLETED),
    (A.PAUSE, S.CANCELLED),
    (A.RESUME, S.DRAFT),
    (A.RESUME, S.ACTIVE),
    (A.RESUME, S.RUNNING),
    (A.RESUME, S.COMPLETED),
    (A.RESUME, S.CANCELLED),
    (A.CANCEL, S.COMPLETED),
    (A.CANCEL, S.CANCELLED),
]


@pytest.mark.parametrize(("action", "source", "target"), ALLOWED)
def test_allowed_action_changes_status_and_is_audited(workflow, manager, action, source, target):
    with_simple_graph(workflow)
    workflow.status = source
    workflow.save()

    result = control.perform(workflow.pk, action, manager)

    workflow.refresh_from_db()
    assert result.status == target == workflow.status
    event = WorkflowEvent.objects.get(workflow=workflow)
    assert (event.action, event.from_status, event.to_status, event.actor) == (
        action,
        source,
        target,
        manager,
    )


@pytest.mark.parametrize(("action", "source"), REFUSED)
def test_refused_action_changes_nothing(workflow, manager, action, source):
    with_simple_graph(workflow)
    workflow.status = source
    workflow.save()

    with pytest.raises(control.ActionRefused) as refused:
        control.perform(workflow.pk, action, manager)

    workflow.refresh_from_db()
    assert workflow.status == source
    assert not WorkflowEvent.objects.filter(workflow=workflow).exists()
    assert refused.value.status == S(source).effective  # legacy running reads as active
    assert action.value not in refused.value.allowed_actions
    assert "duplicate" in refused.value.allowed_actions


@pytest.mark.parametrize("final", [S.COMPLETED, S.CANCELLED])
def test_final_workflow_cannot_be_cancelled_again(workflow, manager, final):
    workflow.status = final
    workflow.save()
    with pytest.raises(control.ActionRefused, match="cannot be cancelled again"):
        control.perform(workflow.pk, A.CANCEL, manager)


@pytest.mark.parametrize("source", list(S))
def test_duplicate_makes_an_editable_draft_copy_from_any_status(workflow, manager, source):
    with_simple_graph(workflow)
    add_leads(workflow, 3)
    workflow.status = source
    workflow.max_concurrent_calls = 7
    workflow.timezone = "Europe/Paris"
    workflow.save()

    copy = control.perform(workflow.pk, A.DUPLICATE, manager)

    assert copy.pk != workflow.pk
    assert copy.status == S.DRAFT
    assert copy.duplicated_from == workflow
    assert (copy.max_concurrent_calls, copy.timezone) == (7, "Europe/Paris")
    assert copy.leads.count() == 0
    original_graph = sorted(workflow.nodes.values_list("key", "type", "name", "config"))
    assert sorted(copy.nodes.values_list("key", "type", "name", "config")) == original_graph
    assert sorted(copy.edges.values_list("source__key", "target__key", "branch")) == sorted(
        workflow.edges.values_list("source__key", "target__key", "branch")
    )
    workflow.refresh_from_db()
    assert workflow.status == source
    assert WorkflowEvent.objects.get(workflow=workflow, action=A.DUPLICATE).detail == {
        "copy_id": copy.pk
    }


def test_activate_refuses_an_invalid_graph_and_names_the_nodes(workflow, manager):
    with pytest.raises(control.GraphInvalid) as invalid:
        control.perform(workflow.pk, A.ACTIVATE, manager)
    workflow.refresh_from_db()
    assert workflow.status == S.DRAFT
    assert any("no entry node" in p.message for p in invalid.value.report.errors)


@pytest.mark.django_db(transaction=True)
def test_activation_starts_every_lead_at_the_entry_node_in_the_background(workflow, manager):
    with_simple_graph(workflow)
    add_leads(workflow, 25)

    control.perform(workflow.pk, A.ACTIVATE, manager)
    assert LeadExecution.objects.count() == 0  # the API answered before any lead started

    drain_tasks()

    assert LeadExecution.objects.filter(workflow=workflow).count() == 25
    first_rows = LeadTransition.objects.filter(lead__workflow=workflow, from_node=None)
    assert first_rows.count() == 25
    assert set(first_rows.values_list("to_node__key", "reason")) == {("start", "started")}


@pytest.mark.django_db(transaction=True)
def test_a_paused_workflow_starts_no_leads(workflow, manager):
    with_simple_graph(workflow)
    add_leads(workflow, 5)
    control.perform(workflow.pk, A.ACTIVATE, manager)
    control.perform(workflow.pk, A.PAUSE, manager)

    drain_tasks()

    assert LeadExecution.objects.count() == 0
