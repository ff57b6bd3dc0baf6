"""An import whose worker died is queued again by the heartbeat, and two runs of one import
never both write a batch."""

import csv
import io

import pytest
from django.core.files.base import ContentFile
from django_tasks_db.models import DBTaskResult

from engine import heartbeat
from leads import importing
from leads.importing import ImportOvertaken, import_lead_file
from leads.models import Lead, LeadFile, LeadFileStatus


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


def _file(workflow, rows: int) -> LeadFile:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["name", "phone"])
    writer.writerows([f"Lead {i}", f"(202) 555-{i:04d}"] for i in range(rows))
    lead_file = LeadFile(workflow=workflow, original_name="leads.csv")
    lead_file.file.save("leads.csv", ContentFile(buffer.getvalue().encode()), save=False)
    lead_file.save()
    return lead_file


def test_a_batch_already_committed_by_another_run_is_refused(workflow):
    lead_file = _file(workflow, 300)
    layout = importing.read_layout(lead_file.file.path)
    rows = list(importing._rows(lead_file.file.path, layout))[:200]
    batch = [(i + 2, row) for i, row in enumerate(rows)]

    def normalise_all(raws):
        return [importing._normalise(r) for r in raws]

    importing.commit_batch(lead_file, importing.check_rows(batch, layout, normalise_all), 200)
    # The other run, slower, tries to commit the very same rows.
    with pytest.raises(ImportOvertaken):
        importing.commit_batch(lead_file, importing.check_rows(batch, layout, normalise_all), 200)

    lead_file.refresh_from_db()
    assert lead_file.rows_processed == 200
    assert (lead_file.rows_imported, lead_file.rows_rejected) == (200, 0)
    assert Lead.objects.filter(workflow=workflow).count() == 200


def test_a_run_overtaken_mid_import_stops_without_writing(workflow, monkeypatch):
    lead_file = _file(workflow, 600)
    real = importing.commit_batch
    calls = []

    def other_run_gets_ahead(lead_file, checked, last_row_index):
        calls.append(last_row_index)
        if len(calls) == 2:
            # Meanwhile another run committed this batch (its checkpoint moved on).
            LeadFile.objects.filter(pk=lead_file.pk).update(rows_processed=last_row_index)
        real(lead_file, checked, last_row_index)

    monkeypatch.setattr(importing, "commit_batch", other_run_gets_ahead)
    result = import_lead_file(lead_file.pk)

    assert len(calls) == 2  # it stopped at the batch it lost
    assert result.status == LeadFileStatus.PROCESSING  # the other run finishes the file
    assert Lead.objects.filter(workflow=workflow).count() == calls[0]


def test_the_heartbeat_requeues_an_import_without_progress_for_five_minutes(workflow):
    stuck = _file(workflow, 10)
    LeadFile.objects.filter(pk=stuck.pk).update(status=LeadFileStatus.PROCESSING, rows_processed=4)
    heartbeat._imports_seen.clear()
    start = 1000.0

    assert heartbeat.redrive_stalled_imports(start) == []
    assert heartbeat.redrive_stalled_imports(start + 299) == []
    assert heartbeat.redrive_stalled_imports(start + 300) == [stuck.pk]
    queued = DBTaskResult.objects.filter(task_path="engine.lead_files.import_lead_file_task")
    assert [r.args_kwargs["args"] for r in queued] == [[stuck.pk]]

    # Progress resets the clock; a finished file is forgotten.
    LeadFile.objects.filter(pk=stuck.pk).update(rows_processed=8)
    assert heartbeat.redrive_stalled_imports(start + 700) == []
    LeadFile.objects.filter(pk=stuck.pk).update(status=LeadFileStatus.COMPLETED)
    assert heartbeat.redrive_stalled_imports(start + 2000) == []
    assert stuck.pk not in heartbeat._imports_seen


@pytest.mark.django_db(transaction=True)
def test_a_requeued_import_finishes_the_file_exactly_once(workflow):
    lead_file = _file(workflow, 500)
    first = import_lead_file(lead_file.pk)
    again = import_lead_file(lead_file.pk)  # the heartbeat's second run, after the first ended

    assert first.status == again.status == LeadFileStatus.COMPLETED
    assert Lead.objects.filter(workflow=workflow).count() == 500
    assert again.rows_imported == 500 and again.rows_rejected == 0
