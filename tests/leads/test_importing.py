"""Importing lead files (issue "Lead files"): encodings, delimiters, headers, per-row
rejections with their row numbers, file-level failures, checkpointed batches, progress, the
error report, and phone normalisation."""

import csv
import io
import threading
import zipfile

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connections, transaction

from engine.lead_files import accept_upload
from leads import importing
from leads.importing import import_lead_file
from leads.models import Lead, LeadFile, LeadFileRejection, LeadFileStatus
from leads.rejections import stream_rejections_csv
from tests.factories import LeadFactory, WorkflowFactory


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


def csv_bytes(rows, *, delimiter=",", encoding="utf-8") -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter).writerows(rows)
    return buffer.getvalue().encode(encoding)


def stored_file(workflow, content: bytes, name: str = "leads.csv") -> LeadFile:
    lead_file = LeadFile(workflow=workflow, original_name=name)
    lead_file.file.save(name, ContentFile(content), save=False)
    lead_file.save()
    return lead_file


def run_import(workflow, content: bytes, name: str = "leads.csv") -> LeadFile:
    return import_lead_file(stored_file(workflow, content, name).pk)


def leads_of(workflow) -> list[tuple]:
    return list(
        Lead.objects.filter(workflow=workflow).order_by("id").values_list("phone", "name", "fields")
    )


def rejections_of(lead_file) -> list[tuple[int, str]]:
    return list(lead_file.rejections.order_by("row_number").values_list("row_number", "reason"))


def us(i: int) -> str:
    """A distinct valid US number, written the way people type it."""
    return f"(202) 555-{i:04d}"


def us_e164(i: int) -> str:
    return f"+1202555{i:04d}"


# --- encodings ------------------------------------------------------------------------------

NAMES = ["José Muñoz", "Begoña Ibáñez", "Zoë Saldaña"]


def test_utf8_with_bom_the_bom_does_not_hide_the_phone_column(workflow):
    rows = [["phone", "name", "city"]] + [[us(i), name, "Málaga"] for i, name in enumerate(NAMES)]

    lead_file = run_import(workflow, csv_bytes(rows, encoding="utf-8-sig"))

    assert lead_file.status == LeadFileStatus.COMPLETED, lead_file.error
    assert lead_file.encoding == "utf-8-sig"
    assert lead_file.columns == ["phone", "name", "city"]  # no '\ufeff' glued to 'phone'
    assert leads_of(workflow) == [
        (us_e164(i), name, {"city": "Málaga"}) for i, name in enumerate(NAMES)
    ]


def test_utf8_without_bom_keeps_every_character(workflow):
    names = [*NAMES, "Łukasz Żółć", "李雷"]
    rows = [["phone", "name"]] + [[us(i), name] for i, name in enumerate(names)]

    lead_file = run_import(workflow, csv_bytes(rows, encoding="utf-8"))

    assert lead_file.status == LeadFileStatus.COMPLETED, lead_file.error
    assert [(p, n) for p, n, _ in leads_of(workflow)] == [
        (us_e164(i), name) for i, name in enumerate(names)
    ]


def test_latin1_names_come_through_with_their_accents(workflow):
    rows = [["phone", "name", "city"]] + [[us(i), name, "A Coruña"] for i, name in enumerate(NAMES)]
    content = csv_bytes(rows, encoding="latin-1")
    with pytest.raises(UnicodeDecodeError):
        content.decode("utf-8")  # really not UTF-8

    lead_file = run_import(workflow, content)

    assert lead_file.status == LeadFileStatus.COMPLETED, lead_file.error
    assert lead_file.encoding == "latin-1"
    assert leads_of(workflow) == [
        (us_e164(i), name, {"city": "A Coruña"}) for i, name in enumerate(NAMES)
    ]


