"""A year of nightly reclusters with churn: does the topics collection or the run time grow?

Every run, `--turnover` topics end and as many begin (`evaluation.synthetic.churn_corpus`), over an
embedded (edge) store in a temporary folder. Prints `name: value unit (target …)` lines:

- ``topics_points``: points in the topics collection at run 1 and at the last run. Ended topics,
  lineage events and runs are kept for `history`, so this grows by a few small records a run.
- ``topics_vector_points``: points that carry centroid vectors (the live topics and themes only;
  target: no more at the last run than at run 1).
- ``topics_disk``: the topics collection's allocated size on disk at run 1 and the last run.
- ``phase_<name>``: the median time of each recluster phase, early and late.
- ``recluster_time_ratio``: the median wall time of the last 5 runs over that of runs 2-6 (run 1
  warms up the clustering code), in this one process (target <= 1.5).

Run: .venv/bin/python bench/churn.py [--runs 365] [--live 6] [--turnover 1]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path

from evaluation import synthetic
from indexer.config import load_settings
from indexer.store import open_backend
from indexer.store.base import Filter
from topics.recluster import recluster


def _disk_bytes(folder: Path) -> int:
    """Allocated bytes (the engine preallocates sparse files, so apparent sizes say little)."""
    return sum(p.stat().st_blocks * 512 for p in folder.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=365)
    parser.add_argument("--live", type=int, default=6, help="topics alive at any time")
    parser.add_argument("--turnover", type=int, default=1, help="topics that end (and begin) each run")
    parser.add_argument("--size", type=int, default=40, help="items per topic")
    args = parser.parse_args()
    logging.disable(logging.INFO)
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(data_dir=Path(tmp), store={"backend": "edge"})
        backend = open_backend(settings)
        items, topics = backend.collection("items"), backend.collection("topics")
        seconds, points, vector_points, disk, phases = [], [], [], [], []
        for run in range(args.runs):
            corpus = synthetic.churn_corpus(run, live=args.live, turnover=args.turnover, size=args.size)
            synthetic.store_corpus(items, corpus, prune=True)
            started = time.perf_counter()
            report = recluster(settings, backend)
            seconds.append(time.perf_counter() - started)
            phases.append(report.phases)
            points.append(topics.count())
            vector_points.append(topics.count(Filter(must={"kind": ["topic", "theme"]})))
            disk.append(_disk_bytes(Path(tmp) / "store" / "topics") if run in (0, args.runs - 1) else 0)
        backend.close()
    last = args.runs
    print(f"runs: {last} ({args.live} live topics, {args.turnover} ending and beginning each run)")
    print(f"topics_points: {points[0]} at run 1, {points[-1]} at run {last} (ended topics, lineage, runs)")
    print(
        f"topics_vector_points: {vector_points[0]} at run 1, {vector_points[-1]} at run {last} "
        f"(target: no more than at run 1)"
    )
    print(f"topics_disk: {disk[0] / 2**20:.2f} MiB at run 1, {disk[-1] / 2**20:.2f} MiB at run {last}")
    for name in phases[0]:
        before = statistics.median(p.get(name, 0.0) for p in phases[1:6])
        after = statistics.median(p.get(name, 0.0) for p in phases[-5:])
        print(f"phase_{name}: {before:.3f} s at runs 2-6, {after:.3f} s at the last 5 runs")
    early, late = statistics.median(seconds[1:6]), statistics.median(seconds[-5:])
    print(
        f"recluster_time_ratio: {late / early:.2f} (median of the last 5 runs {late:.3f} s over runs 2-6 "
        f"{early:.3f} s; target <= 1.5)"
    )


if __name__ == "__main__":
    main()
