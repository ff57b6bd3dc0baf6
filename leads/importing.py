"""Importing a lead file (CSV) in constant memory, batch by batch (issue: lead files).

File-level problems (not a CSV, empty, no phone column) fail the whole file and import
nothing. Row-level problems (bad phone, empty row, over-long value, duplicate) reject that row
with its number — the header is row 1, as in a spreadsheet — and the rest is imported. Each
batch is one transaction that also advances the file's checkpoint (`rows_processed`), so a
crash loses at most the batch in flight, and running the import again continues after the
last committed batch without duplicating anything.
"""

import codecs
import csv
import json
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from leads.models import Lead, LeadFile, LeadFileRejection, LeadFileStatus
from leads.phones import InvalidPhone, normalize_phone

log = logging.getLogger(__name__)

PHONE_ALIASES = {
    "phone",
    "phonenumber",
    "phoneno",
    "mobile",
    "mobilenumber",
    "mobilephone",
    "cell",
    "cellphone",
    "telephone",
    "tel",
    "msisdn",
    "number",
}
NAME_ALIASES = {"name", "fullname", "leadname", "contactname", "contact"}
MAX_NAME = 200
MAX_VALUE = 1000
MAX_PHONE_TEXT = 64
_SAMPLE = 64 * 1024
# Normalising phone numbers is the import's heaviest CPU work (~45 µs a number); from this
# many rows a file is worth a second process.
_POOL_FROM_ROWS = 20_000


class FileProblem(Exception):
    """The whole file is unusable; nothing is imported."""


class ImportOvertaken(Exception):
    """Another run of the same import committed this batch first."""


def _key(header: str) -> str:
    return "".join(ch for ch in header.lower() if ch.isalnum())


@dataclass
class Layout:
    encoding: str
    delimiter: str
    header: list[str]
    phone_index: int
    name_index: int | None