def test_latin1_is_detected_when_the_first_accent_is_far_past_the_sniffed_sample(workflow):
    # ~70 KB of pure ASCII first: the encoding must be decided on the whole file.
    rows = [["phone", "name", "notes"]]
    rows += [[us(i), f"Lead {i}", "x" * 1000] for i in range(70)]
    rows += [[us(70), "Iñaki Núñez", "último"]]
    content = csv_bytes(rows, encoding="latin-1")
    assert content.index("Iñaki".encode("latin-1")) > 64 * 1024

    lead_file = run_import(workflow, content)

    assert lead_file.status == LeadFileStatus.COMPLETED, lead_file.error
    assert lead_file.encoding == "latin-1"
    assert lead_file.rows_imported == 71
    assert Lead.objects.get(workflow=workflow, phone=us_e164(70)).name == "Iñaki Núñez"
    assert Lead.objects.get(workflow=workflow, phone=us_e164(70)).fields == {"notes": "último"}


# --- delimiters and headers -----------------------------------------------------------------


@pytest.mark.parametrize("delimiter", [",", ";", "\t"], ids=["comma", "semicolon", "tab"])
def test_delimiters_are_detected(workflow, delimiter):
    rows = [
        ["name", "phone", "company"],
        ["Ann Lee", us(1), "Smith, Jones & Co"],  # a comma inside a value
        ["Bea Kim", us(2), "Semi; Colon Ltd"],  # a semicolon inside a value
    ]

    lead_file = run_import(workflow, csv_bytes(rows, delimiter=delimiter))

    assert lead_file.status == LeadFileStatus.COMPLETED, lead_file.error
    assert lead_file.delimiter == delimiter
    assert lead_file.columns == ["name", "phone", "company"]
    assert leads_of(workflow) == [
        (us_e164(1), "Ann Lee", {"company": "Smith, Jones & Co"}),
        (us_e164(2), "Bea Kim", {"company": "Semi; Colon Ltd"}),
    ]


@pytest.mark.parametrize(
    "header",
    [
        b"phone_number,sim_status,timezone",
        b"Mobile,sim_status,timezone",
        b'"Phone","sim_status","timezone"',
        b"telephone,sim_status,timezone",
        b"Phone Number;sim_status;timezone",
    ],
    ids=["phone_number", "Mobile", "quoted-Phone", "telephone", "Phone-Number-semicolon"],
)
def test_phone_header_aliases_and_other_columns_become_fields(workflow, header):
    delimiter = b";" if b";" in header else b","
    body = delimiter.join([b"(202) 555-0143", b"busy", b"Europe/London"]) + b"\r\n"
    body += delimiter.join([b"+44 20 7946 0958", b"completed", b""]) + b"\r\n"

    lead_file = run_import(workflow, header + b"\r\n" + body)

    assert lead_file.status == LeadFileStatus.COMPLETED, lead_file.error
    # No name column: the name is optional; empty cells are not stored as fields.
    assert leads_of(workflow) == [
        ("+12025550143", "", {"sim_status": "busy", "timezone": "Europe/London"}),
        ("+442079460958", "", {"sim_status": "completed"}),
    ]


def test_name_column_aliases_and_cells_are_trimmed(workflow):
    content = b"Full Name,Cell,plan\r\n  Ann Lee  , (202) 555-0143 ,  gold \r\n"

    lead_file = run_import(workflow, content)

    assert lead_file.status == LeadFileStatus.COMPLETED, lead_file.error
    assert leads_of(workflow) == [("+12025550143", "Ann Lee", {"plan": "gold"})]


# --- rejections -----------------------------------------------------------------------------


