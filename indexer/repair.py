"""The data plane's side of `topics repair`: damaged collections moved aside, items refilled from the ledger.

A collection the engine cannot open (`StoreDamaged`) is renamed to ``store/<name>.damaged-<UTC time>``,
never deleted, with a ``.why`` note beside it, and a fresh one is created in its place. The items come
back from what the ledger knows: every folder it recorded files under is ingested again (its records
are forgotten first, or the cheap check would call the files unchanged), and every feed cursor is
dropped so the next `topics serve --feed` reads that feed from its start (stored rows are skipped by
id). What only the store held cannot come back this way: manifest rows (`topics ingest FILE.jsonl`),
rows of a feed that no longer serves them, and files of a folder that is gone.

Kill-safe: the plan (which collections, which folders, which feeds) is written to ``repair.json`` in
the data dir before anything changes, and removed only when the repair is done; a repair that finds it
goes on from there. Every step is safe to repeat: a collection is moved only while it is damaged,
ingest skips stored ids, dropping a cursor twice drops nothing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from indexer.atomic import write_json_atomic
from indexer.errors import InvalidInput
from indexer.index import Index
from indexer.ingest import ingest_paths
from indexer.ledger import Ledger
from indexer.store.base import COLLECTIONS, ITEMS, Backend, StoreDamaged

log = logging.getLogger(__name__)

PLAN_FILE = "repair.json"
DAMAGED_MARK = ".damaged-"
_WHY = ".why"


@dataclass
class RepairPlan:
    """What a repair set out to do; written before the first change, so a killed repair resumes."""

    started: str
    collections: list[str]  # damaged when the repair began (or resumed)
    roots: dict[str, int] = field(default_factory=dict)  # folder -> files the ledger recorded under it
    feeds: list[str] = field(default_factory=list)  # feed cursors dropped so the feeds are read again
    moved: list[str] = field(default_factory=list)  # where the damaged collections went
    details: dict[str, str] = field(default_factory=dict)  # collection -> what the engine said

    @classmethod
    def read(cls, data_dir: Path) -> RepairPlan | None:
        try:
            data = json.loads((data_dir / PLAN_FILE).read_text(encoding="utf-8"))
            return cls(**data)
        except FileNotFoundError:
            return None
        except (ValueError, TypeError) as error:  # a torn plan is impossible (atomic); a hand-edited one
            message = f"{data_dir / PLAN_FILE} is unreadable ({error}); delete it to start over"
            raise InvalidInput(message) from error

    def write(self, data_dir: Path) -> None:
        write_json_atomic(data_dir / PLAN_FILE, asdict(self))

    @staticmethod
    def remove(data_dir: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            (data_dir / PLAN_FILE).unlink()


def find_damage(backend: Backend) -> list[StoreDamaged]:
    """The collections of `backend` that cannot be opened (each attempt leaves nothing locked)."""
    found = []
    for name in COLLECTIONS:
        try:
            backend.collection(name)
        except StoreDamaged as damage:
            found.append(damage)
    return found


def plan_for(damage: list[StoreDamaged], ledger: Ledger, plan: RepairPlan | None) -> RepairPlan:
    """A new plan for `damage`, or `plan` (resumed) extended by what is damaged now."""
    if plan is None:
        plan = RepairPlan(started=datetime.now(UTC).isoformat(timespec="seconds"), collections=[])
    for found in damage:
        if found.collection not in plan.collections:
            plan.collections.append(found.collection)
        plan.details.setdefault(found.collection, found.detail)
    if ITEMS in plan.collections and not plan.roots and not plan.feeds:
        plan.roots = ledger.roots()  # read once, before the refill forgets and re-records them
        plan.feeds = ledger.cursor_names()
    return plan


def move_aside(damage: StoreDamaged) -> Path:
    """Rename a damaged collection's directory to a timestamped sibling, with a note of what was wrong."""
    path = Path(damage.path)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    moved = path.with_name(f"{path.name}{DAMAGED_MARK}{stamp}")
    os.replace(path, moved)
    note = (
        f"collection {damage.collection!r} was damaged ({damage.detail}); `topics repair` moved it to "
        f"{moved} and created a fresh one"
    )
    with contextlib.suppress(OSError):
        moved.with_name(moved.name + _WHY).write_text(note + "\n")
    log.info("%s", note)
    return moved


@dataclass
class Refill:
    """What the items refill did and could not do."""

    folders: dict[str, dict[str, int]] = field(default_factory=dict)  # root -> recorded, ingested, failed
    gone: dict[str, int] = field(default_factory=dict)  # root -> files recorded under a folder now gone
    feeds: list[str] = field(default_factory=list)  # cursors dropped: the next serve reads them again

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def refill_items(index: Index, plan: RepairPlan) -> Refill:
    """Ingest every folder of the plan again and drop its feeds' cursors (safe to repeat)."""
    done = Refill()
    for root, recorded in plan.roots.items():
        index.ledger.forget(r.path for r in index.ledger.records_under(root))
        if not Path(root).is_dir():
            done.gone[root] = recorded
            continue
        summary = ingest_paths(index, [Path(root)])
        done.folders[root] = {
            "recorded": recorded,
            "stored": summary.ingested + summary.updated + summary.skipped,
            "failed": summary.failed,
        }
    for name in plan.feeds:
        index.ledger.drop_cursor(name)
        done.feeds.append(name)
    return done


def repair_notes(data_dir: Path) -> list[str]:
    """`status` warnings: an interrupted repair, and damaged collections kept aside."""
    notes = []
    if (data_dir / PLAN_FILE).exists():
        notes.append("a `topics repair` was interrupted; run it again to finish")
    store = data_dir / "store"
    if store.is_dir():
        for why in sorted(store.glob(f"*{DAMAGED_MARK}*{_WHY}")):
            if why.with_name(why.name[: -len(_WHY)]).exists():
                note = why.read_text(errors="replace").strip()
                notes.append(f"{note} (delete it to clear this note)")
    return notes
