"""Every API error is JSON `{error, detail, ...}` (SPEC 7)."""

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from engine.control import ActionRefused, GraphInvalid


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"
    default_detail = "The request conflicts with the object's current state."


def _first_message(detail) -> str:
    """A readable one-line summary of a (possibly nested) DRF validation detail."""
    if isinstance(detail, dict):
        for field, value in detail.items():
            inner = _first_message(value)
            return inner if field == "non_field_errors" else f"{field}: {inner}"
    if isinstance(detail, list) and detail:
        return _first_message(detail[0])
    return str(detail)


def exception_handler(exc, context):
    if isinstance(exc, ActionRefused):
        return Response(
            {
                "error": "invalid_transition",
                "detail": exc.detail,
                "status": exc.status,
                "allowed_actions": exc.allowed_actions,
            },
            status=status.HTTP_409_CONFLICT,
        )
    if isinstance(exc, GraphInvalid):
        return Response(
            {
                "error": "invalid_graph",
                "detail": exc.detail,
                "problems": [p.as_dict() for p in exc.report.errors],
                "warnings": [w.as_dict() for w in exc.report.warnings],
            },
            status=status.HTTP_400_BAD_REQUEST,
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound("Not found (or not in your workspaces).")
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        body = {"error": "invalid", "detail": _first_message(exc.detail)}
        if isinstance(exc.detail, dict):
            body.update({k: v for k, v in exc.detail.items() if k not in ("error", "detail")})
            if isinstance(exc.detail.get("detail"), str):
                body["detail"] = exc.detail["detail"]
            if isinstance(exc.detail.get("error"), str):
                body["error"] = exc.detail["error"]
        else:
            body["errors"] = exc.detail
        response.data = body
    elif isinstance(exc, exceptions.APIException):
        response.data = {"error": exc.default_code, "detail": str(exc.detail)}
    return response