def test_every_rejection_reason_names_its_row_and_good_rows_are_still_imported(workflow):
    LeadFactory(workflow=workflow, phone="+14155550123", name="Already here")
    other = WorkflowFactory(workspace=workflow.workspace)
    LeadFactory(workflow=other, phone="+13125550100")  # another workflow: not a duplicate
    rows = [
        ["phone", "name", "notes"],  # row 1
        [us(143), "Ann", "first"],  # 2: fine
        ["+1 555", "Bob", ""],  # 3: invalid number
        ["", "Carl", "no phone"],  # 4: missing phone
        ["", " ", ""],  # 5: empty row (blank cells)
        [],  # 6: empty row (a blank line)
        [us(144), "N" * 201, ""],  # 7: over-long name
        [us(145), "Dan", "x" * 1001],  # 8: over-long value
        [us(146), "Eve", "a", "b"],  # 9: too many values
        ["+1 202 555 0143", "Ann again", ""],  # 10: duplicate of row 2
        ["(415) 555-0123", "Fay", ""],  # 11: already a lead of this workflow
        ["9" * 65, "Gil", ""],  # 12: an over-long phone cell
        ["call me", "Hal", ""],  # 13: not a number at all
        ["(312) 555-0100", "Ida", ""],  # 14: fine (only in another workflow)
        [us(147), "Jo"],  # 15: fine with a missing trailing value
    ]

    lead_file = run_import(workflow, csv_bytes(rows))

    assert rejections_of(lead_file) == [
        (3, '"+1 555" is not a valid phone number'),
        (4, "the phone number is missing"),
        (5, "empty row"),
        (6, "empty row"),
        (7, "'name' is longer than 200 characters"),
        (8, "'notes' is longer than 1000 characters"),
        (9, "the row has 4 values but the header has 3 columns"),
        (10, "duplicate: +12025550143 repeats row 2"),
        (11, "duplicate: +14155550123 is already a lead of this workflow"),
        (12, "'phone' is longer than 64 characters"),
        (13, '"call me" is not a valid phone number'),
    ]
    # The original values are kept, as read.
    values = dict(lead_file.rejections.values_list("row_number", "values"))
    assert values[3] == ["+1 555", "Bob", ""]
    assert values[6] == []
    assert values[9] == [us(146), "Eve", "a", "b"]
    assert leads_of(workflow)[1:] == [
        ("+12025550143", "Ann", {"notes": "first"}),
        ("+13125550100", "Ida", {}),
        (us_e164(147), "Jo", {}),
    ]
    assert Lead.objects.get(workflow=workflow, phone="+14155550123").name == "Already here"
    assert (lead_file.status, lead_file.rows_total, lead_file.rows_processed) == (
        LeadFileStatus.COMPLETED_WITH_ERRORS,
        14,
        14,
    )
    assert (lead_file.rows_imported, lead_file.rows_rejected) == (3, 11)
    assert Lead.objects.filter(lead_file=lead_file).count() == 3


def test_limits_are_inclusive(workflow):
    rows = [["phone", "name", "notes"], [us(1), "N" * 200, "x" * 1000]]

    lead_file = run_import(workflow, csv_bytes(rows))

    assert lead_file.status == LeadFileStatus.COMPLETED
    assert leads_of(workflow) == [(us_e164(1), "N" * 200, {"notes": "x" * 1000})]


def test_a_duplicate_in_a_later_batch_names_the_earlier_row(workflow):
    """Batches hold 200 rows here; the duplicate of row 6 sits at row 302, in batch 2.

    BUG: the reason says 'repeats an earlier row of this file' without the row number, while
    a duplicate inside the same batch says 'repeats row N'. In a big file (5,000-row batches)
    most duplicates are across batches, and the report cannot say which row they repeat.
    """
    rows = [["phone", "name"]] + [[us(i), f"Lead {i}"] for i in range(300)]
    rows.append([us(4), "the same as row 6"])

    lead_file = run_import(workflow, csv_bytes(rows))

    assert lead_file.rows_imported == 300
    assert rejections_of(lead_file) == [(302, f"duplicate: {us_e164(4)} repeats row 6")]


# --- file-level failures: nothing is imported -------------------------------------------------


def _xlsx_like() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/worksheets/sheet1.xml", "<worksheet/>")
    return buffer.getvalue()


