"""Issue "Lead files", in the browser: a manager uploads a messy CSV from the Leads tab, the
progress bar fills to 100 %, the summary counts and the error report are right, and the leads
of the active workflow start."""

import csv
import io
import time

import pytest
from playwright.sync_api import expect

from engine import control
from leads.models import Lead, LeadExecution, LeadFile
from tests.factories import WorkflowFactory, with_simple_graph


def messy_csv(rows: int) -> tuple[bytes, int, int]:
    """A BOM, semicolons, bad numbers, duplicates and empty rows; with the expected counts."""
    lines = ["Name;Phone_Number;sim_status"]
    bad = duplicates = empty = 0
    for i in range(rows):
        if i % 97 == 5:
            lines.append(f"Bad {i};+1 555;busy")
            bad += 1
        elif i % 151 == 7 and i > 7:
            lines.append(f"Again {i};(646) 555-0000;completed")  # repeats the first lead
            duplicates += 1
        elif i % 499 == 11:
            lines.append(";;")
            empty += 1
        else:
            lines.append(f"Lead {i};(646) 555-{i:04d};completed")
    text = "\ufeff" + "\n".join(lines) + "\n"
    rejected = bad + duplicates + empty
    return text.encode("utf-8"), rows - rejected, rejected


@pytest.mark.django_db(transaction=True)
def test_a_manager_uploads_a_messy_csv_and_the_progress_bar_reaches_100_percent(
    login, live_server, manager, workspace, task_worker, screenshot, tmp_path
):
    workflow = with_simple_graph(WorkflowFactory(workspace=workspace, name="Upload target"))
    control.perform(workflow.pk, "activate", manager)
    content, expected_imported, expected_rejected = messy_csv(3000)
    path = tmp_path / "messy leads.csv"
    path.write_bytes(content)

    page = login(manager)
    page.goto(f"{live_server.url}/workflows/{workflow.pk}/leads")
    page.set_input_files("#lead-file", str(path))
    page.locator("#upload-form").get_by_role("button", name="Upload", exact=True).click()
    page.wait_for_url(f"{live_server.url}/lead-files/*/")
    lead_file = LeadFile.objects.get(workflow=workflow)
    expect(page.locator("#lead-file-progress")).to_have_attribute("data-status", "uploaded")

    task_worker.start()
    # The bar is refreshed by htmx (no reload) until the import ends.
    bar = page.locator("#import-progress")
    expect(bar).to_have_attribute("value", "3000", timeout=60_000)
    expect(bar).to_have_attribute("max", "3000")
    expect(page.locator("#percent")).to_have_text("100%")
    expect(page.locator("#rows-imported")).to_have_text(str(expected_imported))
    expect(page.locator("#rows-rejected")).to_have_text(str(expected_rejected))
    expect(page.locator("#lead-file-progress")).to_have_attribute(
        "data-status", "completed_with_errors"
    )
    screenshot("upload")

    report = page.request.get(live_server.url + page.locator("#error-report").get_attribute("href"))
    assert report.ok
    rows = list(csv.reader(io.StringIO(report.text())))
    assert rows[0] == ["row", "reason", "Name", "Phone_Number", "sim_status"]
    assert len(rows) - 1 == expected_rejected
    by_row = {int(r[0]): r[1] for r in rows[1:]}
    assert by_row[7] == '"+1 555" is not a valid phone number'  # data row 5 is file row 7
    assert by_row[160] == "duplicate: +16465550000 repeats row 2"
    assert by_row[13] == "empty row"
    # Every repeat names the row that holds the number, even one met later in another batch.
    assert {reason for reason in by_row.values() if reason.startswith("duplicate")} == {
        "duplicate: +16465550000 repeats row 2"
    }

    # The workflow is active: the imported leads start without anyone pressing anything.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if LeadExecution.objects.filter(workflow=workflow).count() == expected_imported:
            break
        time.sleep(0.5)
    assert Lead.objects.filter(lead_file=lead_file).count() == expected_imported
    assert LeadExecution.objects.filter(workflow=workflow).count() == expected_imported
    task_worker.assert_alive()
