from rest_framework import serializers

from calls.models import CallEvent, CallLog
from engine.why import explain
from leads.models import ExecutionStatus, Lead, LeadFile, LeadTransition
from leads.phones import InvalidPhone, normalize_phone
from workflows.graph import EdgeSpec, NodeSpec, config_errors
from workflows.models import ALL_DAYS, Workflow, validate_timezone
from workflows.statuses import Branch, NodeType


class CallingWindowSerializer(serializers.Serializer):
    start = serializers.TimeField(format="%H:%M", input_formats=["%H:%M"])
    end = serializers.TimeField(format="%H:%M", input_formats=["%H:%M"])
    days = serializers.ListField(
        child=serializers.IntegerField(min_value=0, max_value=6),
        required=False,
        help_text="Weekdays the window is open, Monday = 0 ... Sunday = 6; default every day.",
    )

    def validate(self, attrs):
        missing = [name for name in ("start", "end") if name not in attrs]
        if missing:
            raise serializers.ValidationError(
                f"a calling window needs both start and end (missing {', '.join(missing)})"
            )
        if attrs["start"] >= attrs["end"]:
            raise serializers.ValidationError("start must be before end (same day, local time)")
        days = attrs.get("days") or ALL_DAYS
        attrs["days"] = sorted(set(days))
        return attrs


class WorkflowSerializer(serializers.ModelSerializer):
    status = serializers.SerializerMethodField()
    legacy_status = serializers.SerializerMethodField()
    allowed_actions = serializers.SerializerMethodField()
    calling_window = CallingWindowSerializer(
        required=False, allow_null=True, help_text="null: calls may be placed at any time"
    )
    timezone = serializers.CharField(required=False, validators=[validate_timezone])
    workspace_id = serializers.IntegerField(required=False)
    duplicated_from_id = serializers.IntegerField(read_only=True)

    class Meta:
        model = Workflow
        fields = [
            "id",
            "workspace_id",
            "name",
            "status",
            "legacy_status",
            "allowed_actions",
            "timezone",
            "max_concurrent_calls",
            "calling_window",
            "duplicated_from_id",
            "created_at",
            "updated_at",
            "activated_at",
            "paused_at",
            "completed_at",
            "cancelled_at",
        ]
        read_only_fields = [
            "created_at",
            "updated_at",
            "activated_at",
            "paused_at",
            "completed_at",
            "cancelled_at",
        ]

    def get_status(self, workflow: Workflow) -> str:
        # Legacy `running` reads as `active` everywhere (SPEC 2); legacy_status keeps the truth.
        return workflow.display_status.value

    def get_legacy_status(self, workflow: Workflow) -> str | None:
        return workflow.status if workflow.status != workflow.display_status else None

    def get_allowed_actions(self, workflow: Workflow) -> list[str]:
        return [a.value for a in workflow.allowed_actions]

    def to_internal_value(self, data):
        if isinstance(data, dict) and "status" in data:
            raise serializers.ValidationError(
                {
                    "status": "status is changed only by the control actions "
                    "(activate, pause, resume, cancel); 'running' is a legacy value that is "
                    "never written."
                }
            )
        return super().to_internal_value(data)

    def _window_fields(self, validated: dict) -> dict:
        if "calling_window" not in validated:
            return {}
        window = validated.pop("calling_window")
        if window is None:
            return {"window_start": None, "window_end": None, "window_days": []}
        return {
            "window_start": window["start"],
            "window_end": window["end"],
            "window_days": window["days"],
        }

    def create(self, validated_data):
        fields = self._window_fields(validated_data)
        return Workflow.objects.create(**validated_data, **fields)

    def update(self, instance, validated_data):
        validated_data.pop("workspace_id", None)
        validated_data.update(self._window_fields(validated_data))
        for name, value in validated_data.items():
            setattr(instance, name, value)
        instance.save()
        return instance


class NodeInputSerializer(serializers.Serializer):
    key = serializers.RegexField(
        r"^[a-z0-9][a-z0-9_-]*$",
        max_length=64,
        error_messages={"invalid": "use lowercase letters, digits, '-' and '_'"},
    )
    type = serializers.ChoiceField(choices=NodeType.choices)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    config = serializers.JSONField(required=False, default=dict)

    def validate(self, attrs):
        problems = config_errors(attrs["type"], attrs.get("config", {}))
        if problems:
            raise serializers.ValidationError({"config": problems})
        return attrs


