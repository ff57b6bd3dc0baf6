"""The Django admin: every registered model opens, control actions go through the one service
(SPEC 4), a refused action changes nothing and says why, graphs and history are read-only where
they must be."""

import html
import re
from datetime import timedelta

import pytest
from django.contrib import admin, messages
from django.contrib.auth.models import Group
from django.test import Client, RequestFactory
from django.urls import reverse
from django.utils import timezone
from django_tasks import task
from django_tasks_db.models import DBTaskResult
from rest_framework.authtoken.models import Token

from calls.models import CallEvent, CallLog, CallStatus
from leads.models import (
    Lead,
    LeadExecution,
    LeadFile,
    LeadTransition,
    TransitionReason,
)
from tests.factories import (
    LeadFactory,
    MembershipFactory,
    UserFactory,
    WorkflowFactory,
    add_leads,
    with_simple_graph,
)
from workflows.graph import NodeSpec
from workflows.graph_store import replace_graph
from workflows.models import Edge, Membership, Node, Workflow, WorkflowEvent
from workflows.statuses import NodeType, WorkflowAction, WorkflowStatus

S = WorkflowStatus


@task()
def noop_task(value: int) -> int:
    """Queued by the fixture so the task-results admin has a row to show."""
    return value


@pytest.fixture
def superuser(db):
    return UserFactory(username="root", is_staff=True, is_superuser=True)


@pytest.fixture
def admin_client(superuser) -> Client:
    client = Client()
    client.force_login(superuser)
    return client


@pytest.fixture
def one_of_each(workspace, manager, superuser):
    """One object of every model the admin shows, wired together as the engine would."""
    workflow = with_simple_graph(WorkflowFactory(workspace=workspace, name="Spring campaign"))
    nodes = {n.key: n for n in Node.objects.filter(workflow=workflow)}
    event = WorkflowEvent.objects.create(
        workflow=workflow,
        action=WorkflowAction.ACTIVATE,
        from_status=S.DRAFT,
        to_status=S.ACTIVE,
        actor=superuser,
    )
    lead_file = LeadFile.objects.create(
        workflow=workflow, file="lead-files/2025/01/leads.csv", original_name="leads.csv"
    )
    lead = LeadFactory(workflow=workflow, phone="+14155550100", name="Dana", lead_file=lead_file)
    now = timezone.now()
    call = CallLog.objects.create(
        lead=lead,
        workflow=workflow,
        node=nodes["call"],
        visit=1,
        provider="simulator",
        to_number=lead.phone,
        status=CallStatus.CONNECTED,
    )
    execution = LeadExecution.objects.create(
        lead=lead, workflow=workflow, node=nodes["call"], entered_at=now, call=call
    )
    transition = LeadTransition.objects.create(
        lead=lead,
        from_node=nodes["start"],
        to_node=nodes["call"],
        reason=TransitionReason.MOVED,
        message="Moved on to Call 1.",
        actor=None,
        created_at=now,
    )
    call_event = CallEvent.objects.create(
        call=call,
        event_id="evt-1",
        status=CallStatus.CONNECTED,
        occurred_at=now - timedelta(seconds=5),
        payload={"status": "connected"},
    )
    # The third-party models the admin also shows.
    group = Group.objects.create(name="Supervisors")
    token = Token.objects.create(user=superuser)
    task = noop_task.enqueue(workflow.pk)
    return {
        "workspace": workspace,
        "membership": Membership.objects.get(user=manager),
        "workflow": workflow,
        "workflow_event": event,
        "lead_file": lead_file,
        "lead": lead,
        "execution": execution,
        "transition": transition,
        "call": call,
        "call_event": call_event,
        "group": group,
        "token": token,
        "task": task,
    }


