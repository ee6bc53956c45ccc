"""`topics repair`: a damaged embedded store made whole again from what the ledger knows.

Steps (each safe to repeat; a killed repair resumes from ``repair.json``, see `indexer.repair`):

1. Refuse while `topics serve` (or any process) owns the store: the repair needs it to itself.
2. Find the collections the engine cannot open; with none and no unfinished repair, do nothing.
3. Write the plan, then move each damaged collection to ``store/<name>.damaged-<time>`` (never deleted).
4. Items: ingest again every folder the ledger recorded files under, and drop the feed cursors so
   `serve --feed` reads those feeds again. Manifest rows lived only in the store: ingest them again.
5. Topics: a damaged topics collection takes the curation (labels, merges, hides) and the history of
   runs with it. A recluster then reassigns every item (topic ids come back from the items'
   assignments where the items kept them); the online state is dropped and rebuilt.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

from indexer.config import Settings
from indexer.index import Index
from indexer.repair import RepairPlan, find_damage, move_aside, plan_for, refill_items
from indexer.store import EdgeBackend
from indexer.store.base import COLLECTIONS, ITEMS, TOPICS, StoreLocked
from topics.errors import TopicsError
from topics.online.pending import state_path
from topics.service.jobs import rebuild_topics, report_dict
from topics.service.serve import ServiceRunning, serve_lock

log = logging.getLogger(__name__)


class RepairRefused(TopicsError, RuntimeError):
    """The repair cannot run now (another process owns the store, or the store is not embedded)."""


def repair(settings: Settings, on_step: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Repair the configured embedded store; returns what was done and what could not be recovered."""

    def step(text: str) -> None:
        log.info("repair: %s", text)
        if on_step is not None:
            on_step(text)

    if settings.store.kind != "edge":
        raise RepairRefused(
            f"topics repair works on the embedded store; the {settings.store.kind!r} store keeps its own "
            "copies (restore a server snapshot, see docs/reliability.md)"
        )
    try:
        lock = serve_lock(settings.data_dir)
    except ServiceRunning as running:
        raise RepairRefused(f"topics repair needs the store to itself: {running}; stop it first") from None
    try:
        return _repair(settings, step)
    finally:
        lock.release()


def _repair(settings: Settings, step: Callable[[str], None]) -> dict[str, Any]:
    data_dir = settings.data_dir
    store = settings.store
    backend = EdgeBackend(data_dir / "store", min_free_mb=store.min_free_mb, datatype=store.vector_datatype)
    try:
        damage = find_damage(backend)
    except StoreLocked as locked:
        backend.close()
        raise RepairRefused(f"topics repair needs the store to itself: {locked}") from None
    except BaseException:
        backend.close()
        raise
    with Index(settings, backend=backend) as index:
        plan = RepairPlan.read(data_dir)
        resumed = plan is not None
        if not damage and plan is None:
            items = index.items.count() if index.items.exists() else 0
            return {
                "damaged": [],
                "resumed": False,
                "moved": [],
                "done": [],
                "lost": [],
                "recluster": None,
                "items": items,
            }
        plan = plan_for(damage, index.ledger, plan)
        plan.write(data_dir)  # before the first change: a kill from here on resumes
        done: list[str] = []
        for found in damage:
            moved = move_aside(found)
            plan.moved.append(str(moved))
            plan.write(data_dir)
            done.append(f"moved the damaged {found.collection!r} collection to {moved}")
            step(done[-1])
        for name in COLLECTIONS:
            backend.collection(name)  # fresh directories, locked for the rest of the repair
        lost = _lost(plan)
        if ITEMS in plan.collections:
            step("ingesting the ledger's folders again")
            refill = refill_items(index, plan)
            for root, counts in refill.folders.items():
                done.append(
                    f"ingested {root} again: {counts['stored']} items from {counts['recorded']} recorded "
                    f"files ({counts['failed']} failed)"
                )
            lost += [
                f"{root}: the folder is gone, {n} recorded files with it" for root, n in refill.gone.items()
            ]
            done += [
                f"feed {name}: its cursor was dropped; the next `topics serve --feed` reads it again "
                "from its start (stored rows are skipped)"
                for name in refill.feeds
            ]
        with contextlib.suppress(FileNotFoundError):  # derived from the old topics: rebuilt from the store
            state_path(settings).unlink()
        recluster = None
        if index.items.exists() and index.items.count() > 0:
            step("reclustering every item")
            try:
                recluster = report_dict(rebuild_topics(index, lambda phase: step(f"reclustering: {phase}")))
            except RuntimeError as error:  # a domain refusal (too few items): the store is whole anyway
                if type(error).__module__.split(".")[0] not in {"indexer", "topics"}:
                    raise
                lost.append(f"no topics yet ({error}): run `topics recluster` once there are more items")
            else:
                done.append(f"reclustered: run {recluster['run_id']}, {recluster['topics']} topics")
        RepairPlan.remove(data_dir)
        return {
            "damaged": [{"collection": c, "detail": plan.details.get(c, "")} for c in plan.collections],
            "resumed": resumed,
            "moved": list(plan.moved),
            "done": done,
            "lost": lost,
            "recluster": recluster,
            "items": index.items.count() if index.items.exists() else 0,
        }


def _lost(plan: RepairPlan) -> list[str]:
    """What the repair cannot bring back, in words."""
    lost = []
    if ITEMS in plan.collections and not plan.roots:
        lost.append(
            "the ledger records no folders (none were ingested, or the ledger started afresh): ingest them"
        )
    if ITEMS in plan.collections:
        lost.append(
            "items ingested from manifests (`topics ingest FILE.jsonl|.csv`) lived only in the store: "
            "ingest those manifests again"
        )
        lost += [f"feed {name}: rows it no longer serves" for name in plan.feeds if name.startswith("http:")]
    if TOPICS in plan.collections:
        lost.append(
            "the topics collection held the curation (labels, merges, hides) and the history of earlier "
            "runs: they are lost (the damaged copy is kept)"
        )
    return lost