class EdgeInputSerializer(serializers.Serializer):
    source = serializers.CharField(max_length=64)
    target = serializers.CharField(max_length=64)
    branch = serializers.ChoiceField(choices=Branch.choices, required=False, allow_null=True)


class GraphSerializer(serializers.Serializer):
    """`{nodes, edges}`; PUT checks shape and configs here, the graph rules at activation."""

    nodes = NodeInputSerializer(many=True)
    edges = EdgeInputSerializer(many=True)

    def validate(self, attrs):
        keys = [n["key"] for n in attrs["nodes"]]
        duplicates = sorted({k for k in keys if keys.count(k) > 1})
        if duplicates:
            raise serializers.ValidationError(
                {"nodes": f"node key(s) used more than once: {', '.join(duplicates)}"}
            )
        known = set(keys)
        seen_labels = set()
        for index, edge in enumerate(attrs["edges"]):
            for end in ("source", "target"):
                if edge[end] not in known:
                    raise serializers.ValidationError(
                        {"edges": f"edge {index}: {end} '{edge[end]}' is not a node key"}
                    )
            label = (edge["source"], edge.get("branch"))
            if edge.get("branch") and label in seen_labels:
                raise serializers.ValidationError(
                    {"edges": f"edge {index}: '{edge['source']}' has two {edge['branch']} outputs"}
                )
            seen_labels.add(label)
        return attrs

    def specs(self) -> tuple[list[NodeSpec], list[EdgeSpec]]:
        data = self.validated_data
        nodes = [
            NodeSpec(
                key=n["key"],
                type=n["type"],
                name=n.get("name") or n["key"],
                config=n.get("config") or {},
            )
            for n in data["nodes"]
        ]
        edges = [EdgeSpec(e["source"], e["target"], e.get("branch")) for e in data["edges"]]
        return nodes, edges


def graph_as_dict(workflow: Workflow) -> dict:
    nodes = [
        {"key": n.key, "type": n.type, "name": n.name, "config": n.config}
        for n in workflow.nodes.order_by("id")
    ]
    edges = [
        {"source": s, "target": t, "branch": b}
        for s, t, b in workflow.edges.order_by("id").values_list(
            "source__key", "target__key", "branch"
        )
    ]
    return {"nodes": nodes, "edges": edges}


class LeadSerializer(serializers.ModelSerializer):
    workflow_id = serializers.IntegerField(read_only=True)
    status = serializers.SerializerMethodField()
    current_node = serializers.SerializerMethodField()
    entered_at = serializers.SerializerMethodField()
    release_at = serializers.SerializerMethodField()
    call_id = serializers.SerializerMethodField()
    needs_review = serializers.SerializerMethodField()
    review_reason = serializers.SerializerMethodField()
    why = serializers.SerializerMethodField()

    class Meta:
        model = Lead
        fields = [
            "id",
            "workflow_id",
            "phone",
            "name",
            "fields",
            "status",
            "current_node",
            "entered_at",
            "release_at",
            "call_id",
            "needs_review",
            "review_reason",
            "why",
            "created_at",
        ]

    @staticmethod
    def _execution(lead: Lead):
        return getattr(lead, "execution", None)

    def get_status(self, lead: Lead) -> str:
        execution = self._execution(lead)
        return execution.status if execution else ExecutionStatus.PENDING.value

    def get_current_node(self, lead: Lead) -> str | None:
        execution = self._execution(lead)
        return execution.node.key if execution else None

    def _time(self, value):
        return serializers.DateTimeField().to_representation(value) if value else None

    def get_entered_at(self, lead: Lead) -> str | None:
        execution = self._execution(lead)
        return self._time(execution.entered_at) if execution else None

    def get_release_at(self, lead: Lead) -> str | None:
        execution = self._execution(lead)
        return self._time(execution.release_at) if execution else None

    def get_call_id(self, lead: Lead) -> int | None:
        execution = self._execution(lead)
        return execution.call_id if execution else None

    def get_needs_review(self, lead: Lead) -> bool:
        execution = self._execution(lead)
        return bool(execution and execution.needs_review)

    def get_review_reason(self, lead: Lead) -> str:
        execution = self._execution(lead)
        return execution.review_reason if execution else ""

    def get_why(self, lead: Lead) -> str:
        return explain(lead, has_entry=self.context.get("has_entry"))


