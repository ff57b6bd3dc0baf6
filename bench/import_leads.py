"""Benchmark: import a big lead file (issue "Lead files": 1M rows, <= 60 s, < 300 MB peak).

Writes an N-row CSV the way people send them (UTF-8 with a BOM, semicolons, numbers in
several national/international formats, a few % invalid numbers, a few % duplicates, a few
empty rows), then runs the real path synchronously: accept_upload (stores the file, queues
the task) and import_lead_file (what the worker's task runs), and prints the figures.

    createdb -h 127.0.0.1 -U postgres bench_import
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_import \\
        .venv/bin/python bench/import_leads.py --rows 1000000

The database is migrated first. Each run imports into a new draft workflow of a workspace
named "bench"; --cleanup deletes that workflow and its leads afterwards. The CSV and its
stored copy (MEDIA_ROOT defaults to the run's temporary directory) are always removed.
--phases adds the wall time of each import phase and of each kind of SQL statement. As it
writes millions of rows, it refuses a database whose name lacks "bench" unless --force.

Peak memory: ru_maxrss of this process (RUSAGE_SELF) and of the largest reaped child
(RUSAGE_CHILDREN: the importer's 2-process pool for phone normalisation). Forked children
share pages with the parent, so self + 2 x child is an upper bound of the total.
"""

import argparse
import os
import random
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BAD_NUMBERS = ["+1 555", "12345", "call me", "+1 (000) 000-0000", "555-01"]
FIRST = ["Ann", "José", "Zoë", "Bob", "Begoña", "Łukasz", "Mei", "Olu", "Sam", "Iñaki"]
LAST = ["Lee", "Muñoz", "Smith", "Kim", "Ibáñez", "Nowak", "O'Brien", "Okafor"]


def phone_text(i: int, rng: random.Random) -> str:
    """The i-th distinct valid US number (+1 646 2xx xxxx), in one of several formats."""
    exchange, line = 200 + i // 10_000, i % 10_000
    style = rng.randrange(4)
    if style == 0:
        return f"+1 646 {exchange} {line:04d}"
    if style == 1:
        return f"(646) {exchange}-{line:04d}"
    if style == 2:
        return f"646.{exchange}.{line:04d}"
    return f"+1646{exchange}{line:04d}"


def write_csv(path: str, rows: int, seed: int = 42) -> dict:
    """Stream the file to disk; returns what the import must find."""
    rng = random.Random(seed)
    expected = {"good": 0, "bad": 0, "duplicate": 0, "empty": 0}
    next_number = 0
    with open(path, "w", encoding="utf-8-sig", newline="") as out:
        out.write("Phone Number;Name;Company;sim_status;timezone\r\n")
        for i in range(rows):
            roll = rng.random()
            if roll < 0.03:
                phone, kind = rng.choice(BAD_NUMBERS), "bad"
            elif roll < 0.05 and next_number:
                # A repeat of an earlier number: usually in an earlier batch, sometimes the same.
                back = rng.choice([1, 7, 50, 3_000, 40_000])
                phone, kind = phone_text(max(0, next_number - back), rng), "duplicate"
            elif roll < 0.051:
                out.write(";;;;\r\n")
                expected["empty"] += 1
                continue
            else:
                phone, kind = phone_text(next_number, rng), "good"
                next_number += 1
            expected[kind] += 1
            name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
            company = f"Company {i % 5000}; Ltd" if i % 97 == 0 else f"Company {i % 5000}"
            status = rng.choice(["completed", "busy", "did_not_pick", ""])
            company = f'"{company}"' if ";" in company else company
            out.write(f"{phone};{name};{company};{status};America/New_York\r\n")
    return expected


def maxrss_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux: kilobytes


def cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def backend_cpu_seconds(pid: int | None) -> float | None:
    """CPU time of the PostgreSQL backend serving us (server on this machine only)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, TypeError, IndexError, ValueError):
        return None


class Phases:
    """Wall time of the import's phases, by wrapping leads.importing's functions (bench only:
    import_lead_file looks them up as module globals at call time)."""

    def __init__(self, importing):
        self.seconds = {
            "read_layout": 0.0,
            "count_rows": 0.0,
            "check_rows": 0.0,
            "normalise": 0.0,
            "commit": 0.0,
        }
        for name in ("read_layout", "count_rows", "commit_batch"):
            setattr(importing, name, self._timed(getattr(importing, name), name))
        real_check = importing.check_rows

        def check_rows(rows, layout, normalise_all):
            started = time.perf_counter()
            result = real_check(rows, layout, self._timed(normalise_all, "normalise"))
            self.seconds["check_rows"] += time.perf_counter() - started
            return result

        importing.check_rows = check_rows
        self.sql: dict[str, float] = {}

    def statement(self, execute, sql, params, many, context):
        """connection.execute_wrapper: time each kind of SQL statement (COPY is not seen)."""
        words = sql.split()
        kind = " ".join(words[:3]) if words[0] != "SELECT" else "SELECT " + words[-1]
        if "leads_lead" in sql and words[0] == "SELECT" and "IN (" in sql:
            kind = "SELECT existing leads (phone IN ...)"
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            key = f"sql {kind[:60]}"
            self.sql[key] = self.sql.get(key, 0.0) + time.perf_counter() - started

    def _timed(self, func, name):
        key = "commit" if name == "commit_batch" else name

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                self.seconds[key] += time.perf_counter() - started

        return timed

    def report(self, total: float) -> str:
        s = dict(self.seconds)
        s["check_rows"] -= s["normalise"]  # the rest of check_rows: per-row checks
        s["loop, CSV parse"] = total - sum(s.values())
        lines = [", ".join(f"{k} {v:.1f}" for k, v in s.items())]
        for kind, seconds in sorted(self.sql.items(), key=lambda kv: -kv[1])[:6]:
            lines.append(f"  {kind}: {seconds:.1f}")
        return "\n                ".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--cleanup", action="store_true", help="delete the imported leads")
    parser.add_argument("--force", action="store_true", help="allow a non-bench database")
    parser.add_argument("--profile", metavar="FILE", help="write a cProfile of the import")
    parser.add_argument("--phases", action="store_true", help="time the import's phases")
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="bench-import-")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dialnexa.settings")
    os.environ.setdefault("MEDIA_ROOT", os.path.join(work, "media"))
    import django

    django.setup()
    from django.conf import settings
    from django.core.files import File
    from django.core.management import call_command
    from django.db import connection, transaction
    from django_tasks_db.models import DBTaskResult

    from engine.lead_files import accept_upload
    from leads import importing
    from leads.importing import import_lead_file
    from leads.models import Lead, LeadFileRejection
    from workflows.models import Workflow, Workspace

    db = settings.DATABASES["default"]
    if "bench" not in str(db["NAME"]) and not args.force:
        print(f"refusing to write {args.rows} leads into {db['NAME']!r}: use a scratch database")
        return 2
    if connection.vendor != "postgresql":
        print(f"note: {connection.vendor}, not PostgreSQL: the target is for PostgreSQL")
    call_command("migrate", verbosity=0)

    csv_path = os.path.join(work, "leads.csv")
    started = time.perf_counter()
    expected = write_csv(csv_path, args.rows, args.seed)
    written = time.perf_counter() - started
    size_mb = os.path.getsize(csv_path) / 1024 / 1024

    workspace, _ = Workspace.objects.get_or_create(name="bench")
    workflow = Workflow.objects.create(workspace=workspace, name=f"bench {time.time():.0f}")
    rss_before = maxrss_mb(resource.RUSAGE_SELF)

    started = time.perf_counter()
    with open(csv_path, "rb") as raw:
        lead_file = accept_upload(workflow.pk, File(raw, name="leads.csv"), None)
    accepted = time.perf_counter() - started
    # The queued task would run this same import in a worker: run it here instead.
    queued = DBTaskResult.objects.filter(
        task_path__endswith="import_lead_file_task", status="READY"
    )
    queued.filter(args_kwargs__args__0=lead_file.pk).delete()

    phases = Phases(importing) if args.phases else None
    backend_pid = None
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            backend_pid = cursor.fetchone()[0]
    cpu_self, cpu_children = (
        cpu_seconds(resource.RUSAGE_SELF),
        cpu_seconds(resource.RUSAGE_CHILDREN),
    )
    cpu_backend = backend_cpu_seconds(backend_pid)
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    if phases:
        wrapper = connection.execute_wrapper(phases.statement)
        wrapper.__enter__()
        real_commit = connection.commit

        def timed_commit():
            started_commit = time.perf_counter()
            real_commit()
            phases.sql["COMMIT"] = phases.sql.get("COMMIT", 0.0) + (
                time.perf_counter() - started_commit
            )

        connection.commit = timed_commit
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        result = profiler.runcall(import_lead_file, lead_file.pk)
        profiler.dump_stats(args.profile)
    else:
        result = import_lead_file(lead_file.pk)
    seconds = time.perf_counter() - started
    cpu_self = cpu_seconds(resource.RUSAGE_SELF) - cpu_self
    cpu_children = cpu_seconds(resource.RUSAGE_CHILDREN) - cpu_children
    backend_after = backend_cpu_seconds(backend_pid)
    cpu_backend = backend_after - cpu_backend if backend_after is not None else None
    load_after = os.getloadavg()[0]

    rss_self = maxrss_mb(resource.RUSAGE_SELF)
    rss_children = maxrss_mb(resource.RUSAGE_CHILDREN)
    rejected_expected = expected["bad"] + expected["duplicate"] + expected["empty"]
    stored = Lead.objects.filter(workflow=workflow).count()
    cpus = os.cpu_count()
    print(f"database        {connection.vendor} {db['NAME']} ({cpus} CPUs)")
    print(f"file            {args.rows:,} rows, {size_mb:.1f} MB, written in {written:.1f} s")
    print(f"accept_upload   {accepted:.2f} s (copies the file into MEDIA_ROOT)")
    print(f"import          {seconds:.1f} s, {args.rows / seconds:,.0f} rows/s")
    backend = f"{cpu_backend:.1f} s" if cpu_backend is not None else "n/a"
    print(
        f"CPU             import process {cpu_self:.1f} s, pool {cpu_children:.1f} s, "
        f"PostgreSQL backend {backend}; load average {load_before:.1f} -> {load_after:.1f}"
    )
    if phases:
        print(f"phases (wall s) {phases.report(seconds)}")
    print(f"status          {result.status} ({result.rows_processed:,}/{result.rows_total:,})")
    print(
        f"imported        {result.rows_imported:,} "
        f"(expected {expected['good']:,}; stored {stored:,})"
    )
    print(
        f"rejected        {result.rows_rejected:,} (expected {rejected_expected:,}: "
        f"{expected['bad']:,} invalid, {expected['duplicate']:,} duplicates, "
        f"{expected['empty']:,} empty)"
    )
    print(f"peak RSS self   {rss_self:.0f} MB (before the import: {rss_before:.0f} MB)")
    print(f"peak RSS child  {rss_children:.0f} MB (largest pool process)")
    print(f"peak RSS bound  {rss_self + 2 * rss_children:.0f} MB (self + 2 x child)")
    ok = (
        result.rows_imported == expected["good"] == stored
        and result.rows_rejected == rejected_expected
        and result.rows_processed == result.rows_total == args.rows
    )
    target = seconds <= 60 and rss_self + 2 * rss_children < 300
    print(f"counts          {'as expected' if ok else 'WRONG'}")
    print(f"target          {'met' if target else 'MISSED'} (<= 60 s, < 300 MB)")

    if args.cleanup:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {Lead._meta.db_table} WHERE workflow_id = %s", [workflow.pk]
            )
            cursor.execute(
                f"DELETE FROM {LeadFileRejection._meta.db_table} WHERE lead_file_id = %s",
                [lead_file.pk],
            )
        workflow.delete()
    shutil.rmtree(work)  # the CSV and its copy in MEDIA_ROOT
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
