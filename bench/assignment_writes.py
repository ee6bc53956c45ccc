"""What writing the items pass's assignments costs on a real store, three ways, each on a fresh copy.

    python bench/assignment_writes.py --data bench/out/scale/1000000/data [--n 50000]

1. one call per item (each item's score makes its payload its own: the way before);
2. two grouped writes per item: one call per topic (topic, run, how), one per score to 3 decimals;
3. `topics.recluster.assign.AssignmentWriter`: one call per (topic, score to `catalog.SCORE_DECIMALS`).

`--n` items of the store get a random topic of `--topics` (300) and a score spread around their topic's (as a
recluster's are), written into slot 1 of a copy of the store (copied `--data` must not be in use:
the embedded store is locked to one process). Prints microseconds an item and the engine calls.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from indexer.config import load_settings
from indexer.index import Index
from indexer.store.base import Point, VectorStore
from topics import catalog
from topics.catalog import ItemAssignment
from topics.recluster.assign import AssignmentWriter
from topics.recluster.sizes import SCROLL_BATCH

SLOT, RUN = 1, 10**6


class Counting:
    """The store with its `set_payload` calls counted (the grouped writer also flushes each buffer)."""

    def __init__(self, store: VectorStore) -> None:
        self.store, self.calls = store, 0

    def set_payload(self, ids: list[str], payload: dict) -> None:
        self.calls += 1
        self.store.set_payload(ids, payload)

    def flush(self) -> None:
        self.store.flush()


def per_item(store: Counting, ids: np.ndarray, topics: np.ndarray, scores: np.ndarray) -> None:
    for i in range(len(ids)):
        a = ItemAssignment(int(topics[i]), round(float(scores[i]), 4), RUN, "recluster")
        store.set_payload([ids[i]], catalog.assignment_payload(SLOT, a))


def two_writes(store: Counting, ids: np.ndarray, topics: np.ndarray, scores: np.ndarray) -> None:
    names = catalog.slot_fields(SLOT)
    for start in range(0, len(ids), 16_384):
        part = slice(start, start + 16_384)
        units = np.rint(scores[part] * 1000).astype(np.int64)
        for key, fields in (
            (topics[part], lambda v: {names["topic"]: v, names["run"]: RUN, names["assigned"]: "recluster"}),
            (units, lambda v: {names["score"]: v / 1000}),
        ):
            for value in np.unique(key):
                group = ids[part][key == value]
                for at in range(0, len(group), 256):
                    store.set_payload(group[at : at + 256].tolist(), fields(int(value)))


def grouped(store: Counting, ids: np.ndarray, topics: np.ndarray, scores: np.ndarray) -> None:
    writer = AssignmentWriter(store, SLOT, RUN)  # type: ignore[arg-type]
    for start in range(0, len(ids), SCROLL_BATCH):
        part = slice(start, start + SCROLL_BATCH)
        points = [Point(i, {}, {}) for i in ids[part]]
        writer.add(points, topics[part], scores[part])
    writer.flush()


WAYS: dict[str, Callable[[Counting, np.ndarray, np.ndarray, np.ndarray], None]] = {
    "per_item": per_item,
    "two_grouped_writes": two_writes,
    "grouped_by_topic_and_score": grouped,
}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--topics", type=int, default=300, help="topics the items are spread over")
    opts = parser.parse_args()
    rng = np.random.default_rng(0)
    topics = rng.integers(0, opts.topics, size=opts.n)
    centres = rng.uniform(0.6, 0.85, size=opts.topics)
    scores = np.clip(centres[topics] + rng.normal(0, 0.05, size=opts.n), 0, 1)
    with tempfile.TemporaryDirectory(dir=opts.data.parent) as scratch:
        for name, way in WAYS.items():
            copy = Path(scratch) / name
            shutil.copytree(opts.data, copy)
            with Index(load_settings(data_dir=copy)) as index:
                ids: list[str] = []
                for points in index.items.scroll(payload=False, batch=1024):
                    ids += [p.id for p in points]
                    if len(ids) >= opts.n:
                        break
                store = Counting(index.items)
                started = time.perf_counter()
                way(store, np.array(ids[: opts.n], dtype=object), topics, scores)
                seconds = time.perf_counter() - started
            shutil.rmtree(copy)
            print(
                f"{name}_write: {1e6 * seconds / opts.n:.1f} us/item ({store.calls} engine calls)", flush=True
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
