"""Query latency at scale: `topics search`, `list` and `show` against a store of N items.

    python bench/query.py [--n 100000] [--queries 20]

Builds an embedded store of N synthetic items (CLIP-shaped `image` and `text` vectors in 100 topics,
with captions), reclusters it, then measures:
- search through a running `topics serve` (its model stays loaded): the library call over the socket,
  and the whole `topics search` command as a user runs it (a new process each time), both with the
  thin client (the service parses and runs the command, cli/client.py) and with the command line run
  in its own process (TOPICS_CLIENT=off: typer, rich, pydantic and numpy imported each time);
- search from a cold process with no service (loads the model each time);
- `topics list` and `topics show` with the service running.
Target: search p50 ≤ 300 ms with serve running.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from evaluation.synthetic import easy_mixture, item_id  # noqa: E402
from indexer.config import load_settings  # noqa: E402
from indexer.index import Index  # noqa: E402
from indexer.pipeline import item_schema  # noqa: E402
from indexer.store.base import Point  # noqa: E402
from indexer.store.shared import CONTROL_FILE, RemoteBackend  # noqa: E402
from topics.query.search import search_anywhere  # noqa: E402
from topics.recluster import recluster  # noqa: E402

WORDS = "farmers tractor protest beach sunset cat football goal flood rain market food city night".split()
QUERIES = ["tractor protest", "beach sunset", "cat on a sofa", "flooded street", "night market food"]


def build_store(settings, n: int) -> None:
    corpus = easy_mixture(k=100, n=n, dim=512, seed=1)
    rng = random.Random(0)
    with Index(settings) as index:
        index.items.ensure(item_schema(index.clip, None, ("image", "text")))
        for start in range(0, n, 2000):
            vectors = corpus.vectors[start : start + 2000]
            index.items.upsert(
                [
                    Point(
                        item_id(start + j),
                        {"image": v, "text": v},
                        {
                            "caption": " ".join(rng.choice(WORDS) for _ in range(8)),
                            "source": "folder",
                            "pending": 1,
                            "created_at": "2026-11-01T00:00:00+00:00",
                        },
                    )
                    for j, v in enumerate(vectors)
                ]
            )
        index.items.flush()
        report = recluster(settings, index.backend)
        print(f"store: {n} items, {report.n_topics} topics (recluster {report.seconds:.1f} s)")


def timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "cli", *command], env=env, cwd=ROOT, capture_output=True)
    if result.returncode != 0:
        raise SystemExit(f"topics {' '.join(command)} failed: {result.stderr.decode()[-500:]}")
    return (time.perf_counter() - started) * 1000


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--arch", default="ViT-B-32")
    parser.add_argument("--pretrained", default=os.environ.get("TOPICS_MODEL__PRETRAINED", "none"))
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-query-") as tmp:
        data_dir = Path(tmp) / "data"
        env = {
            **os.environ,
            "TOPICS_DATA_DIR": str(data_dir),
            "TOPICS_MODEL__ARCH": opts.arch,
            "TOPICS_MODEL__PRETRAINED": opts.pretrained,
            "HF_HUB_OFFLINE": "1",
        }
        settings = load_settings(data_dir=data_dir, model={"arch": opts.arch, "pretrained": opts.pretrained})
        build_store(settings, opts.n)
        with Index(settings) as index:
            index.items.optimize()  # the HNSW index, as after a scheduled recluster

        cold = [timed(["search", QUERIES[i % len(QUERIES)], "--json"], env) for i in range(3)]
        serve = subprocess.Popen(
            [sys.executable, "-m", "cli", "serve"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            while (
                not (data_dir / CONTROL_FILE).exists()
                or json.loads((data_dir / CONTROL_FILE).read_text())["pid"] != serve.pid
            ):
                time.sleep(0.1)
            remote = RemoteBackend(data_dir)
            index = Index(settings, backend=remote)
            search_anywhere(index, "warm up")  # the service loads its model on the first search
            library = []
            for i in range(opts.queries):
                started = time.perf_counter()
                search_anywhere(index, QUERIES[i % len(QUERIES)], limit=10)
                library.append((time.perf_counter() - started) * 1000)
            cli = [timed(["search", QUERIES[i % len(QUERIES)], "--json"], env) for i in range(opts.queries)]
            direct_env = {**env, "TOPICS_CLIENT": "off"}  # the whole command line in its own process
            direct = [
                timed(["search", QUERIES[i % len(QUERIES)], "--json"], direct_env)
                for i in range(opts.queries // 2)
            ]
            listing = [timed(["list", "--json"], env) for _ in range(5)]
            showing = [timed(["show", "0", "--json"], env) for _ in range(5)]
            index.ledger.close()
            remote.close()
        finally:
            serve.terminate()
            serve.wait(timeout=120)
    print(f"search p50 via serve (library call): {pct(library, 50):.0f} ms (target <= 300 ms)")
    print(f"search p95 via serve (library call): {pct(library, 95):.0f} ms")
    print(f"search p50 via serve (topics search command): {pct(cli, 50):.0f} ms (target <= 300 ms)")
    print(f"search p95 via serve (topics search command): {pct(cli, 95):.0f} ms")
    print(f"search p50 via serve (command in its own process, TOPICS_CLIENT=off): {pct(direct, 50):.0f} ms")
    print(f"ratio thin client / own process: {pct(cli, 50) / pct(direct, 50):.2f}")
    print(f"search p50 cold process (loads the model): {pct(cold, 50):.0f} ms")
    print(f"list p50 via serve: {pct(listing, 50):.0f} ms")
    print(f"show p50 via serve: {pct(showing, 50):.0f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