def _url(model, name: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{name}", args=args)


def _page(response) -> str:
    return html.unescape(response.content.decode())


def _messages(response) -> list[tuple[int, str]]:
    return [(m.level, m.message) for m in response.context["messages"]]


# --- every page opens -------------------------------------------------------------------------


def test_every_registered_model_has_a_working_changelist_and_change_page(admin_client, one_of_each):
    assert admin.site._registry, "nothing is registered in the admin"
    for model in admin.site._registry:
        label = model._meta.label
        changelist = admin_client.get(_url(model, "changelist"))
        assert changelist.status_code == 200, label

        obj = model._default_manager.order_by("pk").first()
        assert obj is not None, f"add a {label} to the one_of_each fixture"
        change = admin_client.get(_url(model, "change", obj.pk))
        assert change.status_code == 200, label
        assert change.context["original"] == obj, label
        # The row is listed on its changelist.
        assert obj in list(changelist.context["cl"].result_list), label


def test_changelist_search_and_filters_work(admin_client, one_of_each):
    """search_fields and list_filter name real lookups: a typo there is a 500 or a 400."""
    lead = one_of_each["lead"]
    for model, params, expected in [
        (Lead, {"q": lead.phone}, lead),
        (Lead, {"execution__status__exact": "active"}, lead),
        (Lead, {"execution__needs_review__exact": "0"}, lead),
        (LeadExecution, {"q": lead.phone, "status__exact": "active"}, one_of_each["execution"]),
        (LeadTransition, {"q": lead.phone, "reason__exact": "moved"}, one_of_each["transition"]),
        (CallLog, {"q": lead.phone, "provider__exact": "simulator"}, one_of_each["call"]),
        (CallEvent, {"q": "evt-1", "status__exact": "connected"}, one_of_each["call_event"]),
        (Workflow, {"q": "Spring", "status__exact": "draft"}, one_of_each["workflow"]),
        (Membership, {"q": "alice", "role__exact": "manager"}, one_of_each["membership"]),
        (LeadFile, {"q": "leads.csv", "status__exact": "uploaded"}, one_of_each["lead_file"]),
    ]:
        response = admin_client.get(_url(model, "changelist"), params)
        assert response.status_code == 200, (model, params)
        assert list(response.context["cl"].result_list) == [expected], (model, params)


def test_lead_changelist_shows_execution_status_and_node(admin_client, one_of_each):
    pending = LeadFactory(workflow=one_of_each["workflow"], phone="+14155550101")

    response = admin_client.get(_url(Lead, "changelist"))

    page = response.content.decode()
    assert response.status_code == 200
    assert 'class="badge badge-active"' in page  # Dana is at the call node
    assert 'class="badge badge-pending"' in page  # a lead without an execution is pending
    rows = {lead.pk: lead for lead in response.context["cl"].result_list}
    assert pending.pk in rows and one_of_each["lead"].pk in rows
    assert '<td class="field-current_node">call</td>' in page


# --- status badges --------------------------------------------------------------------------


def test_workflow_changelist_shows_a_status_badge(admin_client, workflow):
    response = admin_client.get(_url(Workflow, "changelist"))

    assert response.status_code == 200
    assert 'class="badge badge-draft"' in response.content.decode()


def test_legacy_running_workflow_reads_as_active_in_the_changelist(admin_client, workflow):
    workflow.status = S.RUNNING
    workflow.save()

    page = admin_client.get(_url(Workflow, "changelist")).content.decode()

    cell = re.search(r'<td class="field-status_badge">(.*?)</td>', page).group(1)
    assert cell.endswith(">Active</span>")


# --- control actions ------------------------------------------------------------------------


def _act(client: Client, action: str, *workflows: Workflow):
    return client.post(
        _url(Workflow, "changelist"),
        {"action": action, "_selected_action": [w.pk for w in workflows], "index": 0},
        follow=True,
    )


def _set_status(workflow: Workflow, status: WorkflowStatus) -> Workflow:
    workflow.status = status
    workflow.save()
    return workflow


def test_admin_offers_every_control_action(admin_client, workflow):
    response = admin_client.get(_url(Workflow, "changelist"))

    choices = dict(response.context["action_form"].fields["action"].choices)
    for name in (
        "activate_selected",
        "pause_selected",
        "resume_selected",
        "cancel_selected",
        "duplicate_selected",
    ):
        assert name in choices
    assert choices["pause_selected"] == "Deactivate selected workflows"


@pytest.mark.parametrize(
    ("action", "source", "target"),
    [
        ("activate_selected", S.DRAFT, S.ACTIVE),
        ("activate_selected", S.PAUSED, S.ACTIVE),
        ("pause_selected", S.ACTIVE, S.PAUSED),
        ("pause_selected", S.RUNNING, S.PAUSED),
        ("resume_selected", S.PAUSED, S.ACTIVE),
        ("cancel_selected", S.DRAFT, S.CANCELLED),
        ("cancel_selected", S.ACTIVE, S.CANCELLED),
        ("cancel_selected", S.PAUSED, S.CANCELLED),
    ],
)
def test_allowed_action_changes_status_through_the_service(
    admin_client, superuser, workflow, action, source, target
):
    _set_status(with_simple_graph(workflow), source)
    add_leads(workflow, 3)

    response = _act(admin_client, action, workflow)

    assert response.status_code == 200
    assert response.redirect_chain == [(_url(Workflow, "changelist"), 302)]
    workflow.refresh_from_db()
    assert workflow.status == target
    event = WorkflowEvent.objects.get(workflow=workflow)
    assert (event.action, event.from_status, event.to_status, event.actor) == (
        action.removesuffix("_selected"),
        source,
        target,
        superuser,
    )
    stamp = {
        S.ACTIVE: "activated_at",
        S.PAUSED: "paused_at",
        S.CANCELLED: "cancelled_at",
    }[target]
    assert getattr(workflow, stamp) is not None
    assert _messages(response) == [(messages.SUCCESS, f"Spring campaign: now {target}.")]
    assert f"Spring campaign: now {target}." in _page(response)


def test_activate_from_admin_queues_the_lead_start(admin_client, workflow):
    with_simple_graph(workflow)
    add_leads(workflow, 3)

    _act(admin_client, "activate_selected", workflow)

    # The activation's own background start, whatever else the engine queues alongside it.
    [queued] = DBTaskResult.objects.filter(task_path__endswith=".start_pending_leads_task")
    assert queued.args_kwargs["args"] == [workflow.pk]


def test_duplicate_from_admin_makes_a_draft_copy(admin_client, superuser, workflow):
    _set_status(with_simple_graph(workflow), S.ACTIVE)
    add_leads(workflow, 2)

    response = _act(admin_client, "duplicate_selected", workflow)

    copy = Workflow.objects.get(duplicated_from=workflow)
    assert (copy.name, copy.status, copy.created_by) == (
        "Spring campaign (copy)",
        S.DRAFT,
        superuser,
    )
    assert sorted(Node.objects.filter(workflow=copy).values_list("key", flat=True)) == sorted(
        Node.objects.filter(workflow=workflow).values_list("key", flat=True)
    )
    assert (
        Edge.objects.filter(workflow=copy).count() == Edge.objects.filter(workflow=workflow).count()
    )
    assert not copy.leads.exists()
    workflow.refresh_from_db()
    assert workflow.status == S.ACTIVE
    event = WorkflowEvent.objects.get(workflow=workflow)
    assert (event.action, event.actor, event.detail) == (
        WorkflowAction.DUPLICATE,
        superuser,
        {"copy_id": copy.pk},
    )
    expected = f"Spring campaign: duplicated as draft 'Spring campaign (copy)' (id {copy.pk})."
    assert _messages(response) == [(messages.SUCCESS, expected)]
    assert expected in _page(response)


@pytest.mark.parametrize(
    ("action", "source", "reason"),
    [
        (
            "pause_selected",
            S.DRAFT,
            "Cannot deactivate a workflow that is draft. Allowed: activate, cancel, duplicate.",
        ),
        (
            "resume_selected",
            S.ACTIVE,
            "Cannot resume a workflow that is active. Allowed: pause, cancel, duplicate.",
        ),
        (
            "activate_selected",
            S.RUNNING,
            "Cannot activate a workflow that is running (legacy, read as active). "
            "Allowed: pause, cancel, duplicate.",
        ),
        (
            "cancel_selected",
            S.CANCELLED,
            "This workflow is cancelled and cannot be cancelled again.",
        ),
        (
            "cancel_selected",
            S.COMPLETED,
            "This workflow is completed and cannot be cancelled again.",
        ),
    ],
)
def test_refused_action_changes_nothing_and_says_why(
    admin_client, workflow, action, source, reason
):
    _set_status(with_simple_graph(workflow), source)

    response = _act(admin_client, action, workflow)

    assert response.status_code == 200
    workflow.refresh_from_db()
    assert workflow.status == source
    assert not WorkflowEvent.objects.filter(workflow=workflow).exists()
    assert _messages(response) == [(messages.ERROR, f"Spring campaign: {reason}")]
    page = _page(response)
    assert f"Spring campaign: {reason}" in page
    assert 'class="error"' in page


def test_activate_refused_on_an_invalid_graph_names_each_problem(admin_client, workflow):
    replace_graph(workflow, [NodeSpec("start", NodeType.ENTRY, "Start")], [])

    response = _act(admin_client, "activate_selected", workflow)

    workflow.refresh_from_db()
    assert workflow.status == S.DRAFT
    assert workflow.activated_at is None
    assert not WorkflowEvent.objects.filter(workflow=workflow).exists()
    assert not DBTaskResult.objects.exists()
    [(level, text)] = _messages(response)
    assert level == messages.ERROR
    assert text.startswith("Spring campaign: The graph has 2 problems; fix them first.")
    assert "start: The entry node 'Start' needs exactly one output (it has 0)." in text
    assert "start: No terminal node can be reached from 'Start'" in text
    assert text in _page(response)


def test_activate_refused_without_any_graph_names_the_workflow(admin_client, workflow):
    response = _act(admin_client, "activate_selected", workflow)

    workflow.refresh_from_db()
    assert workflow.status == S.DRAFT
    [(level, text)] = _messages(response)
    assert level == messages.ERROR
    assert "workflow: The workflow has no entry node" in text


def test_action_on_several_workflows_reports_each_one(admin_client, workspace, superuser):
    draft = with_simple_graph(WorkflowFactory(workspace=workspace, name="Draft one"))
    active = _set_status(
        with_simple_graph(WorkflowFactory(workspace=workspace, name="Live one")), S.ACTIVE
    )

    response = _act(admin_client, "pause_selected", draft, active)

    draft.refresh_from_db()
    active.refresh_from_db()
    assert (draft.status, active.status) == (S.DRAFT, S.PAUSED)
    assert WorkflowEvent.objects.get().workflow == active
    assert sorted(_messages(response)) == sorted(
        [
            (messages.SUCCESS, "Live one: now paused."),
            (
                messages.ERROR,
                "Draft one: Cannot deactivate a workflow that is draft. "
                "Allowed: activate, cancel, duplicate.",
            ),
        ]
    )


# --- read-only graph on a non-draft workflow ------------------------------------------------


def _inlines(workflow: Workflow, user) -> tuple[dict, object]:
    request = RequestFactory().get("/")
    request.user = user
    model_admin = admin.site._registry[Workflow]
    return {
        type(inline).__name__: inline
        for inline in model_admin.get_inline_instances(request, workflow)
    }, request


@pytest.mark.parametrize("status", [S.ACTIVE, S.PAUSED, S.COMPLETED, S.CANCELLED, S.RUNNING])
def test_graph_inlines_are_read_only_unless_draft(admin_client, superuser, workflow, status):
    _set_status(with_simple_graph(workflow), status)

    inlines, request = _inlines(workflow, superuser)
    for name in ("NodeInline", "EdgeInline"):
        inline = inlines[name]
        assert not inline.has_add_permission(request, workflow), name
        assert not inline.has_change_permission(request, workflow), name
        assert not inline.has_delete_permission(request, workflow), name
        assert inline.has_view_permission(request, workflow), name

    page = admin_client.get(_url(Workflow, "change", workflow.pk)).content.decode()
    assert 'name="nodes-0-key"' not in page
    assert 'name="edges-0-source"' not in page
    assert "nodes-0-DELETE" not in page and "edges-0-DELETE" not in page
    for prefix in ("nodes", "edges"):
        # No blank row to add from, and the formset accepts no new forms.
        assert f'id="{prefix}-empty"' not in page
        assert f'name="{prefix}-MAX_NUM_FORMS" value="0"' in page
    # Shown, just not editable.
    assert "Call 1" in page


def test_graph_inlines_are_editable_on_a_draft(admin_client, superuser, workflow):
    with_simple_graph(workflow)

    inlines, request = _inlines(workflow, superuser)
    for name in ("NodeInline", "EdgeInline"):
        inline = inlines[name]
        assert inline.has_add_permission(request, workflow), name
        assert inline.has_change_permission(request, workflow), name
        assert inline.has_delete_permission(request, workflow), name

    page = admin_client.get(_url(Workflow, "change", workflow.pk)).content.decode()
    assert 'name="nodes-0-key"' in page
    assert "nodes-0-DELETE" in page and "edges-0-DELETE" in page
    assert 'id="nodes-empty"' in page and 'id="edges-empty"' in page


def test_edge_inline_offers_only_this_workflows_nodes(admin_client, workspace, workflow):
    with_simple_graph(workflow)
    other = with_simple_graph(WorkflowFactory(workspace=workspace, name="Other"))

    response = admin_client.get(_url(Workflow, "change", workflow.pk))

    edge_formset = next(
        f for f in response.context["inline_admin_formsets"] if f.formset.prefix == "edges"
    )
    offered = set(edge_formset.formset.forms[0].fields["source"].queryset)
    assert offered == set(Node.objects.filter(workflow=workflow))
    assert not offered & set(Node.objects.filter(workflow=other))


# --- read-only history ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parent", "inline_name", "prefix"),
    [
        ("workflow", "WorkflowEventInline", "events"),
        ("lead", "TransitionInline", "transitions"),
        ("call", "CallEventInline", "events"),
    ],
)
def test_history_inlines_are_read_only(
    admin_client, superuser, one_of_each, parent, inline_name, prefix
):
    obj = one_of_each[parent]
    # Even on a draft workflow, whose graph is editable.
    assert one_of_each["workflow"].status == S.DRAFT
    model_admin = admin.site._registry[type(obj)]
    request = RequestFactory().get("/")
    request.user = superuser
    [inline] = [
        i for i in model_admin.get_inline_instances(request, obj) if type(i).__name__ == inline_name
    ]
    assert not inline.has_add_permission(request, obj)
    assert not inline.has_change_permission(request, obj)
    assert inline.can_delete is False
    assert set(inline.get_readonly_fields(request, obj)) >= set(inline.fields)

    response = admin_client.get(_url(type(obj), "change", obj.pk))

    page = response.content.decode()
    assert response.status_code == 200
    formset = next(
        f for f in response.context["inline_admin_formsets"] if f.formset.prefix == prefix
    )
    assert len(formset.formset.forms) == 1  # the one history row is shown
    assert f"{prefix}-0-DELETE" not in page
    for field in inline.fields:
        assert f'name="{prefix}-0-{field}"' not in page, field
    assert f'id="{prefix}-empty"' not in page


