"""Workflow pages: the list, a new workflow, and the workflow page with its tabs."""

import django_filters
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from calls.models import CallLog
from dashboard.access import current_workspace, workflow_for_manager, workflow_for_reader
from dashboard.forms import WorkflowSettingsForm
from dashboard.graph_view import layout
from engine import control
from leads.counts import node_counts, status_counts, workflow_counts
from leads.models import ExecutionStatus
from workflows.access import can_act, workflows_for
from workflows.graph_store import check_graph, load_graph
from workflows.models import Workflow
from workflows.statuses import WorkflowAction, WorkflowStatus


class WorkflowFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(
        choices=WorkflowStatus.choices,
        method="by_status",
        empty_label="Any status",
    )

    class Meta:
        model = Workflow
        fields = ["status"]

    def by_status(self, queryset, name, value):
        # Legacy running is listed with active.
        if value in (WorkflowStatus.ACTIVE, WorkflowStatus.RUNNING):
            return queryset.filter(status__in=[WorkflowStatus.ACTIVE, WorkflowStatus.RUNNING])
        return queryset.filter(status=value)


@login_required
@require_GET
def workflow_list(request):
    workspace = current_workspace(request)
    queryset = (
        workflows_for(request.user).filter(workspace=workspace).order_by("-created_at", "-id")
    )
    filters = WorkflowFilter(request.GET, queryset=queryset)
    page = Paginator(filters.qs, 25).get_page(request.GET.get("page"))
    counts = status_counts([w.pk for w in page])
    rows = [(w, counts[w.pk]) for w in page]
    return render(
        request,
        "dashboard/workflow_list.html",
        {
            "filters": filters,
            "page": page,
            "rows": rows,
            "can_create": workspace is not None and can_act(request.user, workspace.pk),
            "execution_statuses": ExecutionStatus.values,
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def workflow_new(request):
    workspace = current_workspace(request)
    if workspace is None:
        raise Http404("You belong to no workspace.")
    if not can_act(request.user, workspace.pk):
        raise PermissionDenied("Only campaign managers can create workflows.")
    form = WorkflowSettingsForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        workflow = form.save(commit=False)
        workflow.workspace = workspace
        workflow.created_by = request.user
        workflow.save()
        messages.success(request, f"Created the draft '{workflow.name}'. Now build its graph.")
        return redirect("workflow-detail", pk=workflow.pk)
    return render(request, "dashboard/workflow_new.html", {"form": form})


def _page_context(request, workflow: Workflow, tab: str) -> dict:
    return {
        "workflow": workflow,
        "tab": tab,
        "can_act": can_act(request.user, workflow.workspace_id),
        "actions": workflow.allowed_actions,
    }


def _graph_context(workflow: Workflow) -> dict:
    nodes, edges = load_graph(workflow)
    return {
        "layout": layout(nodes, edges),
        "counts": node_counts(workflow),
        "leads_url": reverse("workflow-leads", args=[workflow.pk]),
    }


@login_required
@require_GET
def workflow_detail(request, pk: int):
    """The Graph tab, with the editor while the workflow is a draft."""
    workflow = workflow_for_reader(request, pk)
    context = _page_context(request, workflow, "graph")
    context.update(_graph_context(workflow))
    report = check_graph(workflow)
    context.update(
        {
            "report": report,
            "nodes": list(workflow.nodes.order_by("id")),
            "edges": list(workflow.edges.select_related("source", "target").order_by("id")),
            "editable": workflow.status == WorkflowStatus.DRAFT and context["can_act"],
            "statuses": workflow_counts(workflow)["statuses"],
        }
    )
    return render(request, "dashboard/workflow_graph.html", context)


@login_required
@require_GET
def workflow_graph_fragment(request, pk: int):
    """The SVG with live counts, polled by htmx while the page is visible."""
    workflow = workflow_for_reader(request, pk)
    return render(request, "dashboard/_graph_svg.html", _graph_context(workflow))


@login_required
@require_GET
def workflow_header(request, pk: int):
    workflow = workflow_for_reader(request, pk)
    return render(
        request,
        "dashboard/_workflow_header.html",
        _page_context(request, workflow, request.GET.get("tab", "graph")),
    )


@login_required
@require_POST
def workflow_action(request, pk: int, action: str):
    try:
        action = WorkflowAction(action)
    except ValueError:
        raise Http404("Unknown action.") from None
    workflow = workflow_for_manager(request, pk)
    tab = request.POST.get("tab", "graph")
    problems, warnings, refused = [], [], ""
    try:
        result = control.perform(workflow.pk, action, request.user)
    except control.ActionRefused as exc:
        refused = exc.detail
    except control.GraphInvalid as exc:
        refused = exc.detail
        problems = exc.report.errors
        warnings = exc.report.warnings
    else:
        if action is WorkflowAction.DUPLICATE:
            messages.success(request, f"Duplicated as the draft '{result.name}'.")
            url = reverse("workflow-detail", args=[result.pk])
            return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
        workflow = result
    if not request.htmx:
        if refused:
            messages.error(
                request,
                " ".join([refused, *(f"{p.node or 'Workflow'}: {p.message}" for p in problems)]),
            )
        else:
            messages.success(request, f"Workflow is now {workflow.display_status.label.lower()}.")
        wanted = request.POST.get("next", "")
        safe = url_has_allowed_host_and_scheme(
            wanted, {request.get_host()}, require_https=request.is_secure()
        )
        return redirect(wanted if safe else reverse("workflow-detail", args=[pk]))
    workflow.refresh_from_db()
    context = _page_context(request, workflow, tab)
    context.update(
        {
            "refused": refused,
            "problems": problems,
            "warnings": warnings,
            "done": "" if refused else action,
            "oob": True,
        }
    )
    return render(request, "dashboard/_workflow_header.html", context)


@login_required
@require_GET
def workflow_activity(request, pk: int):
    workflow = workflow_for_reader(request, pk)
    context = _page_context(request, workflow, "activity")
    context["events"] = workflow.events.select_related("actor").order_by("-id")[:200]
    return render(request, "dashboard/workflow_activity.html", context)


@login_required
@require_GET
def workflow_calls(request, pk: int):
    workflow = workflow_for_reader(request, pk)
    context = _page_context(request, workflow, "calls")
    calls = CallLog.objects.filter(workflow=workflow).select_related("lead", "node").order_by("-id")
    before = request.GET.get("before")
    if before and before.isdigit():
        calls = calls.filter(pk__lt=int(before))
    page = list(calls[:51])
    context["calls"] = page[:50]
    context["next_before"] = page[49].pk if len(page) > 50 else None
    return render(request, "dashboard/workflow_calls.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def workflow_settings(request, pk: int):
    workflow = workflow_for_reader(request, pk)
    context = _page_context(request, workflow, "settings")
    editable = context["can_act"] and not workflow.workflow_status.is_final
    form = WorkflowSettingsForm(request.POST or None, instance=workflow)
    if request.method == "POST":
        if not editable:
            workflow = workflow_for_manager(request, pk)  # agents: 403
            messages.error(request, f"A {workflow.status} workflow can no longer be changed.")
            return redirect("workflow-settings", pk=pk)
        if form.is_valid():
            form.save()
            messages.success(request, "Settings saved.")
            return redirect("workflow-settings", pk=pk)
    context.update({"form": form, "editable": editable})
    return render(request, "dashboard/workflow_settings.html", context)
