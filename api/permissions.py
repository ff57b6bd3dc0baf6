from rest_framework import permissions

from workflows.access import can_act


class ManagersWrite(permissions.BasePermission):
    """Everyone in the workspace reads; only its managers change anything (SPEC 1)."""

    message = "Only the workspace's campaign managers can do this; agents can only read."

    def has_object_permission(self, request, view, obj) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return True
        return can_act(request.user, _workspace_id(obj))


def _workspace_id(obj) -> int:
    workflow = getattr(obj, "workflow", obj)
    return workflow.workspace_id
