from django import forms

from workflows.models import ALL_DAYS, Workflow, validate_timezone
from workflows.statuses import Branch, NodeType

DAY_CHOICES = [(0, "Mon"), (1, "Tue"), (2, "Wed"), (3, "Thu"), (4, "Fri"), (5, "Sat"), (6, "Sun")]


class WorkflowSettingsForm(forms.ModelForm):
    timezone = forms.CharField(max_length=64, validators=[validate_timezone], initial="UTC")
    any_time = forms.BooleanField(required=False, label="Call at any time (no calling window)")
    window_days = forms.TypedMultipleChoiceField(
        choices=DAY_CHOICES,
        coerce=int,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Calling days",
    )

    class Meta:
        model = Workflow
        fields = [
            "name",
            "timezone",
            "max_concurrent_calls",
            "window_start",
            "window_end",
            "window_days",
        ]
        widgets = {
            "window_start": forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
            "window_end": forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
        }
        labels = {"window_start": "Calling window opens", "window_end": "Calling window closes"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["any_time"] = self.instance.window_start is None
            self.initial["window_days"] = self.instance.window_days or ALL_DAYS
        else:
            self.initial.setdefault("window_days", ALL_DAYS)

    def clean(self):
        data = super().clean()
        if data.get("any_time"):
            data["window_start"] = data["window_end"] = None
            data["window_days"] = []
            return data
        start, end = data.get("window_start"), data.get("window_end")
        if start is None or end is None:
            raise forms.ValidationError(
                "Give the calling window's opening and closing times, or tick 'Call at any time'."
            )
        if start >= end:
            raise forms.ValidationError("The calling window must open before it closes.")
        if not data.get("window_days"):
            data["window_days"] = ALL_DAYS
        return data


class NodeForm(forms.Form):
    """One form for every node type; the fields a type does not use are ignored."""

    key = forms.RegexField(
        r"^[a-z0-9][a-z0-9_-]*$",
        max_length=64,
        help_text="lowercase letters, digits, - and _, starting with a letter or digit",
    )
    name = forms.CharField(max_length=200)
    type = forms.ChoiceField(choices=NodeType.choices)
    delay_seconds = forms.IntegerField(
        required=False, min_value=1, label="Delay (seconds)", help_text="time node: wait this long…"
    )
    at_local_time = forms.RegexField(
        r"^([01]\d|2[0-3]):[0-5]\d$", required=False, label="…or until local time (HH:MM)"
    )
    url = forms.URLField(
        required=False,
        assume_scheme="https",
        label="Integration URL",
        help_text="application node",
    )
    timeout_seconds = forms.FloatField(required=False, min_value=0.1, max_value=120)
    agent = forms.CharField(required=False, max_length=100, help_text="voice call node")
    script = forms.CharField(required=False, max_length=2000)

    def config(self) -> dict:
        data = self.cleaned_data
        node_type = data["type"]
        if node_type == NodeType.TIME:
            return {k: data[k] for k in ("delay_seconds", "at_local_time") if data.get(k)}
        if node_type == NodeType.APPLICATION:
            config = {"url": data.get("url") or ""}
            if data.get("timeout_seconds"):
                config["timeout_seconds"] = data["timeout_seconds"]
            return config
        if node_type == NodeType.VOICE_CALL:
            return {k: data[k] for k in ("agent", "script") if data.get(k)}
        return {}


class EdgeForm(forms.Form):
    source = forms.ChoiceField()
    target = forms.ChoiceField()
    branch = forms.ChoiceField(
        choices=[("", "— (not a Voice Call output)"), *Branch.choices], required=False
    )

    def __init__(self, *args, node_keys: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        choices = [(k, k) for k in node_keys]
        self.fields["source"].choices = choices
        self.fields["target"].choices = choices


class MoveLeadForm(forms.Form):
    node = forms.ChoiceField(label="Move to node")

    def __init__(self, *args, node_keys: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["node"].choices = [(k, k) for k in node_keys]
