"""What routing a search through its topics costs in recall, and what it saves, on an existing store.

    python bench/routing.py --data bench/out/scale/1000000/data [--queries 50] [--budgets 20000 50000]

For `--queries` items drawn at random, the query is the item's `text` vector plus noise (cosine ~0.8
to it), asked of both CLIP views as `topics search` asks them. Truth is the exact scan of every item
(top 10 per view); a routed search scores the items of the nearest topics up to an item budget (the
default `topics.query.routing.PROBE_ITEMS`, others with `--budgets`; `0` means the old rule, 12 topics),
the outliers and the pending items. Prints recall@10 (both views pooled) and the engine time of the
routed item searches, p50. Stop `topics serve` first: the embedded store is locked to one process.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from indexer.config import load_settings  # noqa: E402
from indexer.index import Index  # noqa: E402
from indexer.store.base import Filter  # noqa: E402
from topics import catalog  # noqa: E402
from topics.query import routing, search  # noqa: E402

VIEWS = ("image", "text")


def line(name: str, value: float, unit: str = "", target: str = "") -> None:
    print(f"{name}: {value:.4g}{' ' + unit if unit else ''}{f' (target {target})' if target else ''}")


def query_vectors(index: Index, count: int, seed: int) -> list[np.ndarray]:
    total = index.items.count()
    rng = np.random.default_rng(seed)
    keep = count / max(total, 1) * 1.5
    picked: list[np.ndarray] = []
    for points in index.items.scroll(vectors=["text"], payload=False, batch=4096):
        picked += [
            np.asarray(p.vectors["text"]) for p in points if "text" in p.vectors and rng.random() < keep
        ]
    out = []
    for vector in picked[:count]:
        noise = rng.standard_normal(vector.shape[0]).astype(np.float32)
        query = vector / np.linalg.norm(vector) + 0.8 * noise / np.linalg.norm(noise)
        out.append((query / np.linalg.norm(query)).astype(np.float32))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--budgets", type=int, nargs="*", default=[])
    parser.add_argument("--seed", type=int, default=1)
    opts = parser.parse_args()
    settings = load_settings(data_dir=opts.data)
    with Index(settings) as index:
        run = catalog.current_run(index.backend)
        if run is None:
            raise SystemExit("no run yet: `topics recluster` first")
        queries = query_vectors(index, opts.queries, opts.seed)
        truth = [{v: {h.id for h in index.items.search(v, q, limit=10)} for v in VIEWS} for q in queries]
        ranked = [
            search._ranked_topics(index, dict.fromkeys(VIEWS, q), run, routing.PROBE_TOPICS, None)
            for q in queries
        ]
        line("items", run.n_items)
        line("queries", len(queries))
        for budget in [routing.PROBE_ITEMS, *opts.budgets]:
            found, seconds, probed = [], [], []
            for query, exact, nearest in zip(queries, truth, ranked, strict=True):
                topics = routing.probed_topics(nearest, budget or math.inf)
                probed.append(sum(t.size for t in nearest if t.topic_id in topics))
                wheres = routing.routed_filters(Filter(), run, topics)
                started = time.perf_counter()
                for view in VIEWS:
                    hits = search._view_hits(index, view, query, wheres, 40)[:10]
                    found.append(len(exact[view] & {h.id for h in hits}) / 10)
                seconds.append(time.perf_counter() - started)
            name = "12_topics" if budget == 0 else f"budget_{budget}"
            default = "(the default budget)" if budget == routing.PROBE_ITEMS else ""
            line(f"{name}_recall_at_10", float(np.mean(found)), default)
            line(f"{name}_engine_p50", 1000 * float(np.median(seconds)), "ms (both views)")
            line(f"{name}_probed_items_p50", float(np.median(probed)), "items")
        started = time.perf_counter()
        for query in queries[:10]:
            for view in VIEWS:
                index.items.search(view, query, limit=40)
        line("exact_scan_p50", 1000 * (time.perf_counter() - started) / 10, "ms (both views, mean of 10)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
