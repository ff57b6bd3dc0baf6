"""The error report of a lead file: its rejected rows as CSV (row number, reason, values)."""

from collections.abc import Iterator

from leads.export import csv_line_writer, neutralise
from leads.models import LeadFile


def stream_rejections_csv(lead_file: LeadFile, chunk: int = 2000) -> Iterator[str]:
    writer = csv_line_writer()
    yield writer.writerow(["row", "reason", *map(neutralise, lead_file.columns)])
    after = 0
    while True:
        page = list(
            lead_file.rejections.filter(row_number__gt=after)
            .order_by("row_number")
            .values_list("row_number", "reason", "values")[:chunk]
        )
        if not page:
            return
        for row_number, reason, values in page:
            yield writer.writerow([row_number, neutralise(reason), *map(neutralise, values)])
        after = page[-1][0]
