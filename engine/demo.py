"""Demo data (SPEC 8): workspaces, users per role, a sample workflow and 50 leads.

Idempotent: what already exists is left exactly as it is.
"""

from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.db import transaction
from rest_framework.authtoken.models import Token

from calls.models import CallStatus
from leads.models import Lead
from workflows.graph import EdgeSpec, NodeSpec
from workflows.graph_store import replace_graph
from workflows.models import Membership, Role, Workflow, Workspace
from workflows.statuses import Branch, NodeType

DEMO_WORKFLOW = "Demo outreach"

DEMO_NODES = [
    NodeSpec("start", NodeType.ENTRY, "Start"),
    NodeSpec("call-1", NodeType.VOICE_CALL, "Call 1", {"agent": "Ava", "script": "intro"}),
    NodeSpec("wait-retry", NodeType.TIME, "Wait before retry", {"delay_seconds": 30}),
    NodeSpec("call-2", NodeType.VOICE_CALL, "Call 2", {"agent": "Ava", "script": "follow-up"}),
    NodeSpec("won", NodeType.CONVERTED, "Converted"),
    NodeSpec("lost", NodeType.DROPPED, "Dropped"),
]
DEMO_EDGES = [
    EdgeSpec("start", "call-1"),
    EdgeSpec("call-1", "won", Branch.COMPLETED),
    EdgeSpec("call-1", "wait-retry", Branch.DNP),
    EdgeSpec("call-1", "lost", Branch.FAILED),
    EdgeSpec("wait-retry", "call-2"),
    EdgeSpec("call-2", "won", Branch.COMPLETED),
    EdgeSpec("call-2", "lost", Branch.DNP),
    EdgeSpec("call-2", "lost", Branch.FAILED),
]
# Every final call status appears, so the demo shows each route (and the review cases).
DEMO_SIM_STATUSES = [s.value for s in CallStatus if s.is_final]


@dataclass
class DemoResult:
    created: list[str] = field(default_factory=list)
    tokens: dict[str, str] = field(default_factory=dict)


def _user(username: str, password: str, result: DemoResult, **flags):
    User = get_user_model()
    user = User.objects.filter(username=username).first()
    if user is None:
        user = User.objects.create_user(username=username, password=password, **flags)
        result.created.append(f"user {username}")
    result.tokens[username] = Token.objects.get_or_create(user=user)[0].key
    return user


def _member(user, workspace: Workspace, role: Role) -> None:
    Membership.objects.get_or_create(user=user, workspace=workspace, defaults={"role": role})


@transaction.atomic
def create_demo(password: str) -> DemoResult:
    result = DemoResult()
    demo, made = Workspace.objects.get_or_create(name="Demo")
    if made:
        result.created.append("workspace Demo")
    other, made = Workspace.objects.get_or_create(name="Other team")
    if made:
        result.created.append("workspace Other team")

    _member(_user("manager", password, result), demo, Role.MANAGER)
    _member(_user("agent", password, result), demo, Role.AGENT)
    admin = _user("admin", password, result, is_staff=True, is_superuser=True)
    _member(admin, demo, Role.MANAGER)
    _member(_user("outsider", password, result), other, Role.MANAGER)

    if not Workflow.objects.filter(workspace=demo, name=DEMO_WORKFLOW).exists():
        workflow = Workflow.objects.create(
            workspace=demo,
            name=DEMO_WORKFLOW,
            timezone="America/New_York",
            max_concurrent_calls=5,
            # No calling window, so the demo drains at any hour of the day.
            window_start=None,
            window_end=None,
        )
        replace_graph(workflow, DEMO_NODES, DEMO_EDGES)
        Lead.objects.bulk_create(
            Lead(
                workflow=workflow,
                phone=f"+1415555{i:04d}",
                name=f"Demo lead {i:02d}",
                fields={"sim_status": DEMO_SIM_STATUSES[i % len(DEMO_SIM_STATUSES)]},
            )
            for i in range(1, 51)
        )
        result.created.append(f"workflow '{DEMO_WORKFLOW}' (draft) with 50 leads")
    return result