FILE_PROBLEMS = {
    "xlsx": (_xlsx_like(), "This is not a CSV file: it contains binary data."),
    "nul-bytes": (
        b"phone,name\n+12025550143,Ann\x00\x01\x02\n",
        "This is not a CSV file: it contains binary data.",
    ),
    "empty": (b"", "The file is empty."),
    "blank-lines-only": (b"  \r\n\r\n\t\n", "The file is empty."),
    "header-only": (b"phone,name,plan\r\n", "The file has a header row but no leads."),
    "no-phone-column": (
        b"Name,E-mail,Company\r\nAnn,ann@example.com,Acme\r\n",
        "The file has no phone column: name one column 'phone' (or phone_number, mobile, "
        "telephone). Columns found: Name, E-mail, Company.",
    ),
}


@pytest.mark.parametrize(("content", "message"), FILE_PROBLEMS.values(), ids=FILE_PROBLEMS.keys())
def test_file_level_problems_fail_the_file_and_import_nothing(workflow, content, message):
    lead_file = stored_file(workflow, content)
    assert lead_file.status == LeadFileStatus.UPLOADED

    result = import_lead_file(lead_file.pk)

    lead_file.refresh_from_db()
    assert result.status == lead_file.status == LeadFileStatus.FAILED
    assert lead_file.error == message
    assert lead_file.finished_at is not None
    assert (lead_file.rows_imported, lead_file.rows_rejected, lead_file.rows_processed) == (0, 0, 0)
    assert not Lead.objects.exists()
    assert not LeadFileRejection.objects.exists()


def test_a_nul_byte_past_the_first_64_kb_still_fails_the_whole_file(workflow):
    """BUG: only the first 64 KB are checked for binary data.

    A NUL byte later in the file is not detected: on SQLite the row is imported with a NUL in
    its name; on PostgreSQL the batch's COPY raises DataError, the import crashes and the file
    stays 'processing' for ever (every re-run crashes at the same batch), with the earlier
    batches already imported.
    """
    rows = [["phone", "name", "notes"]] + [[us(i), f"Lead {i}", "x" * 900] for i in range(80)]
    content = csv_bytes(rows) + b"+16462000000,Nul\x00Name,\r\n"
    assert content.index(b"\x00") > 64 * 1024
    lead_file = stored_file(workflow, content)

    try:
        result = import_lead_file(lead_file.pk)
    except Exception as exc:  # PostgreSQL: the COPY of the batch fails
        pytest.fail(f"the import crashed instead of failing the file: {exc!r}")

    assert result.status == LeadFileStatus.FAILED
    assert result.error == "This is not a CSV file: it contains binary data."
    assert not Lead.objects.exists()


def test_a_file_over_the_size_limit_fails_and_imports_nothing(workflow, settings):
    settings.DIALNEXA_MAX_UPLOAD_BYTES = 1024 * 1024
    rows = [["phone", "name", "notes"]] + [[us(i), f"Lead {i}", "x" * 900] for i in range(1200)]
    content = csv_bytes(rows)
    assert len(content) > 1024 * 1024

    lead_file = run_import(workflow, content)

    assert lead_file.status == LeadFileStatus.FAILED
    assert lead_file.error == "The file is larger than the 1 MB limit."
    assert lead_file.rows_total == 0
    assert not Lead.objects.exists()
    assert not LeadFileRejection.objects.exists()


@pytest.mark.parametrize(("margin", "status"), [(0, "completed"), (-1, "failed")])
def test_the_size_limit_is_inclusive(workflow, settings, margin, status):
    content = csv_bytes([["phone"], [us(1)]])
    settings.DIALNEXA_MAX_UPLOAD_BYTES = len(content) + margin

    lead_file = run_import(workflow, content)

    assert lead_file.status == status
    assert Lead.objects.count() == (1 if status == "completed" else 0)


# --- batches, checkpoints, progress ---------------------------------------------------------