def _detect_encoding(path: str) -> str:
    """UTF-8 (with or without BOM) when the whole file decodes, else Latin-1.

    Reads the whole file once (in 1 MB chunks): a NUL byte anywhere means it is not text.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    encoding = "utf-8-sig"
    with open(path, "rb") as raw:
        head = raw.read(_SAMPLE)
        if not head.strip():
            raise FileProblem("The file is empty.")
        for chunk in (head, *iter(lambda: raw.read(1 << 20), b"")):
            if b"\x00" in chunk:
                raise FileProblem("This is not a CSV file: it contains binary data.")
            if encoding == "utf-8-sig":
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError:
                    encoding = "latin-1"
    if encoding == "utf-8-sig":
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            encoding = "latin-1"
    return encoding


def read_layout(path: str) -> Layout:
    encoding = _detect_encoding(path)
    with open(path, newline="", encoding=encoding) as text:
        sample = text.read(_SAMPLE)
    try:
        delimiter = (
            csv.Sniffer().sniff(sample.split("\n", 20)[0] + "\n", delimiters=",;\t").delimiter
        )
    except csv.Error:
        delimiter = ","
    header_row = next(csv.reader([sample.split("\n", 1)[0].rstrip("\r")], delimiter=delimiter), [])
    header = [h.strip() for h in header_row]
    if not any(header):
        raise FileProblem("The file has no header row: the first row must name the columns.")
    keys = [_key(h) for h in header]
    phone_index = next((i for i, k in enumerate(keys) if k in PHONE_ALIASES), None)
    if phone_index is None:
        raise FileProblem(
            "The file has no phone column: name one column 'phone' (or phone_number, mobile, "
            f"telephone). Columns found: {', '.join(h for h in header if h) or 'none'}."
        )
    name_index = next((i for i, k in enumerate(keys) if k in NAME_ALIASES), None)
    return Layout(encoding, delimiter, header, phone_index, name_index)


def _rows(path: str, layout: Layout) -> Iterator[list[str]]:
    with open(path, newline="", encoding=layout.encoding) as text:
        reader = csv.reader(text, delimiter=layout.delimiter)
        next(reader, None)
        yield from reader


def count_rows(path: str, layout: Layout) -> int:
    return sum(1 for _ in _rows(path, layout))


def _normalise(raw: str) -> str | tuple[str]:
    """The E.164 number, or a 1-tuple holding the reason it is invalid (picklable)."""
    try:
        return normalize_phone(raw)
    except InvalidPhone as exc:
        return (str(exc),)


@dataclass
class Checked:
    good: list[tuple[int, str, str, dict, list[str]]]  # row number, phone, name, fields, row
    rejected: list[tuple[int, list[str], str]]
    # Rows repeating a phone met earlier in the batch: rejected once the batch knows which row
    # really holds that phone (an earlier batch's, or the first in this one).
    repeats: list[tuple[int, str, list[str]]] = field(default_factory=list)


def check_rows(
    rows: list[tuple[int, list[str]]], layout: Layout, normalise_all: Callable[[list[str]], list]
) -> Checked:
    """Per-row validation, except duplicates against the database."""
    width = len(layout.header)
    limits = [
        MAX_NAME
        if i == layout.name_index
        else MAX_PHONE_TEXT
        if i == layout.phone_index
        else MAX_VALUE
        for i in range(width)
    ]
    rejected, candidates = [], []
    for number, row in rows:
        if not any(cell.strip() for cell in row):
            rejected.append((number, row, "empty row"))
            continue
        if len(row) > width:
            rejected.append(
                (number, row, f"the row has {len(row)} values but the header has {width} columns")
            )
            continue
        cells = [c.strip() for c in row] + [""] * (width - len(row))
        name = cells[layout.name_index] if layout.name_index is not None else ""
        too_long = next((i for i, c in enumerate(cells) if len(c) > limits[i]), None)
        if too_long is not None:
            column = layout.header[too_long] or f"column {too_long + 1}"
            rejected.append(
                (number, row, f"'{column}' is longer than {limits[too_long]} characters")
            )
            continue
        raw_phone = cells[layout.phone_index]
        if not raw_phone:
            rejected.append((number, row, "the phone number is missing"))
            continue
        fields = {
            h: c
            for i, (h, c) in enumerate(zip(layout.header, cells, strict=True))
            if i not in (layout.phone_index, layout.name_index) and h and c
        }
        candidates.append((number, row, raw_phone, name, fields))
    normalised = normalise_all([c[2] for c in candidates])
    good, repeats, seen = [], [], set()
    for (number, row, _raw, name, fields), phone in zip(candidates, normalised, strict=True):
        if isinstance(phone, tuple):
            rejected.append((number, row, phone[0]))
        elif phone in seen:
            repeats.append((number, phone, row))
        else:
            seen.add(phone)
            good.append((number, phone, name, fields, row))
    rejected.sort()
    return Checked(good, rejected, repeats)


def _insert_postgresql(lead_file: LeadFile, good, now) -> set[str]:
    """COPY the batch into a temporary table, then insert it, skipping phones the workflow
    already has (the unique constraint decides, so a concurrent insert cannot slip through)."""
    with connection.cursor() as cursor:
        # A lost batch is redone from the checkpoint committed with it: no need to wait for
        # this transaction's WAL flush.
        cursor.execute("SET LOCAL synchronous_commit = off")
        cursor.execute(
            "CREATE TEMP TABLE IF NOT EXISTS lead_import (phone text, name text, fields jsonb, "
            "row_number integer) ON COMMIT DELETE ROWS"
        )
        copy_sql = "COPY lead_import (phone, name, fields, row_number) FROM STDIN"
        with cursor.cursor.copy(copy_sql) as copy:
            for number, phone, name, fields, _row in good:
                copy.write_row((phone, name, json.dumps(fields), number))
        cursor.execute(
            f"INSERT INTO {Lead._meta.db_table} (workflow_id, phone, name, fields, lead_file_id, "
            "lead_file_row, created_at) SELECT %s, phone, name, fields, %s, row_number, %s "
            "FROM lead_import ON CONFLICT (workflow_id, phone) DO NOTHING RETURNING phone",
            [lead_file.workflow_id, lead_file.pk, now],
        )
        return {row[0] for row in cursor.fetchall()}


def _insert_portable(lead_file: LeadFile, good, now) -> set[str]:
    """SQLite: the transaction holds the database's write lock, so check, then insert."""
    existing = set(
        Lead.objects.filter(
            workflow_id=lead_file.workflow_id, phone__in=[g[1] for g in good]
        ).values_list("phone", flat=True)
    )
    fresh = [g for g in good if g[1] not in existing]
    Lead.objects.bulk_create(
        [
            Lead(
                workflow_id=lead_file.workflow_id,
                phone=phone,
                name=name,
                fields=fields,
                lead_file_id=lead_file.pk,
                lead_file_row=number,
                created_at=now,
            )
            for number, phone, name, fields, _row in fresh
        ],
        batch_size=2000,
    )
    return {g[1] for g in fresh}


def _duplicate_reasons(lead_file: LeadFile, phones: list[str]) -> dict[str, str]:
    owners = Lead.objects.filter(workflow_id=lead_file.workflow_id, phone__in=phones)
    reasons = {}
    for phone, file_id, row in owners.values_list("phone", "lead_file_id", "lead_file_row"):
        if file_id == lead_file.pk and row is not None:
            reasons[phone] = f"duplicate: {phone} repeats row {row}"
        else:
            reasons[phone] = f"duplicate: {phone} is already a lead of this workflow"
    return reasons


