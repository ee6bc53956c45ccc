"""Rendering for people (rich) — JSON output is printed by the commands themselves."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from indexer.pipeline import IngestSummary

err = Console(stderr=True)
out = Console()


@contextmanager
def progress(enabled: bool) -> Iterator[Callable[[int], None] | None]:
    """A live counter on stderr when it is a terminal; nothing otherwise (scripts, CI, --json)."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    columns = (SpinnerColumn(), TextColumn("{task.description} {task.completed} items"), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task("ingesting", total=None)
        yield lambda n: bar.advance(task, n)


def summary(s: IngestSummary) -> None:
    rate = (s.ingested + s.updated) / s.seconds if s.seconds else 0.0
    out.print(
        f"ingested {s.ingested}, updated {s.updated}, skipped {s.skipped}, deleted {s.deleted}, "
        f"failed {s.failed} in {s.seconds:.1f}s ({rate:.1f} items/s)"
    )
    for origin, reason in s.failures[:20]:
        out.print(f"  failed: {origin}: {reason}", highlight=False, markup=False)
    if len(s.failures) > 20:
        out.print(f"  … and {len(s.failures) - 20} more (see `topics status`)")


def status(info: dict) -> None:
    table = Table(show_header=False, box=None)
    table.add_row("data dir", info["data_dir"])
    store = info["store"]
    via = " (through topics serve)" if store["via_service"] else ""
    table.add_row("store", f"{store['kind']} at {store['location']}{via}")
    table.add_row("items", f"{info['items']} ({info['pending']} pending topic assignment)")
    failures = ", ".join(f"{reason}: {n}" for reason, n in sorted(info["failures"].items())) or "none"
    table.add_row("failures", failures)
    model = info["model"] or {}
    clip = model.get("clip") or {}
    table.add_row("model", f"{clip.get('arch', '-')} / {clip.get('pretrained', '-')}" if clip else "-")
    table.add_row("topics", f"{info['topics']} (run {info['run_id']})" if info["run_id"] else "none yet")
    table.add_row("last recluster", info["last_recluster"] or "never")
    table.add_row("next recluster", info["next_recluster"] or "-")
    service = info["service"]
    if service:
        table.add_row(
            "service",
            f"pid {service['pid']}, up {service['uptime_s']:.0f}s, queue {service['queue_depth']}, "
            f"{service['items_per_s']} items/s, last error: {service['last_error'] or 'none'}",
        )
    else:
        table.add_row("service", "not running")
    out.print(table, markup=False, highlight=False)


def recluster(report: dict) -> None:
    out.print(
        f"run {report['run_id']}: {report['topics']} topics over {report['items']} items "
        f"({report['outliers']} outliers) in {report['seconds']:.1f}s",
        highlight=False,
    )
    for event in report["events"]:
        if event["kind"] != "survived":
            out.print(f"  {event['kind']}: {event['before']} -> {event['after']}", highlight=False)
