"""Django admin for every model. Control actions call the same service as the API."""

from django.contrib import admin, messages

from calls.models import CallEvent, CallLog
from dashboard.badges import badge
from engine import control
from leads.models import Lead, LeadExecution, LeadFile, LeadTransition
from workflows.models import Edge, Membership, Node, Workflow, WorkflowEvent, Workspace
from workflows.statuses import WorkflowAction, WorkflowStatus


class ReadOnlyInline(admin.TabularInline):
    """History is append-only: shown, never edited here."""

    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at"]
    search_fields = ["name"]
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "workspace", "role"]
    list_filter = ["role", "workspace"]
    search_fields = ["user__username", "workspace__name"]
    autocomplete_fields = ["user", "workspace"]


class DraftOnlyInline(admin.TabularInline):
    """Only a draft workflow's graph can be edited (SPEC 3)."""

    extra = 0

    def _editable(self, obj) -> bool:
        return obj is None or obj.status == WorkflowStatus.DRAFT

    def has_add_permission(self, request, obj=None) -> bool:
        return self._editable(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request, obj=None) -> bool:
        return self._editable(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return self._editable(obj) and super().has_delete_permission(request, obj)


class NodeInline(DraftOnlyInline):
    model = Node
    fields = ["key", "type", "name", "config"]


class EdgeInline(DraftOnlyInline):
    model = Edge
    fk_name = "workflow"
    fields = ["source", "target", "branch"]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        workflow_id = request.resolver_match.kwargs.get("object_id")
        if db_field.name in ("source", "target"):
            kwargs["queryset"] = Node.objects.filter(workflow_id=workflow_id)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class WorkflowEventInline(ReadOnlyInline):
    model = WorkflowEvent
    fields = ["created_at", "action", "from_status", "to_status", "actor", "detail"]
    readonly_fields = fields


def _control_action(action: WorkflowAction):
    def run(modeladmin, request, queryset):
        for workflow in queryset:
            try:
                result = control.perform(workflow.pk, action, request.user)
            except control.ActionRefused as exc:
                modeladmin.message_user(request, f"{workflow}: {exc.detail}", messages.ERROR)
            except control.GraphInvalid as exc:
                problems = "; ".join(
                    f"{p.node or 'workflow'}: {p.message}" for p in exc.report.errors
                )
                modeladmin.message_user(
                    request, f"{workflow}: {exc.detail} {problems}", messages.ERROR
                )
            else:
                if action is WorkflowAction.DUPLICATE:
                    text = f"{workflow}: duplicated as draft '{result}' (id {result.pk})."
                else:
                    text = f"{workflow}: now {result.status}."
                modeladmin.message_user(request, text, messages.SUCCESS)

    run.__name__ = f"{action.value}_selected"
    run.short_description = f"{action.label} selected workflows"
    return run


@admin.register(Workflow)
class WorkflowAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "status_badge",
        "workspace",
        "timezone",
        "max_concurrent_calls",
        "created_at",
        "activated_at",
    ]
    list_filter = ["status", "workspace"]
    search_fields = ["name"]
    readonly_fields = [
        "status",
        "created_at",
        "updated_at",
        "activated_at",
        "paused_at",
        "completed_at",
        "cancelled_at",
        "duplicated_from",
        "created_by",
    ]
    inlines = [NodeInline, EdgeInline, WorkflowEventInline]
    actions = [_control_action(a) for a in WorkflowAction]
    list_select_related = ["workspace"]

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: Workflow):
        return badge(obj.status, obj.display_status.label if obj.status == "running" else None)


@admin.register(WorkflowEvent)
class WorkflowEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "workflow", "action", "from_status", "to_status", "actor"]
    list_filter = ["action"]
    search_fields = ["workflow__name"]
    list_select_related = ["workflow", "actor"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class TransitionInline(ReadOnlyInline):
    model = LeadTransition
    fields = ["created_at", "from_node", "to_node", "reason", "message", "metadata", "actor"]
    readonly_fields = fields


class ExecutionInline(admin.StackedInline):
    model = LeadExecution
    extra = 0
    can_delete = False
    fields = [
        "status",
        "node",
        "visit",
        "entered_at",
        "release_at",
        "call",
        "needs_review",
        "review_reason",
        "due_at",
        "lease_owner",
        "lease_expires_at",
        "finished_at",
    ]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Lead)
class LeadAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "name",
        "phone",
        "workflow",
        "execution_badge",
        "current_node",
        "created_at",
    ]
    list_filter = ["execution__status", "execution__needs_review", "workflow"]
    search_fields = ["=phone", "name"]
    list_select_related = ["workflow", "execution", "execution__node"]
    raw_id_fields = ["workflow", "lead_file"]
    inlines = [ExecutionInline, TransitionInline]
    # A COUNT(*) over a million leads on every page is not worth it.
    show_full_result_count = False

    @admin.display(description="status")
    def execution_badge(self, obj: Lead):
        execution = getattr(obj, "execution", None)
        return badge(execution.status if execution else "pending")

    @admin.display(description="current node")
    def current_node(self, obj: Lead):
        execution = getattr(obj, "execution", None)
        return execution.node.key if execution else "—"


@admin.register(LeadExecution)
class LeadExecutionAdmin(admin.ModelAdmin):
    list_display = [
        "lead",
        "workflow",
        "status_badge",
        "node",
        "entered_at",
        "release_at",
        "needs_review",
    ]
    list_filter = ["status", "needs_review"]
    search_fields = ["=lead__phone", "lead__name"]
    list_select_related = ["lead", "workflow", "node"]
    raw_id_fields = ["lead", "workflow", "node", "call"]
    show_full_result_count = False

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: LeadExecution):
        return badge(obj.status)


@admin.register(LeadTransition)
class LeadTransitionAdmin(admin.ModelAdmin):
    list_display = ["created_at", "lead", "from_node", "to_node", "reason", "actor"]
    list_filter = ["reason"]
    search_fields = ["=lead__phone"]
    list_select_related = ["lead", "from_node", "to_node", "actor"]
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(LeadFile)
class LeadFileAdmin(admin.ModelAdmin):
    list_display = [
        "original_name",
        "workflow",
        "status_badge",
        "rows_total",
        "rows_imported",
        "rows_rejected",
        "created_at",
    ]
    list_filter = ["status"]
    search_fields = ["original_name"]
    raw_id_fields = ["workflow"]

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: LeadFile):
        return badge(obj.status)


class CallEventInline(ReadOnlyInline):
    model = CallEvent
    fields = ["event_id", "status", "occurred_at", "received_at", "ignored_reason", "payload"]
    readonly_fields = fields


@admin.register(CallLog)
class CallLogAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "lead",
        "workflow",
        "node",
        "status_badge",
        "end_reason",
        "duration_s",
        "created_at",
    ]
    list_filter = ["status", "provider"]
    search_fields = ["=to_number", "=provider_call_id"]
    list_select_related = ["lead", "workflow", "node"]
    raw_id_fields = ["lead", "workflow", "node"]
    inlines = [CallEventInline]
    show_full_result_count = False

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: CallLog):
        return badge(obj.status)


@admin.register(CallEvent)
class CallEventAdmin(admin.ModelAdmin):
    list_display = ["event_id", "call", "status", "occurred_at", "received_at", "ignored_reason"]
    list_filter = ["status"]
    search_fields = ["event_id"]
    raw_id_fields = ["call"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
