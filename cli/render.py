"""Rendering for people (rich) — JSON output is printed by the commands themselves."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

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