def commit_batch(lead_file: LeadFile, checked: Checked, last_row_index: int) -> None:
    """Store one batch's leads and rejections and advance the checkpoint, atomically."""
    now = timezone.now()
    rejected = list(checked.rejected)
    batch_rows = len(checked.good) + len(checked.rejected) + len(checked.repeats)
    with transaction.atomic():
        # A re-run racing the original import (say, re-queued while the first was only slow):
        # the file's row lock lets exactly one of them write each batch.
        checkpoint = (
            LeadFile.objects.select_for_update()
            .filter(pk=lead_file.pk)
            .values_list("rows_processed", flat=True)
            .get()
        )
        if checkpoint != last_row_index - batch_rows:
            raise ImportOvertaken(f"lead file {lead_file.pk} is imported by another worker")
        insert = _insert_postgresql if connection.vendor == "postgresql" else _insert_portable
        inserted = insert(lead_file, checked.good, now) if checked.good else set()
        duplicates = [(g[0], g[1], g[4]) for g in checked.good if g[1] not in inserted]
        duplicates += checked.repeats
        if duplicates:
            # Asked after the insert, so a phone first met in this batch names its stored row.
            reasons = _duplicate_reasons(lead_file, [phone for _n, phone, _row in duplicates])
            rejected += [(number, row, reasons[phone]) for number, phone, row in duplicates]
        LeadFileRejection.objects.bulk_create(
            [
                LeadFileRejection(
                    lead_file=lead_file, row_number=number, values=values, reason=reason
                )
                for number, values, reason in rejected
            ],
            ignore_conflicts=True,
            batch_size=2000,
        )
        LeadFile.objects.filter(pk=lead_file.pk).update(
            rows_processed=last_row_index,
            rows_imported=F("rows_imported") + len(inserted),
            rows_rejected=F("rows_rejected") + len(rejected),
        )


def _batch_size(total: int) -> int:
    # Small files still show a moving progress bar; big ones use big batches.
    return max(200, min(5000, total // 20 or 1))


def import_lead_file(lead_file_id: int) -> LeadFile:
    """Import (or continue importing) one uploaded file. Safe to run again after a crash."""
    lead_file = LeadFile.objects.get(pk=lead_file_id)
    if lead_file.status in (
        LeadFileStatus.COMPLETED,
        LeadFileStatus.COMPLETED_WITH_ERRORS,
        LeadFileStatus.FAILED,
    ):
        return lead_file
    path = lead_file.file.path
    try:
        if lead_file.file.size > settings.DIALNEXA_MAX_UPLOAD_BYTES:
            raise FileProblem(
                f"The file is larger than the "
                f"{settings.DIALNEXA_MAX_UPLOAD_BYTES // (1024 * 1024)} MB limit."
            )
        layout = read_layout(path)
        total = count_rows(path, layout)
        if total == 0:
            raise FileProblem("The file has a header row but no leads.")
    except (FileProblem, csv.Error, OSError) as exc:
        LeadFile.objects.filter(pk=lead_file.pk).update(
            status=LeadFileStatus.FAILED, error=str(exc), finished_at=timezone.now()
        )
        lead_file.refresh_from_db()
        return lead_file
    LeadFile.objects.filter(pk=lead_file.pk).update(
        status=LeadFileStatus.PROCESSING,
        rows_total=total,
        encoding=layout.encoding,
        delimiter=layout.delimiter,
        columns=layout.header,
    )
    done = lead_file.rows_processed  # rows already committed by an earlier, interrupted run
    size = _batch_size(total)
    pool = ProcessPoolExecutor(max_workers=2) if total - done >= _POOL_FROM_ROWS else None
    try:

        def normalise_all(raws: list[str]) -> list:
            if pool is None:
                return [_normalise(r) for r in raws]
            return list(pool.map(_normalise, raws, chunksize=500))

        batch: list[tuple[int, list[str]]] = []
        index = 0
        for index, row in enumerate(_rows(path, layout), start=1):
            if index <= done:
                continue
            batch.append((index + 1, row))  # row number: the header is row 1
            if len(batch) >= size:
                commit_batch(lead_file, check_rows(batch, layout, normalise_all), index)
                batch = []
        if batch:
            commit_batch(lead_file, check_rows(batch, layout, normalise_all), index)
    except ImportOvertaken:
        log.info("lead file %s: another run is importing it; this one stops", lead_file.pk)
        lead_file.refresh_from_db()
        return lead_file
    finally:
        if pool is not None:
            pool.shutdown()
    lead_file.refresh_from_db()
    lead_file.status = (
        LeadFileStatus.COMPLETED_WITH_ERRORS
        if lead_file.rows_rejected
        else LeadFileStatus.COMPLETED
    )
    lead_file.finished_at = timezone.now()
    lead_file.save(update_fields=["status", "finished_at"])
    log.info(
        "lead file %s: %s imported, %s rejected",
        lead_file.pk,
        lead_file.rows_imported,
        lead_file.rows_rejected,
    )
    return lead_file