def _file_of_500(workflow) -> tuple[LeadFile, set[str]]:
    """500 data rows (rows 2..501), batches of 200; four bad rows in three batches."""
    rows = [["phone", "name", "plan"]]
    for i in range(500):
        rows.append([us(i), f"Lead {i}", "gold" if i % 2 else "silver"])
    rows[11][0] = "+1 555"  # row 12, batch 1: invalid
    rows[251][0] = "12"  # row 252, batch 2: invalid
    rows[301][0] = us(260)  # row 302, batch 2: repeats row 262 in the same batch
    rows[451][0] = us(5)  # row 452, batch 3: repeats row 7 of batch 1
    expected = {us_e164(i) for i in range(500)} - {us_e164(10), us_e164(250)}
    expected -= {us_e164(300), us_e164(450)}
    return stored_file(workflow, csv_bytes(rows)), expected


class Crash(Exception):
    pass


def seen_from_another_connection(lead_file_id: int) -> tuple[int, int]:
    result = []

    def look():
        try:
            lead_file = LeadFile.objects.get(pk=lead_file_id)
            result.append((lead_file.rows_processed, lead_file.leads.count()))
        finally:
            connections.close_all()

    thread = threading.Thread(target=look)
    thread.start()
    thread.join()
    return result[0]


@pytest.mark.django_db(transaction=True)
def test_a_crash_between_batches_resumes_without_duplicating_anything(workflow, monkeypatch):
    lead_file, expected = _file_of_500(workflow)
    real = importing.commit_batch
    calls = []

    def crash_in_second_batch(lead_file, checked, last_row_index):
        calls.append(last_row_index)
        if len(calls) == 2:
            # The batch's work is done and then lost, as when the worker dies before COMMIT.
            with transaction.atomic():
                real(lead_file, checked, last_row_index)
                raise Crash("worker killed")
        real(lead_file, checked, last_row_index)

    monkeypatch.setattr(importing, "commit_batch", crash_in_second_batch)
    with pytest.raises(Crash):
        import_lead_file(lead_file.pk)

    # The first batch is committed, with its checkpoint; the second left no trace.
    lead_file.refresh_from_db()
    assert (lead_file.status, lead_file.rows_total, lead_file.rows_processed) == (
        LeadFileStatus.PROCESSING,
        500,
        200,
    )
    assert (lead_file.rows_imported, lead_file.rows_rejected) == (199, 1)
    assert Lead.objects.count() == 199
    assert rejections_of(lead_file) == [(12, '"+1 555" is not a valid phone number')]
    # ... committed for real: another connection sees the checkpoint and the 199 leads.
    assert seen_from_another_connection(lead_file.pk) == (200, 199)

    monkeypatch.setattr(importing, "commit_batch", real)
    result = import_lead_file(lead_file.pk)

    assert result.status == LeadFileStatus.COMPLETED_WITH_ERRORS
    phones = list(Lead.objects.filter(workflow=workflow).values_list("phone", flat=True))
    assert len(phones) == len(set(phones)) == 496
    assert set(phones) == expected
    assert Lead.objects.filter(lead_file=lead_file).count() == 496
    assert [r for r, _ in rejections_of(result)] == [12, 252, 302, 452]
    reasons = dict(rejections_of(result))
    assert reasons[252] == '"12" is not a valid phone number'
    assert reasons[302] == f"duplicate: {us_e164(260)} repeats row 262"
    assert reasons[452].startswith(f"duplicate: {us_e164(5)} ")
    assert result.rows_processed == result.rows_total == 500
    assert (result.rows_imported, result.rows_rejected) == (496, 4)

    # Running it once more changes nothing.
    import_lead_file(lead_file.pk)
    assert Lead.objects.count() == 496
    assert LeadFileRejection.objects.count() == 4
    assert LeadFile.objects.get(pk=lead_file.pk).rows_imported == 496


@pytest.fixture
def batch_spy(monkeypatch):
    """Records the file's stored state before and after every batch commit."""
    real = importing.commit_batch
    seen = []

    def spy(lead_file, checked, last_row_index):
        before = LeadFile.objects.get(pk=lead_file.pk)
        real(lead_file, checked, last_row_index)
        after = LeadFile.objects.get(pk=lead_file.pk)
        seen.append(
            {
                "status": before.status,
                "rows_total": before.rows_total,
                "before": before.rows_processed,
                "after": after.rows_processed,
                "imported": after.rows_imported,
                "rejected": after.rows_rejected,
                "batch": len(checked.good) + len(checked.rejected) + len(checked.repeats),
                "leads": Lead.objects.filter(lead_file=lead_file).count(),
            }
        )

    monkeypatch.setattr(importing, "commit_batch", spy)
    return seen


