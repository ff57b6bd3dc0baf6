"""factory-boy factories and graph builders shared by the tests."""

import factory
from django.contrib.auth import get_user_model
from django.core.management import call_command

from leads.models import Lead
from workflows.graph import EdgeSpec, NodeSpec
from workflows.graph_store import replace_graph
from workflows.models import Membership, Role, Workflow, Workspace
from workflows.statuses import Branch, NodeType


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("pw-for-tests")


class WorkspaceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Workspace

    name = factory.Sequence(lambda n: f"Workspace {n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    workspace = factory.SubFactory(WorkspaceFactory)
    role = Role.MANAGER


class WorkflowFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Workflow

    workspace = factory.SubFactory(WorkspaceFactory)
    name = factory.Sequence(lambda n: f"Workflow {n}")
    timezone = "UTC"


class LeadFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Lead

    workflow = factory.SubFactory(WorkflowFactory)
    phone = factory.Sequence(lambda n: f"+1415555{n % 10000:04d}")
    name = factory.Sequence(lambda n: f"Lead {n}")


SIMPLE_NODES = [
    NodeSpec("start", NodeType.ENTRY, "Start"),
    NodeSpec("call", NodeType.VOICE_CALL, "Call 1"),
    NodeSpec("won", NodeType.CONVERTED, "Won"),
    NodeSpec("lost", NodeType.DROPPED, "Lost"),
]
SIMPLE_EDGES = [
    EdgeSpec("start", "call"),
    EdgeSpec("call", "won", Branch.COMPLETED),
    EdgeSpec("call", "lost", Branch.DNP),
    EdgeSpec("call", "lost", Branch.FAILED),
]


def with_simple_graph(workflow: Workflow) -> Workflow:
    """entry -> Voice Call -> converted / dropped: valid, no warnings."""
    replace_graph(workflow, SIMPLE_NODES, SIMPLE_EDGES)
    return workflow


def add_leads(workflow: Workflow, count: int) -> None:
    Lead.objects.bulk_create(
        Lead(
            workflow=workflow,
            phone=f"+1202555{i:04d}" if i < 10000 else f"+1646{i:07d}",
            name=f"Lead {i}",
        )
        for i in range(count)
    )


def drain_tasks() -> None:
    """Run every queued background task with the real worker, then return.

    The worker closes and reopens connections between tasks, so callers are transactional
    tests (`django_db(transaction=True)`), where nothing is hidden in a test transaction.
    """
    call_command("db_worker", "--batch", "--no-startup-delay", "--no-reload", verbosity=0)
