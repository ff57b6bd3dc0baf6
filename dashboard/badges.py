"""Status badges: one colour per status, shared by the admin and the pages.

Colours are text/background pairs with at least 4.5:1 contrast (WCAG AA).
"""

from django.utils.html import format_html

_TONES = {
    "grey": ("#1f2937", "#e5e7eb"),
    "green": ("#14532d", "#dcfce7"),
    "amber": ("#78350f", "#fef3c7"),
    "blue": ("#1e3a8a", "#dbeafe"),
    "red": ("#7f1d1d", "#fee2e2"),
    "purple": ("#4c1d95", "#ede9fe"),
}

STATUS_TONE = {
    # workflow
    "draft": "grey",
    "active": "green",
    "running": "green",
    "paused": "amber",
    "completed": "blue",
    "cancelled": "red",
    # lead execution
    "pending": "grey",
    "dropped": "red",
    # call
    "created": "grey",
    "initiated": "blue",
    "received": "blue",
    "connected": "blue",
    "waiting": "blue",
    "did_not_pick": "amber",
    "busy": "amber",
    "failed": "red",
    "no_answer": "red",
    "retry_expired": "purple",
    # lead files
    "uploaded": "grey",
    "processing": "blue",
    "completed_with_errors": "amber",
}


def badge(status: str, label: str | None = None):
    fg, bg = _TONES[STATUS_TONE.get(status, "grey")]
    return format_html(
        '<span class="badge badge-{}" style="color:{};background:{};padding:1px 8px;'
        'border-radius:9px;font-weight:600;white-space:nowrap">{}</span>',
        status,
        fg,
        bg,
        label or status,
    )