def test_progress_rows_total_first_then_rows_processed_per_batch(workflow, batch_spy):
    lead_file, _ = _file_of_500(workflow)
    assert (lead_file.status, lead_file.rows_total, lead_file.rows_processed) == ("uploaded", 0, 0)

    result = import_lead_file(lead_file.pk)

    # The total is known before the first batch; every batch moves the checkpoint forward.
    assert [s["status"] for s in batch_spy] == ["processing"] * 3
    assert [s["rows_total"] for s in batch_spy] == [500] * 3
    assert [(s["before"], s["after"]) for s in batch_spy] == [(0, 200), (200, 400), (400, 500)]
    assert [s["batch"] for s in batch_spy] == [200, 200, 100]
    assert [(s["imported"], s["rejected"]) for s in batch_spy] == [(199, 1), (397, 3), (496, 4)]
    # The leads of a batch are stored with its checkpoint, not later.
    assert [s["leads"] for s in batch_spy] == [199, 397, 496]
    assert result.rows_processed == result.rows_total == 500
    assert result.status == LeadFileStatus.COMPLETED_WITH_ERRORS
    assert result.finished_at is not None


def test_status_uploaded_processing_completed(workflow, manager, batch_spy):
    upload = SimpleUploadedFile("leads.csv", csv_bytes([["phone"], [us(1)], [us(2)]]))
    lead_file = accept_upload(workflow.pk, upload, manager)
    assert lead_file.status == LeadFileStatus.UPLOADED
    assert lead_file.uploaded_by == manager
    assert lead_file.original_name == "leads.csv"

    result = import_lead_file(lead_file.pk)

    assert [s["status"] for s in batch_spy] == ["processing"]
    assert result.status == LeadFileStatus.COMPLETED
    assert (result.rows_total, result.rows_imported, result.rows_rejected) == (2, 2, 0)
    assert result.error == ""


def test_status_uploaded_processing_completed_with_errors(workflow, batch_spy):
    lead_file = stored_file(workflow, csv_bytes([["phone"], [us(1)], ["nope"]]))

    result = import_lead_file(lead_file.pk)

    assert [s["status"] for s in batch_spy] == ["processing"]
    assert result.status == LeadFileStatus.COMPLETED_WITH_ERRORS
    assert (result.rows_imported, result.rows_rejected) == (1, 1)


def test_every_row_rejected_is_completed_with_errors_not_failed(workflow):
    result = run_import(workflow, csv_bytes([["phone"], ["nope"], ["+1 555"]]))

    assert result.status == LeadFileStatus.COMPLETED_WITH_ERRORS
    assert (result.rows_imported, result.rows_rejected) == (0, 2)


def test_status_uploaded_failed_never_processes(workflow, batch_spy):
    lead_file = stored_file(workflow, b"name\r\nAnn\r\n")

    result = import_lead_file(lead_file.pk)

    assert batch_spy == []
    assert result.status == LeadFileStatus.FAILED
    assert result.error.endswith("Columns found: name.")
    # A failed file is final: running it again does not retry it.
    assert import_lead_file(lead_file.pk).status == LeadFileStatus.FAILED
    assert batch_spy == []


def test_a_finished_file_is_not_imported_twice(workflow, batch_spy):
    lead_file = stored_file(workflow, csv_bytes([["phone"], [us(1)], ["bad"]]))
    import_lead_file(lead_file.pk)

    again = import_lead_file(lead_file.pk)

    assert len(batch_spy) == 1
    assert (again.rows_imported, again.rows_rejected) == (1, 1)
    assert Lead.objects.count() == LeadFileRejection.objects.count() == 1


# --- the error report -------------------------------------------------------------------------


