from dashboard.access import current_workspace, memberships


def shell(request) -> dict:
    """Navigation data every page needs: the user's workspaces and the current one."""
    if not request.user.is_authenticated:
        return {}
    workspace = current_workspace(request)
    mine = memberships(request.user)
    role = next((m.role for m in mine if workspace and m.workspace_id == workspace.pk), None)
    return {
        "workspaces": [m.workspace for m in mine],
        "current_workspace": workspace,
        "current_role": role,
    }
