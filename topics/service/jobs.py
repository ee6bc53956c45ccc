"""Entry points of the two topic jobs, recluster and online assignment, for the CLI and the service."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from indexer.index import Index
from topics.catalog import LineageEvent
from topics.recluster import RunReport, recluster

# What the recluster does after each phase it reports (topics.recluster.job), for a progress line.
NEXT_STEP = {
    "started": "sampling",
    "sampled": "fitting clusters",
    "fitted": "matching topic ids",
    "matched": "writing item topics and reading their words",
    "items_written": "representing topics",
    "represented": "writing topics",
    "topics_written": "switching",
    "switched": "cleaning up",
    "cleaned": "building indexes",
}


def rebuild_topics(index: Index, on_step: Callable[[str], None] | None = None) -> RunReport:
    """Recluster every stored item into topics, with words, exemplars and tiles, and publish the run.

    `on_step` hears what it is doing now, in words (a progress line)."""
    if index.remote:
        raise RuntimeError("rebuild_topics runs in the store's owner; use recluster_via_owner")
    on_phase = None if on_step is None else _phase_steps(on_step)
    return recluster(index.settings, index.backend, represent=_representer(index, on_step), on_phase=on_phase)


def _phase_steps(on_step: Callable[[str], None]) -> Callable[[str], None]:
    def on_phase(phase: str) -> None:
        if phase in NEXT_STEP:
            on_step(NEXT_STEP[phase])

    return on_phase


def recluster_anywhere(index: Index, on_step: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the recluster here, or in `topics serve` when it owns the store (so it never runs twice)."""
    if index.remote:
        return index.backend.call_owner("recluster")
    return report_dict(rebuild_topics(index, on_step))


# `topics recluster --json`: each field's RunReport attribute, in the order printed.
REPORT_FIELDS = {
    "run_id": "run_id",
    "items": "n_items",
    "sampled": "n_sampled",
    "topics": "n_topics",
    "themes": "n_themes",
    "outliers": "n_outliers",
    "skipped": "n_skipped",
    "seconds": "seconds",
}


def report_dict(report: RunReport) -> dict[str, Any]:
    """A JSON-ready run report (`topics recluster --json`)."""
    return {
        **{key: getattr(report, name) for key, name in REPORT_FIELDS.items()},
        "events": [_event(e) for e in report.events],
        "theme_events": [_event(e) for e in report.theme_events],
    }


def _event(event: LineageEvent) -> dict[str, Any]:
    return {"kind": event.kind, "before": list(event.before), "after": list(event.after)}


def _representer(index: Index, on_step: Callable[[str], None] | None = None):
    from topics.represent.from_store import StoreRepresent

    return StoreRepresent(
        index, None if on_step is None else lambda what: on_step(f"representing topics: {what}")
    )


def assign_online(index: Index) -> dict[str, Any]:
    """Give pending items a topic under the current run; notice emerging topics (the service's job)."""
    from topics.online.pending import assign_pending

    report = assign_pending(index.backend, index.settings)
    return {
        "run_id": report.run_id,
        "assigned": report.assigned,
        "outliers": report.outliers,
        "emerged": list(report.emerged),
        "seconds": report.seconds,
    }
