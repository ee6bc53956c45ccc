"""`topics status`: what is stored, what failed, which model, when topics were last and next rebuilt."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

from apscheduler.triggers.cron import CronTrigger

from indexer.diskspace import low_space_note, store_commitment
from indexer.health import damaged_files
from indexer.index import Index
from indexer.repair import find_damage, repair_notes
from indexer.store.base import DAMAGE_RECOVERY, Filter, StoreDamaged, StoreError
from topics import catalog
from topics.query.routing import search_index


def next_fire(cron: str, now: datetime | None = None) -> str | None:
    now = now or datetime.now(UTC)
    fire = CronTrigger.from_crontab(cron, timezone=UTC).get_next_fire_time(None, now)
    return fire.isoformat() if fire else None


STORE_FIELDS = ("items", "pending", "model", "topics", "themes", "search_index", "last_recluster", "run_id")


def status(index: Index) -> dict[str, Any]:
    """One dict with a stable shape (see README, `topics status --json`).

    When the store does not answer but `topics serve` does, what only the store knows is None and the
    service's `store_state` says why (it keeps retrying).
    """
    settings = index.settings
    service = index.backend.call_owner("status") if index.remote else None
    damaged: list[StoreDamaged] = []
    try:
        contents = _contents(index)
    except StoreDamaged as error:  # `state: damaged`, which collections and what to do
        damaged = find_damage(index.backend) or [error]
        contents = dict.fromkeys(STORE_FIELDS)
        contents["store_error"] = str(damaged[0])
    except StoreError as error:
        if service is None:
            raise
        contents = dict.fromkeys(STORE_FIELDS)
        contents["store_error"] = str(error)
    error = contents.pop("store_error", None)
    return {
        "data_dir": str(settings.data_dir),
        "store": {
            "kind": settings.store.kind,
            "location": settings.store.url or str(settings.data_dir / "store"),
            "via_service": index.remote,
            "state": "damaged" if damaged else ("error" if error else "ok"),
            "error": error,
            "damaged": [{"collection": d.collection, "path": d.path, "detail": d.detail} for d in damaged],
            "recovery": DAMAGE_RECOVERY if damaged else None,
        },
        **contents,
        "failures": index.ledger.failure_counts(),
        "next_recluster": (service or {}).get("next_recluster")
        or (next_fire(settings.cluster.cron) if settings.cluster.scheduled else None),
        "service": service,
        "warnings": warnings(index),
    }


def _contents(index: Index) -> dict[str, Any]:
    """What the store holds: items, pending ones, the model, the current run."""
    items = index.items
    exists = items.exists()
    run = catalog.current_run(index.backend)
    return {
        "items": items.count() if exists else 0,
        "pending": items.count(Filter(must={"pending": 1})) if exists else 0,
        "model": items.identity() if exists else None,
        "topics": len(catalog.list_topics(index.backend, run=run)) if run else 0,
        "themes": len(catalog.list_themes(index.backend, run=run)) if run else 0,
        "search_index": search_index(index, run),
        "last_recluster": run.finished.isoformat() if run else None,
        "run_id": run.run_id if run else None,
    }


def warnings(index: Index) -> list[str]:
    """Problems in words: low disk space, damaged state files moved aside, a pointer to a missing run."""
    settings = index.settings
    committed = store_commitment(settings)
    notes = [low_space_note(settings.data_dir, settings.store.min_free_mb, committed=committed)]
    notes += damaged_files(settings.data_dir)
    notes += repair_notes(settings.data_dir)
    with contextlib.suppress(StoreError):  # the store does not answer: `store.error` says so
        notes.append(catalog.missing_run_note(index.backend))
    return [note for note in notes if note]


def failure_examples(index: Index, per_reason: int = 3) -> dict[str, list[dict[str, Any]]]:
    """The most recent failed inputs of each reason (`per_reason` of them), for the status page."""
    out: dict[str, list[dict[str, Any]]] = {}
    for failure in index.ledger.failures():
        shown = out.setdefault(failure.reason, [])
        if len(shown) < per_reason:
            shown.append(
                {
                    "origin": failure.origin,
                    "detail": failure.detail,
                    "attempts": failure.attempts,
                    "last_at": failure.last_at,
                }
            )
    return out
