"""The Leads tab, the CSV export, bulk actions, and one lead's page."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from calls.models import CallLog
from dashboard.access import (
    lead_file_for_reader,
    lead_for_manager,
    lead_for_reader,
    workflow_for_manager,
    workflow_for_reader,
)
from dashboard.forms import MoveLeadForm
from engine import manual
from engine.intake import WorkflowClosed
from engine.lead_files import FileTooLarge, accept_upload
from engine.why import explain
from leads.export import csv_response, field_names_of, stream_leads_csv, with_last_call
from leads.filters import LeadFilter
from leads.models import Lead, LeadFileStatus
from leads.rejections import stream_rejections_csv
from workflows.access import can_act
from workflows.statuses import NodeType

PAGE_SIZE = 50
# Counting stops here: a COUNT(*) over a million leads on every page view is not worth it.
COUNT_LIMIT = 10_000
SORTS = {"newest": "-id", "oldest": "id"}


def _filtered(request, workflow):
    base = Lead.objects.filter(workflow=workflow).select_related(
        "workflow", "lead_file", "execution", "execution__node", "execution__call"
    )
    return LeadFilter(request.GET, queryset=base)


def _leads_page(request, workflow) -> dict:
    filters = _filtered(request, workflow)
    queryset = filters.qs if filters.is_valid() else Lead.objects.none()
    sort = request.GET.get("sort") if request.GET.get("sort") in SORTS else "newest"
    order = SORTS[sort]
    cursor = request.GET.get("after")
    if cursor and cursor.isdigit():
        # Keyset pagination: a page deep in a million leads costs what the first one does.
        cursor_filter = {"id__lt": int(cursor)} if order == "-id" else {"id__gt": int(cursor)}
        page_qs = queryset.filter(**cursor_filter)
    else:
        page_qs = queryset
    rows = list(with_last_call(page_qs).order_by(order)[: PAGE_SIZE + 1])
    has_next = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    bounded = queryset.order_by()[: COUNT_LIMIT + 1].count()
    has_entry = workflow.has_entry_node()
    params = request.GET.copy()
    params.pop("after", None)
    return {
        "filters": filters,
        "leads": [(lead, explain(lead, has_entry=has_entry)) for lead in rows],
        "next_after": rows[-1].pk if has_next and rows else None,
        "query": params.urlencode(),
        "count": min(bounded, COUNT_LIMIT),
        "count_capped": bounded > COUNT_LIMIT,
        "sort": sort,
        "node_keys": list(workflow.nodes.order_by("id").values_list("key", flat=True)),
        "first_page": not cursor,
    }


@login_required
@require_GET
def workflow_leads(request, pk: int):
    workflow = workflow_for_reader(request, pk)
    context = {
        "workflow": workflow,
        "tab": "leads",
        "can_act": can_act(request.user, workflow.workspace_id),
        "actions": workflow.allowed_actions,
        **_leads_page(request, workflow),
    }
    if request.htmx and request.GET.get("fragment") == "rows":
        return render(request, "dashboard/workflow_leads.html#rows", context)
    return render(request, "dashboard/workflow_leads.html", context)


@login_required
@require_GET
def workflow_leads_csv(request, pk: int):
    workflow = workflow_for_reader(request, pk)
    filters = _filtered(request, workflow)
    queryset = filters.qs if filters.is_valid() else Lead.objects.none()
    names = field_names_of(Lead.objects.filter(workflow=workflow))
    return csv_response(
        stream_leads_csv(queryset.order_by(), field_names=names),
        f"workflow-{workflow.pk}-leads.csv",
    )


_BULK = {
    "retry": lambda lead, user, node: manual.retry_call(lead, user),
    "move": lambda lead, user, node: manual.move_lead(lead, node, user),
    "drop": lambda lead, user, node: manual.drop_lead(lead, user),
}


@login_required
@require_POST
def workflow_leads_bulk(request, pk: int):
    workflow = workflow_for_manager(request, pk)
    action = request.POST.get("action")
    back = reverse("workflow-leads", args=[pk]) + "?" + request.POST.get("query", "")
    if action not in _BULK or request.POST.get("confirm") != "yes":
        messages.error(request, "Choose an action and confirm it.")
        return redirect(back)
    ids = [int(i) for i in request.POST.getlist("lead") if i.isdigit()][: PAGE_SIZE * 4]
    leads = Lead.objects.filter(workflow=workflow, pk__in=ids)
    done, refused = 0, []
    for lead in leads:
        try:
            _BULK[action](lead, request.user, request.POST.get("node", ""))
            done += 1
        except (manual.LeadActionRefused, manual.UnknownNode) as exc:
            refused.append(f"{lead.name or lead.phone}: {exc.detail}")
    if done:
        messages.success(request, f"{action.capitalize()}: done for {done} lead(s).")
    for line in refused[:10]:
        messages.error(request, line)
    if not done and not refused:
        messages.error(request, "Select at least one lead.")
    return redirect(back)


@login_required
@require_GET
def lead_detail(request, pk: int):
    lead = lead_for_reader(request, pk)
    execution = getattr(lead, "execution", None)
    history = lead.transitions.select_related("from_node", "to_node", "actor").order_by("-id")
    calls = CallLog.objects.filter(lead=lead).select_related("node").order_by("-id")
    can = can_act(request.user, lead.workflow.workspace_id)
    keys = list(
        lead.workflow.nodes.exclude(type=NodeType.ENTRY)
        .order_by("id")
        .values_list("key", flat=True)
    )
    return render(
        request,
        "dashboard/lead_detail.html",
        {
            "lead": lead,
            "execution": execution,
            "why": explain(lead),
            "history": history[:500],
            "calls": calls[:100],
            "can_act": can,
            "move_form": MoveLeadForm(node_keys=keys),
        },
    )


@login_required
@require_POST
def lead_action(request, pk: int, action: str):
    lead = lead_for_manager(request, pk)
    try:
        if action == "retry-call":
            manual.retry_call(lead, request.user)
        elif action == "move":
            manual.move_lead(lead, request.POST.get("node", ""), request.user)
        elif action == "drop":
            manual.drop_lead(lead, request.user)
        else:
            messages.error(request, "Unknown action.")
            return redirect("lead-detail", pk=pk)
        messages.success(request, "Done; the lead's history records it.")
    except (manual.LeadActionRefused, manual.UnknownNode) as exc:
        messages.error(request, exc.detail)
    return redirect("lead-detail", pk=pk)


@login_required
@require_POST
def lead_file_upload(request, pk: int):
    workflow = workflow_for_manager(request, pk)
    upload = request.FILES.get("file")
    if upload is None:
        messages.error(request, "Choose a CSV file to upload.")
        return redirect("workflow-leads", pk=pk)
    try:
        lead_file = accept_upload(workflow.pk, upload, request.user)
    except (FileTooLarge, WorkflowClosed) as exc:
        messages.error(request, exc.detail)
        return redirect("workflow-leads", pk=pk)
    return redirect("lead-file-detail", pk=lead_file.pk)


@login_required
@require_GET
def lead_file_detail(request, pk: int):
    """The upload's progress bar (polled by htmx until the import ends), then its summary."""
    lead_file = lead_file_for_reader(request, pk)
    context = {
        "lead_file": lead_file,
        "workflow": lead_file.workflow,
        "finished": lead_file.status not in (LeadFileStatus.UPLOADED, LeadFileStatus.PROCESSING),
        "percent": int(100 * lead_file.rows_processed / lead_file.rows_total)
        if lead_file.rows_total
        else 0,
        "rejections": lead_file.rejections.order_by("row_number")[:20],
    }
    if request.htmx:
        return render(request, "dashboard/lead_file.html#progress", context)
    return render(request, "dashboard/lead_file.html", context)


@login_required
@require_GET
def lead_file_errors(request, pk: int):
    lead_file = lead_file_for_reader(request, pk)
    return csv_response(stream_rejections_csv(lead_file), f"lead-file-{lead_file.pk}-errors.csv")
