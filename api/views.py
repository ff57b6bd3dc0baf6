"""REST API v1 (SPEC 7). Thin: scope to the caller's workspaces, check the role, call the rule."""

from django.db.models import Prefetch
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import MethodNotAllowed, PermissionDenied, ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from api.errors import Conflict
from api.permissions import ManagersWrite
from api.renderers import CSVRenderer
from api.serializers import (
    CallSerializer,
    GraphSerializer,
    HistorySerializer,
    LeadFileSerializer,
    LeadSerializer,
    MoveSerializer,
    WorkflowSerializer,
    graph_as_dict,
    validate_new_leads,
)
from calls.models import CallEvent, CallLog
from engine import control, manual
from engine.intake import WorkflowClosed, add_leads
from engine.lead_files import FileTooLarge, accept_upload
from leads.counts import workflow_counts
from leads.export import csv_response, field_names_of, stream_leads_csv
from leads.filters import LeadFilter
from leads.models import Lead, LeadFile
from leads.rejections import stream_rejections_csv
from workflows.access import workflows_for
from workflows.graph_store import check_graph, replace_graph
from workflows.models import Membership, Role
from workflows.statuses import WorkflowAction, WorkflowStatus


class IdCursorPagination(CursorPagination):
    """Keyset pages: as fast at the millionth lead as at the first."""

    ordering = "-id"
    page_size = 50
    max_page_size = 500
    page_size_query_param = "page_size"


def _lead_queryset():
    return Lead.objects.select_related(
        "workflow", "lead_file", "execution", "execution__node", "execution__call"
    )