def test_lead_execution_inline_is_read_only(admin_client, superuser, one_of_each):
    lead = one_of_each["lead"]
    request = RequestFactory().get("/")
    request.user = superuser
    [inline] = [
        i
        for i in admin.site._registry[Lead].get_inline_instances(request, lead)
        if type(i).__name__ == "ExecutionInline"
    ]
    assert not inline.has_add_permission(request, lead)
    assert inline.can_delete is False
    assert set(inline.get_readonly_fields(request, lead)) >= set(inline.fields)

    page = admin_client.get(_url(Lead, "change", lead.pk)).content.decode()
    assert 'name="execution-0-node"' not in page
    assert 'name="execution-0-status"' not in page


@pytest.mark.parametrize("model", [WorkflowEvent, LeadTransition, CallEvent])
def test_history_admins_cannot_add_or_change(admin_client, superuser, one_of_each, model):
    obj = model._default_manager.get()
    model_admin = admin.site._registry[model]
    request = RequestFactory().get("/")
    request.user = superuser
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request, obj)

    assert admin_client.get(_url(model, "add")).status_code == 403
    page = admin_client.get(_url(model, "change", obj.pk)).content.decode()
    assert 'name="_save"' not in page


def test_a_change_posted_to_a_history_row_is_refused(admin_client, one_of_each):
    event = one_of_each["workflow_event"]

    response = admin_client.post(
        _url(WorkflowEvent, "change", event.pk),
        {
            "workflow": event.workflow_id,
            "action": "cancel",
            "from_status": "draft",
            "to_status": "cancelled",
        },
    )

    assert response.status_code == 403
    event.refresh_from_db()
    assert (event.action, event.to_status) == ("activate", "active")


def test_staff_without_permissions_cannot_use_the_admin_actions(workspace, workflow):
    """Non-superuser staff get no rights by default: the actions are not theirs to run."""
    staff = UserFactory(username="staffer", is_staff=True)
    MembershipFactory(user=staff, workspace=workspace)
    client = Client()
    client.force_login(staff)
    with_simple_graph(workflow)

    response = client.post(
        _url(Workflow, "changelist"),
        {"action": "activate_selected", "_selected_action": [workflow.pk], "index": 0},
    )

    assert response.status_code == 403
    workflow.refresh_from_db()
    assert workflow.status == S.DRAFT
