"""Who may see and act on what: every object is reached through the user's workspaces."""

from django.db.models import QuerySet

from workflows.models import Membership, Role, Workflow


def workflows_for(user) -> QuerySet[Workflow]:
    if not user.is_authenticated:
        return Workflow.objects.none()
    return Workflow.objects.filter(workspace__memberships__user=user)


def role_in(user, workspace_id: int) -> str | None:
    if not user.is_authenticated:
        return None
    return (
        Membership.objects.filter(user=user, workspace_id=workspace_id)
        .values_list("role", flat=True)
        .first()
    )


def can_act(user, workspace_id: int) -> bool:
    """Managers act; agents only read."""
    return role_in(user, workspace_id) == Role.MANAGER
