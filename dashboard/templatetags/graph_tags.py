"""Template helpers for the workflow graph (templates/dashboard/_graph_svg.html)."""

from collections.abc import Mapping

from django import template

from leads.counts import NODE_COUNT_KEYS

register = template.Library()


@register.filter
def counts_for(counts: Mapping | None, key: str) -> dict[str, int]:
    """One node's live counts from `node_counts(...)`, every count present (0 when missing)."""
    found = (counts or {}).get(key) or {}
    return {name: found.get(name, 0) for name in NODE_COUNT_KEYS}