class LeadInputSerializer(serializers.Serializer):
    phone = serializers.CharField(max_length=64)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    fields = serializers.DictField(required=False, default=dict)

    def validate_phone(self, value: str) -> str:
        try:
            return normalize_phone(value)
        except InvalidPhone as exc:
            raise serializers.ValidationError(str(exc)) from None


def validate_new_leads(workflow: Workflow, items: object) -> tuple[list[dict], list[dict]]:
    """Check a JSON list of leads; returns (clean leads, problems naming each bad item)."""
    if not isinstance(items, list) or not items:
        return [], [
            {"index": None, "field": None, "message": "send a non-empty JSON list of leads"}
        ]
    clean, problems, seen = [], [], {}
    for index, item in enumerate(items):
        serializer = LeadInputSerializer(data=item)
        if not serializer.is_valid():
            errors = serializer.errors if isinstance(serializer.errors, dict) else {}
            for field, messages in errors.items():
                for message in messages if isinstance(messages, list) else [messages]:
                    problems.append({"index": index, "field": field, "message": str(message)})
            continue
        phone = serializer.validated_data["phone"]
        if phone in seen:
            problems.append(
                {"index": index, "field": "phone", "message": f"{phone} repeats item {seen[phone]}"}
            )
            continue
        seen[phone] = index
        clean.append({**serializer.validated_data, "index": index})
    existing = set(
        Lead.objects.filter(workflow=workflow, phone__in=list(seen)).values_list("phone", flat=True)
    )
    for lead in clean:
        if lead["phone"] in existing:
            problems.append(
                {
                    "index": lead["index"],
                    "field": "phone",
                    "message": f"{lead['phone']} is already a lead of this workflow",
                }
            )
    problems.sort(key=lambda p: (p["index"] is None, p["index"] or 0))
    return clean, problems


class LeadFileSerializer(serializers.ModelSerializer):
    workflow_id = serializers.IntegerField(read_only=True)
    errors_url = serializers.SerializerMethodField()

    class Meta:
        model = LeadFile
        fields = [
            "id",
            "workflow_id",
            "original_name",
            "status",
            "rows_total",
            "rows_processed",
            "rows_imported",
            "rows_rejected",
            "error",
            "errors_url",
            "created_at",
            "finished_at",
        ]

    def get_errors_url(self, lead_file: LeadFile) -> str:
        return f"/v1/lead-files/{lead_file.pk}/errors.csv"


class MoveSerializer(serializers.Serializer):
    node = serializers.CharField(max_length=64, help_text="the key of the node to move to")


class HistorySerializer(serializers.ModelSerializer):
    from_node = serializers.SlugRelatedField(slug_field="key", read_only=True)
    to_node = serializers.SlugRelatedField(slug_field="key", read_only=True)
    actor = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = LeadTransition
        fields = ["from_node", "to_node", "reason", "message", "metadata", "actor", "created_at"]


class CallEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = CallEvent
        fields = ["event_id", "status", "occurred_at", "received_at", "ignored_reason"]


class CallSerializer(serializers.ModelSerializer):
    lead_id = serializers.IntegerField(read_only=True)
    workflow_id = serializers.IntegerField(read_only=True)
    node = serializers.SlugRelatedField(slug_field="key", read_only=True)
    events = CallEventSerializer(many=True, read_only=True)

    class Meta:
        model = CallLog
        fields = [
            "id",
            "lead_id",
            "workflow_id",
            "node",
            "provider",
            "provider_call_id",
            "to_number",
            "from_number",
            "status",
            "end_reason",
            "started_at",
            "answered_at",
            "ended_at",
            "duration_s",
            "transcript",
            "recording_url",
            "post_call",
            "created_at",
            "events",
        ]
