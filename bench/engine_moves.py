"""Benchmark the engine's set-based moves on the database at DATABASE_URL (PostgreSQL).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_dialnexa \\
        .venv/bin/python bench/engine_moves.py --leads 100000 [--workers N]

Creates a new workspace and workflow (entry -> time(delay) -> converted), bulk-loads the leads
(COPY on PostgreSQL), activates it, starts every execution (engine.starting.start_pending_leads),
then times engine.sweep.run_tick() draining the entry moves; makes every lead at the time node
due and times the releases. With --workers N the sweeps run in N processes, each with its own
database connection, claiming batches concurrently (SELECT ... FOR UPDATE SKIP LOCKED).

Each run adds a workspace and its leads: use a scratch database (`createdb bench_dialnexa`,
then `manage.py migrate` with DATABASE_URL pointing at it).
"""

import argparse
import multiprocessing
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dialnexa.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")

import django  # noqa: E402

django.setup()

from django.db import connection, connections  # noqa: E402
from django.utils import timezone  # noqa: E402

from engine import control  # noqa: E402
from engine.starting import start_pending_leads  # noqa: E402
from engine.sweep import run_tick  # noqa: E402
from leads.models import Lead, LeadExecution, LeadTransition  # noqa: E402
from workflows.graph import EdgeSpec, NodeSpec  # noqa: E402
from workflows.graph_store import replace_graph  # noqa: E402
from workflows.models import Workflow, Workspace  # noqa: E402
from workflows.statuses import NodeType, WorkflowAction  # noqa: E402


def create_workflow(delay: int) -> Workflow:
    workspace = Workspace.objects.create(name=f"bench {timezone.now().isoformat()}")
    workflow = Workflow.objects.create(
        workspace=workspace, name="bench engine moves", window_start=None, window_end=None
    )
    replace_graph(
        workflow,
        [
            NodeSpec("start", NodeType.ENTRY, "Start"),
            NodeSpec("wait", NodeType.TIME, "Wait", {"delay_seconds": delay}),
            NodeSpec("done", NodeType.CONVERTED, "Done"),
        ],
        [EdgeSpec("start", "wait"), EdgeSpec("wait", "done")],
    )
    return workflow


def load_leads(workflow: Workflow, count: int) -> str:
    now = timezone.now()
    if connection.vendor == "postgresql":
        connection.ensure_connection()
        table = Lead._meta.db_table
        with (
            connection.connection.cursor() as cursor,
            cursor.copy(
                f"COPY {table} (workflow_id, phone, name, fields, created_at) FROM STDIN"
            ) as copy,
        ):
            for i in range(count):
                copy.write_row((workflow.pk, f"+1646{i:07d}", f"Lead {i}", "{}", now))
        connection.connection.commit()
        return "COPY"
    Lead.objects.bulk_create(
        (
            Lead(workflow=workflow, phone=f"+1646{i:07d}", name=f"Lead {i}", created_at=now)
            for i in range(count)
        ),
        batch_size=5000,
    )
    return "bulk_create"


def sweep_until_idle(batch_size: int) -> dict:
    """One worker: run ticks until nothing is due. Returns its moves and seconds."""
    started = time.perf_counter()
    moved = batches = 0
    while True:
        totals = run_tick(budget_seconds=3600, batch_size=batch_size)
        moved += totals.get("moved", 0)
        batches += totals.get("batches", 0)
        if not totals.get("batches"):
            break
    seconds = time.perf_counter() - started
    connection.close()
    return {"pid": os.getpid(), "moved": moved, "batches": batches, "seconds": seconds}


def sweep(workers: int, batch_size: int) -> tuple[float, list[dict]]:
    started = time.perf_counter()
    if workers == 1:
        results = [sweep_until_idle(batch_size)]
    else:
        # Children must not share the parent's connection: close it before forking, each
        # process opens its own.
        connections.close_all()
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            results = pool.map(sweep_until_idle, [batch_size] * workers)
    return time.perf_counter() - started, results


def line(label: str, count: int, unit: str, seconds: float) -> None:
    rate = count / seconds if seconds else float("inf")
    print(f"{label:<22} {count:>9,} {unit:<6} {seconds:>8.2f} s {rate:>11,.0f} {unit}/s")


def report_workers(results: list[dict]) -> None:
    if len(results) < 2:
        return
    for i, r in enumerate(results, 1):
        rate = r["moved"] / r["seconds"] if r["seconds"] else 0
        print(
            f"  worker {i} (pid {r['pid']}): {r['moved']:,} moves in {r['batches']} batches, "
            f"{r['seconds']:.2f} s, {rate:,.0f} moves/s"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=None, help="default: settings")
    parser.add_argument("--delay", type=int, default=3600, help="the time node's delay (s)")
    args = parser.parse_args()
    from django.conf import settings

    batch_size = args.batch_size or settings.DIALNEXA_BATCH_SIZE
    db = connection.settings_dict
    if connection.vendor != "postgresql":
        print("warning: not PostgreSQL; figures are not comparable", file=sys.stderr)
        if args.workers > 1:
            print("several workers need PostgreSQL", file=sys.stderr)
            return 2
    print(
        f"database: {connection.vendor} {db['NAME']} on {db.get('HOST') or 'local'}; "
        f"leads {args.leads:,}, workers {args.workers}, batch {batch_size}"
    )

    # run_tick drains everything due in the database: other due work would be counted here.
    others = LeadExecution.objects.filter(
        status="active", due_at__isnull=False, workflow__status__in=["active", "running"]
    ).count()
    if others:
        print(
            f"{others:,} executions of other workflows are due or waiting in this database; "
            "use an empty scratch database",
            file=sys.stderr,
        )
        return 2
    workflow = create_workflow(args.delay)
    started = time.perf_counter()
    how = load_leads(workflow, args.leads)
    line(f"load leads ({how})", args.leads, "rows", time.perf_counter() - started)

    control.perform(workflow.pk, WorkflowAction.ACTIVATE)
    started = time.perf_counter()
    begun = start_pending_leads(workflow.pk)
    line("start executions", begun, "leads", time.perf_counter() - started)
    assert begun == args.leads, begun

    seconds, results = sweep(args.workers, batch_size)
    moved = sum(r["moved"] for r in results)
    line("moves entry -> time", moved, "moves", seconds)
    report_workers(results)
    assert moved == args.leads, moved

    executions = LeadExecution.objects.filter(workflow=workflow)
    started = time.perf_counter()
    now = timezone.now()
    due = executions.filter(node__key="wait").update(release_at=now, due_at=now)
    line("set all due", due, "rows", time.perf_counter() - started)

    seconds, results = sweep(args.workers, batch_size)
    released = sum(r["moved"] for r in results)
    line("releases time -> end", released, "moves", seconds)
    report_workers(results)

    finished = executions.filter(status="completed", node__key="done").count()
    history = LeadTransition.objects.filter(lead__workflow=workflow).count()
    workflow.refresh_from_db()
    print(
        f"check: {finished:,} of {args.leads:,} leads completed, {history:,} history rows "
        f"(expected {3 * args.leads:,}), workflow {workflow.status}"
    )
    ok = finished == released == args.leads and history == 3 * args.leads
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
