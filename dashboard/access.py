"""One helper per resource: the object if the user may see it (404 otherwise), and for
changes, PermissionDenied unless the user manages its workspace. Agents read, managers act."""

from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404

from calls.models import CallLog
from leads.models import Lead, LeadFile
from workflows.access import can_act, workflows_for
from workflows.models import Membership, Workflow, Workspace


def memberships(user) -> list[Membership]:
    return list(
        Membership.objects.filter(user=user).select_related("workspace").order_by("workspace__name")
    )


def current_workspace(request) -> Workspace | None:
    """The workspace the user chose in the switcher (kept in the session), else their first."""
    mine = memberships(request.user)
    chosen = request.session.get("workspace_id")
    for membership in mine:
        if membership.workspace_id == chosen:
            return membership.workspace
    return mine[0].workspace if mine else None


def workflow_for_reader(request, workflow_id: int) -> Workflow:
    return get_object_or_404(
        workflows_for(request.user).select_related("workspace"), pk=workflow_id
    )


def workflow_for_manager(request, workflow_id: int) -> Workflow:
    workflow = workflow_for_reader(request, workflow_id)
    if not can_act(request.user, workflow.workspace_id):
        raise PermissionDenied("Only campaign managers can do this.")
    return workflow


def lead_for_reader(request, lead_id: int) -> Lead:
    return get_object_or_404(
        Lead.objects.filter(workflow__in=workflows_for(request.user)).select_related(
            "workflow",
            "workflow__workspace",
            "lead_file",
            "execution",
            "execution__node",
            "execution__call",
        ),
        pk=lead_id,
    )


def lead_for_manager(request, lead_id: int) -> Lead:
    lead = lead_for_reader(request, lead_id)
    if not can_act(request.user, lead.workflow.workspace_id):
        raise PermissionDenied("Only campaign managers can do this.")
    return lead


def lead_file_for_reader(request, lead_file_id: int) -> LeadFile:
    return get_object_or_404(
        LeadFile.objects.filter(workflow__in=workflows_for(request.user)).select_related(
            "workflow"
        ),
        pk=lead_file_id,
    )


def call_for_reader(request, call_id: int) -> CallLog:
    return get_object_or_404(
        CallLog.objects.filter(workflow__in=workflows_for(request.user)).select_related(
            "lead", "workflow", "node"
        ),
        pk=call_id,
    )