def test_error_report_lists_row_reason_and_original_values_neutralised(workflow):
    content = csv_bytes(
        [
            ["phone", "name", "@note"],  # row 1
            ["+1 555", '=HYPERLINK("http://evil.example","x")', "-2+3"],  # 2
            ["", "@SUM(A1)", "\t=1+1"],  # 3
            [us(1), "  Ann  ", "fine"],  # 4: imported
            ["+1 202 555 0001", "\rCR", "plain"],  # 5: duplicate of row 4
        ]
    )
    lead_file = run_import(workflow, content)

    lines = list(stream_rejections_csv(lead_file))
    report = list(csv.reader(io.StringIO("".join(lines))))

    assert report == [
        ["row", "reason", "phone", "name", "'@note"],
        [
            "2",
            '"+1 555" is not a valid phone number',
            "'+1 555",
            '\'=HYPERLINK("http://evil.example","x")',
            "'-2+3",
        ],
        ["3", "the phone number is missing", "", "'@SUM(A1)", "'\t=1+1"],
        ["5", "duplicate: +12025550001 repeats row 4", "'+1 202 555 0001", "'\rCR", "plain"],
    ]


def test_error_report_pages_through_many_rejections_in_order(workflow):
    rows = [["phone", "name"]] + [[f"bad-{i}", f"N{i}"] for i in range(450)]
    lead_file = run_import(workflow, csv_bytes(rows))

    report = list(csv.reader(io.StringIO("".join(stream_rejections_csv(lead_file, chunk=100)))))

    assert report[0] == ["row", "reason", "phone", "name"]
    assert [int(r[0]) for r in report[1:]] == list(range(2, 452))
    assert report[-1] == ["451", '"bad-449" is not a valid phone number', "bad-449", "N449"]


# --- phone normalisation ----------------------------------------------------------------------


def test_numbers_are_normalised_to_e164_with_the_default_region(workflow, settings):
    settings.DIALNEXA_DEFAULT_REGION = "GB"
    rows = [
        ["phone", "name"],
        ["020 7946 0958", "London landline"],
        ["07911 123456", "UK mobile"],
        ["+1 (202) 555-0143", "US, international format"],
        ["0044 161 496 0000", "UK with 00 prefix"],
        ["(202) 555-0199", "US national format: not a UK number"],
    ]

    lead_file = run_import(workflow, csv_bytes(rows))

    assert [(p, n) for p, n, _ in leads_of(workflow)] == [
        ("+442079460958", "London landline"),
        ("+447911123456", "UK mobile"),
        ("+12025550143", "US, international format"),
        ("+441614960000", "UK with 00 prefix"),
    ]
    assert rejections_of(lead_file) == [(6, '"(202) 555-0199" is not a valid phone number')]


def test_the_default_region_also_applies_in_the_worker_pool_of_a_big_file(
    workflow, settings, monkeypatch
):
    """From 20,000 rows numbers are normalised in a process pool; it must see the setting."""
    settings.DIALNEXA_DEFAULT_REGION = "GB"
    pools = []

    class CountedPool(importing.ProcessPoolExecutor):
        def __init__(self, *args, **kwargs):
            pools.append(kwargs.get("max_workers"))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(importing, "ProcessPoolExecutor", CountedPool)
    # 20,000 distinct London numbers 020 3xxx xxxx, in national format.
    lines = ["phone"] + [f"020 3{i // 10000:03d} {i % 10000:04d}" for i in range(20_000)]
    lines.append("(202) 555-0199")

    lead_file = run_import(workflow, ("\n".join(lines) + "\n").encode())

    assert lead_file.rows_imported == 20_000, rejections_of(lead_file)[:3]
    assert Lead.objects.filter(workflow=workflow, phone="+442030000000").exists()
    assert Lead.objects.filter(workflow=workflow, phone="+442030019999").exists()
    assert rejections_of(lead_file) == [(20_002, '"(202) 555-0199" is not a valid phone number')]
    assert pools == [2]  # the numbers really went through the pool
