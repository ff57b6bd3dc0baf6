import json

from django import template

from dashboard.badges import badge as render_badge

register = template.Library()


@register.simple_tag
def badge(status, label=None):
    """{% badge workflow.status %} — the coloured status badge (one colour per status)."""
    return render_badge(str(status), str(label) if label else None)


@register.filter
def as_json(value) -> str:
    """Metadata and post-call values shown as JSON, not as Python reprs."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


@register.filter
def get_item(mapping, key):
    return mapping.get(key) if hasattr(mapping, "get") else None