class WorkflowViewSet(viewsets.ModelViewSet):
    serializer_class = WorkflowSerializer
    permission_classes = [IsAuthenticated, ManagersWrite]
    pagination_class = IdCursorPagination
    http_method_names = ["get", "post", "patch", "delete", "put", "head", "options"]

    def get_queryset(self):
        return workflows_for(self.request.user).order_by("-id")

    def update(self, request, *args, **kwargs):
        if not kwargs.get("partial"):
            raise MethodNotAllowed("PUT", "Use PATCH to change a workflow.")
        workflow = self.get_object()
        if WorkflowStatus(workflow.status).is_final:
            raise Conflict(f"This workflow is {workflow.status}; it can no longer be changed.")
        return super().update(request, *args, **kwargs)

    def create(self, request, *args, **kwargs):
        # The role is checked before the body, so an agent learns they cannot create at all.
        if not Membership.objects.filter(user=request.user, role=Role.MANAGER).exists():
            raise PermissionDenied("Only a campaign manager of the workspace can create workflows.")
        return super().create(request, *args, **kwargs)

    def perform_create(self, serializer):
        managed = Membership.objects.filter(user=self.request.user, role=Role.MANAGER)
        wanted = serializer.validated_data.get("workspace_id")
        if wanted is not None:
            managed = managed.filter(workspace_id=wanted)
        workspace_ids = list(managed.values_list("workspace_id", flat=True)[:2])
        if not workspace_ids:
            raise PermissionDenied("Only a campaign manager of the workspace can create workflows.")
        if len(workspace_ids) > 1:
            raise ValidationError({"workspace_id": "you manage several workspaces: name one"})
        serializer.save(workspace_id=workspace_ids[0], created_by=self.request.user)

    def perform_destroy(self, instance):
        if instance.status != WorkflowStatus.DRAFT:
            raise Conflict(
                f"Only a draft workflow can be deleted; this one is {instance.status}. "
                "Cancel it instead."
            )
        instance.delete()

    @extend_schema(request=GraphSerializer, responses=GraphSerializer)
    @action(detail=True, methods=["get", "put"])
    def graph(self, request, pk=None):
        workflow = self.get_object()
        if request.method == "PUT":
            if workflow.status != WorkflowStatus.DRAFT:
                raise Conflict(
                    f"Only a draft workflow's graph can be edited; this one is "
                    f"{workflow.status}. Duplicate it to get an editable copy."
                )
            serializer = GraphSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            replace_graph(workflow, *serializer.specs())
        report = check_graph(workflow)
        return Response(
            {
                **graph_as_dict(workflow),
                "problems": [p.as_dict() for p in report.errors],
                "warnings": [w.as_dict() for w in report.warnings],
            }
        )

    def _control(self, request, action_name: WorkflowAction):
        workflow = self.get_object()
        result = control.perform(workflow.pk, action_name, request.user)
        code = status.HTTP_201_CREATED if action_name is WorkflowAction.DUPLICATE else 200
        return Response(WorkflowSerializer(result).data, status=code)

    @extend_schema(request=None, responses=WorkflowSerializer)
    @action(detail=True, methods=["post"])
    def activate(self, request, pk=None):
        return self._control(request, WorkflowAction.ACTIVATE)

    @extend_schema(request=None, responses=WorkflowSerializer)
    @action(detail=True, methods=["post"])
    def pause(self, request, pk=None):
        return self._control(request, WorkflowAction.PAUSE)

    @extend_schema(request=None, responses=WorkflowSerializer)
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        return self._control(request, WorkflowAction.RESUME)

    @extend_schema(request=None, responses=WorkflowSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return self._control(request, WorkflowAction.CANCEL)

    @extend_schema(request=None, responses={201: WorkflowSerializer})
    @action(detail=True, methods=["post"])
    def duplicate(self, request, pk=None):
        return self._control(request, WorkflowAction.DUPLICATE)

    @action(detail=True, methods=["get"])
    def counts(self, request, pk=None):
        return Response(workflow_counts(self.get_object()))

    @extend_schema(
        request={
            "multipart/form-data": {
                "type": "object",
                "properties": {"file": {"type": "string", "format": "binary"}},
            }
        },
        responses={202: LeadFileSerializer},
    )
    @action(detail=True, methods=["post"], url_path="lead-files", parser_classes=[MultiPartParser])
    def lead_files(self, request, pk=None):
        workflow = self.get_object()
        upload = request.FILES.get("file")
        if upload is None:
            raise ValidationError({"file": "attach the CSV as the multipart field 'file'"})
        try:
            lead_file = accept_upload(workflow.pk, upload, request.user)
        except FileTooLarge as exc:
            raise ValidationError({"error": "file_too_large", "detail": exc.detail}) from None
        except WorkflowClosed as exc:
            raise Conflict(exc.detail) from None
        return Response(LeadFileSerializer(lead_file).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses={(200, "text/csv"): str})
    @action(
        detail=True,
        methods=["get"],
        url_path="leads.csv",
        renderer_classes=[JSONRenderer, CSVRenderer],
    )
    def leads_csv(self, request, pk=None):
        workflow = self.get_object()
        filters = LeadFilter(request.query_params, queryset=Lead.objects.filter(workflow=workflow))
        if not filters.is_valid():
            raise ValidationError(filters.errors)
        return csv_response(
            stream_leads_csv(
                filters.qs.order_by(),
                field_names=field_names_of(Lead.objects.filter(workflow=workflow)),
            ),
            f"workflow-{workflow.pk}-leads.csv",
        )

    @extend_schema(request=LeadSerializer(many=True), responses=LeadSerializer(many=True))
    @action(detail=True, methods=["get", "post"])
    def leads(self, request, pk=None):
        workflow = self.get_object()
        if request.method == "POST":
            return self._add_leads(request, workflow)
        filters = LeadFilter(
            request.query_params, queryset=_lead_queryset().filter(workflow=workflow)
        )
        if not filters.is_valid():
            raise ValidationError(filters.errors)
        queryset = filters.qs
        paginator = IdCursorPagination()
        page = paginator.paginate_queryset(queryset, request, view=self)
        context = {"has_entry": workflow.has_entry_node()}
        return paginator.get_paginated_response(
            LeadSerializer(page, many=True, context=context).data
        )

    def _add_leads(self, request, workflow):
        clean, problems = validate_new_leads(workflow, request.data)
        if problems:
            count = len({p["index"] for p in problems})
            return Response(
                {
                    "error": "invalid_leads",
                    "detail": f"{count} item(s) are invalid; nothing was stored.",
                    "items": problems,
                },
                status=status.HTTP_400_BAD_REQUEST,
            )
        try:
            created = add_leads(workflow.pk, clean)
        except WorkflowClosed as exc:
            raise Conflict(exc.detail) from None
        created_ids = [lead.pk for lead in created]
        leads = _lead_queryset().filter(pk__in=created_ids).order_by("id")
        return Response(
            {"created": len(created), "leads": LeadSerializer(leads, many=True).data},
            status=status.HTTP_201_CREATED,
        )


class LeadViewSet(mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = LeadSerializer
    permission_classes = [IsAuthenticated, ManagersWrite]

    def get_queryset(self):
        return _lead_queryset().filter(workflow__in=workflows_for(self.request.user))

    def _manual(self, lead, act):
        try:
            act()
        except manual.LeadActionRefused as exc:
            raise Conflict(exc.detail) from None
        except manual.UnknownNode as exc:
            raise ValidationError({"node": exc.detail}) from None
        return Response(LeadSerializer(self.get_queryset().get(pk=lead.pk)).data)

    @extend_schema(request=None, responses=LeadSerializer)
    @action(detail=True, methods=["post"], url_path="retry-call")
    def retry_call(self, request, pk=None):
        lead = self.get_object()
        return self._manual(lead, lambda: manual.retry_call(lead, request.user))

    @extend_schema(request=MoveSerializer, responses=LeadSerializer)
    @action(detail=True, methods=["post"])
    def move(self, request, pk=None):
        lead = self.get_object()  # 404 and 403 come before a 400 about the body
        body = MoveSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        node = body.validated_data["node"]
        return self._manual(lead, lambda: manual.move_lead(lead, node, request.user))

    @extend_schema(request=None, responses=LeadSerializer)
    @action(detail=True, methods=["post"])
    def drop(self, request, pk=None):
        lead = self.get_object()
        return self._manual(lead, lambda: manual.drop_lead(lead, request.user))

    @extend_schema(responses=HistorySerializer(many=True))
    @action(detail=True, methods=["get"])
    def history(self, request, pk=None):
        lead = self.get_object()
        rows = lead.transitions.select_related("from_node", "to_node", "actor").order_by("id")
        return Response(HistorySerializer(rows, many=True).data)


class LeadFileViewSet(mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = LeadFileSerializer
    permission_classes = [IsAuthenticated, ManagersWrite]

    def get_queryset(self):
        return LeadFile.objects.filter(workflow__in=workflows_for(self.request.user))

    @extend_schema(responses={(200, "text/csv"): str})
    @action(
        detail=True,
        methods=["get"],
        url_path="errors.csv",
        renderer_classes=[JSONRenderer, CSVRenderer],
    )
    def errors_csv(self, request, pk=None):
        lead_file = self.get_object()
        return csv_response(
            stream_rejections_csv(lead_file), f"lead-file-{lead_file.pk}-errors.csv"
        )


class CallViewSet(mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = CallSerializer
    permission_classes = [IsAuthenticated, ManagersWrite]

    def get_queryset(self):
        return (
            CallLog.objects.filter(workflow__in=workflows_for(self.request.user))
            .select_related("node")
            .prefetch_related(Prefetch("events", queryset=CallEvent.objects.order_by("id")))
        )
