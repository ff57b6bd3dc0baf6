"""Small pages: a call log, the statuses reference, the workspace switcher."""

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from calls.models import CALL_ROUTING, CALL_STATUS_MEANING, CallStatus
from dashboard.access import call_for_reader, memberships
from leads.models import EXECUTION_STATUS_MEANING, ExecutionStatus
from workflows.statuses import TRANSITIONS, WORKFLOW_STATUS_MEANING, WorkflowStatus


@login_required
@require_GET
def call_detail(request, pk: int):
    call = call_for_reader(request, pk)
    post_call = call.post_call if isinstance(call.post_call, dict) else {}
    return render(
        request,
        "dashboard/call_detail.html",
        {
            "call": call,
            "events": call.events.order_by("occurred_at", "id"),
            "post_call": post_call,
        },
    )


@login_required
@require_GET
def statuses(request):
    """Rendered from the enums themselves, so it cannot drift from the code."""
    workflow_rows = [(s, s.is_final, WORKFLOW_STATUS_MEANING[s]) for s in WorkflowStatus]
    lead_rows = [(s, s.is_final, EXECUTION_STATUS_MEANING[s]) for s in ExecutionStatus]
    call_rows = [
        (s, s.is_final, CALL_ROUTING.get(s), CALL_STATUS_MEANING.get(s, "In progress"))
        for s in CallStatus
    ]
    action_rows = [
        (action, sorted(s.value for s in sources), target)
        for action, (sources, target) in TRANSITIONS.items()
    ]
    return render(
        request,
        "dashboard/statuses.html",
        {
            "workflow_rows": workflow_rows,
            "lead_rows": lead_rows,
            "call_rows": call_rows,
            "action_rows": action_rows,
        },
    )


@login_required
@require_POST
def switch_workspace(request):
    wanted = request.POST.get("workspace", "")
    if not any(str(m.workspace_id) == wanted for m in memberships(request.user)):
        raise Http404("Not one of your workspaces.")
    request.session["workspace_id"] = int(wanted)
    return redirect("workflow-list")
