"""CSV export of a workflow's leads, streamed in constant memory (keyset chunks).

Spreadsheet formula injection: a cell starting with =, +, -, @, tab or CR is prefixed with a
single quote, so a spreadsheet shows it as text. The phone column is the exception: it is
always E.164 (a '+' and digits only, validated on the way in), which cannot carry a formula,
so it is written as stored and stays usable for dialling and matching.
"""

import csv
import json
from collections.abc import Iterator

from django.db.models import OuterRef, QuerySet, Subquery
from django.http import StreamingHttpResponse

from calls.models import CallLog

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
BASE_COLUMNS = [
    "id",
    "phone",
    "name",
    "status",
    "current_node",
    "needs_review",
    "review_reason",
    "entered_at",
    "release_at",
    "last_call_status",
    "last_call_end_reason",
]


def neutralise(value: object) -> str:
    """A cell's text, safe to open in a spreadsheet (structured values as JSON)."""
    if value is None:
        text = ""
    elif isinstance(value, dict | list | bool):
        text = json.dumps(value, ensure_ascii=False)
    else:
        text = str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_response(lines: Iterator[str], filename: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def csv_line_writer():
    """A csv writer whose writerow returns the line, for streaming responses."""
    return csv.writer(_Echo())


def with_last_call(queryset: QuerySet) -> QuerySet:
    """Annotate each lead with its latest call (id, status, end_reason, post-call fields)."""
    last = CallLog.objects.filter(lead=OuterRef("pk")).order_by("-id")
    return queryset.select_related("execution", "execution__node").annotate(
        last_call_id=Subquery(last.values("id")[:1]),
        last_call_status=Subquery(last.values("status")[:1]),
        last_call_end_reason=Subquery(last.values("end_reason")[:1]),
        last_call_post_call=Subquery(last.values("post_call")[:1]),
    )


def stream_leads_csv(
    queryset: QuerySet, *, field_names: list[str], chunk: int = 2000
) -> Iterator[str]:
    """Rows of the filtered leads: lead fields, execution, last call and post-call fields."""
    writer = csv_line_writer()
    post_call_names = ["post_call_summary", "post_call_sentiment", "post_call_extracted"]
    yield writer.writerow(BASE_COLUMNS + [f"field_{n}" for n in field_names] + post_call_names)
    after = 0
    rows = with_last_call(queryset).order_by("id")
    while True:
        page = list(rows.filter(id__gt=after)[:chunk])
        if not page:
            return
        for lead in page:
            execution = getattr(lead, "execution", None)
            post_call = lead.last_call_post_call or {}
            if isinstance(post_call, str):  # SQLite hands JSON back as text from a subquery
                post_call = json.loads(post_call or "{}")
            cells = [
                lead.pk,
                lead.phone,
                neutralise(lead.name),
                execution.status if execution else "pending",
                neutralise(execution.node.key) if execution else "",
                "yes" if execution and execution.needs_review else "no",
                neutralise(execution.review_reason) if execution else "",
                execution.entered_at.isoformat() if execution else "",
                execution.release_at.isoformat() if execution and execution.release_at else "",
                lead.last_call_status or "",
                neutralise(lead.last_call_end_reason),
                *[neutralise((lead.fields or {}).get(n)) for n in field_names],
                neutralise(post_call.get("summary")),
                neutralise(post_call.get("sentiment")),
                neutralise(post_call.get("extracted")),
            ]
            yield writer.writerow(cells)
        after = page[-1].pk


def field_names_of(queryset: QuerySet, sample: int = 1000) -> list[str]:
    """The lead field names to export as columns, read from the first leads."""
    names: dict[str, None] = {}
    for fields in queryset.order_by("id").values_list("fields", flat=True)[:sample]:
        for name in fields or {}:
            names.setdefault(name, None)
    return list(names)
