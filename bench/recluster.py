"""Recluster job figures: quality vs truth, id stability, lineage per drift scenario, time and memory.

Prints `name: value unit (target)` lines, in one run:

- ``steady_ari``: ARI vs truth (outliers count as one more cluster) on the steady scenario (≥ 0.9), and
  on the hard synthetic mixture (siblings at cosine 0.95–0.97, 100× sizes, anisotropy, 5% noise).
- ``id_kept_share``: over 10 successive runs of a steady corpus (+2% items per run), the share of
  (run, truth cluster) pairs whose majority topic id is the one it had in the previous run (≥ 0.95).
- ``events_<scenario>``: the lineage events reported, and whether the expected ones were among them.
- ``recluster_wall`` / ``recluster_peak_rss`` at ``--n`` items × 512 (100k: 60 s, 2 GB; 1M: 15 min,
  6 GB), measured in a fresh child process over an embedded (edge) store filled beforehand. The HNSW
  build (`optimize`) is timed only with ``--optimize``: it is index maintenance, minutes at 100k.
- With umap-learn installed, ``umap_ratio_*``: the same figures for UMAP + HDBSCAN divided by ours.

Run: .venv/bin/python bench/recluster.py [--n 100000] [--no-scale] [--no-umap]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # evaluation/ is not installed

import topics.recluster.job as reclustering
from evaluation import synthetic
from evaluation.quality import adjusted_rand
from indexer.config import Settings, load_settings
from indexer.store import open_backend
from indexer.store.base import Backend
from topics.fit.clustering import Clustering
from topics.fit.params import ClusterParams, default_min_cluster_size
from topics.ids import OUTLIER

TARGETS = {100_000: (60.0, 2.0), 1_000_000: (900.0, 6.0)}


# ---- methods ----


def fit_umap_hdbscan(sample: np.ndarray, params: ClusterParams) -> Clustering:
    """The common baseline: UMAP (cosine, 5-d) then HDBSCAN, centroids back in the input space.

    It has no coarse level: each topic is its own theme (the job writes a theme per topic), so the
    comparison stays one of topics, as the figures it prints are."""
    import hdbscan
    import umap

    reduced = umap.UMAP(
        n_components=5, n_neighbors=15, metric="cosine", random_state=params.seed
    ).fit_transform(sample)
    min_size = params.min_cluster_size or default_min_cluster_size(len(sample))
    labels = hdbscan.HDBSCAN(min_cluster_size=max(2, min_size), min_samples=params.min_samples).fit_predict(
        reduced
    )
    k = int(labels.max()) + 1
    sums = np.zeros((k, sample.shape[1]))
    np.add.at(sums, labels[labels >= 0], sample[labels >= 0])
    centroids = (sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)).astype(np.float32)
    floors = np.array(
        [np.quantile(sample[labels == t] @ centroids[t], 0.02) for t in range(k)], dtype=np.float32
    )
    themes = np.arange(k, dtype=np.int64)
    return Clustering(labels=labels.astype(np.int64), centroids=centroids, floors=floors, themes=themes)


@contextlib.contextmanager
def method(name: str) -> Iterator[None]:
    """Run the job with `name`'s fit ("ours" is the project's `fit_clusters`)."""
    original = reclustering.fit_clusters
    if name == "umap":
        reclustering.fit_clusters = fit_umap_hdbscan
    try:
        yield
    finally:
        reclustering.fit_clusters = original


# ---- helpers ----


def fresh(tmp: Path, name: str) -> tuple[Settings, Backend]:
    settings = load_settings(data_dir=tmp / name, store={"backend": "memory"})
    return settings, open_backend(settings)


def assignment_of(backend: Backend, ids: list[str]) -> np.ndarray:
    got = synthetic.assigned_topics(backend)
    return np.array([OUTLIER if got[i] is None else got[i] for i in ids])


def majority(truth: np.ndarray, found: np.ndarray) -> dict[int, int]:
    return {
        int(k): Counter(found[truth == k].tolist()).most_common(1)[0][0] for k in np.unique(truth) if k >= 0
    }


# ---- figures ----


def steady_ari(tmp: Path, corpus: synthetic.Corpus, name: str) -> float:
    settings, backend = fresh(tmp, name)
    synthetic.store_corpus(backend.collection("items"), corpus, text_noise=0.2)
    reclustering.recluster(settings, backend)
    ari = adjusted_rand(corpus.labels, assignment_of(backend, corpus.ids))
    backend.close()
    return ari


def id_kept_share(tmp: Path, name: str, runs: int = 10) -> float:
    rng = np.random.default_rng(1)
    clusters = [synthetic.Cluster(c, 200, 0.5) for c in synthetic.random_centres(10, 512, rng)]
    corpus = synthetic.sample_mixture(clusters, rng)
    settings, backend = fresh(tmp, name)
    items = backend.collection("items")
    kept = total = 0
    previous: dict[int, int] | None = None
    for run in range(runs):
        if run:
            extra = synthetic.sample_mixture([synthetic.Cluster(c.centre, 4, c.noise) for c in clusters], rng)
            corpus = synthetic.extend_corpus(corpus, extra)
        synthetic.store_corpus(items, corpus)
        reclustering.recluster(settings, backend)
        now = majority(corpus.labels, assignment_of(backend, corpus.ids))
        if previous is not None:
            kept += sum(now[k] == previous[k] for k in previous)
            total += len(previous)
        previous = now
    backend.close()
    return kept / total


def scenario_events(tmp: Path, name: str) -> tuple[list[str], bool]:
    scenario = synthetic.drift_scenario(name, k=6, size=150, seed=5)
    settings, backend = fresh(tmp, f"events-{name}")
    items = backend.collection("items")
    maps = []
    report = None
    for corpus in scenario.runs:
        synthetic.store_corpus(items, corpus, prune=True)
        report = reclustering.recluster(settings, backend)
        maps.append(majority(corpus.labels, assignment_of(backend, corpus.ids)))
    backend.close()
    assert report is not None
    got = {(e.kind, e.before, e.after) for e in report.events}
    found = all(
        (e.kind, tuple(sorted(maps[0][k] for k in e.before)), tuple(sorted(maps[1][k] for k in e.after)))
        in got
        for e in scenario.expected[0]
    )
    counts = Counter(e.kind for e in report.events)
    return [f"{kind}×{n}" for kind, n in sorted(counts.items())], found


def fill_store(data_dir: Path, n: int, optimize: bool) -> tuple[float, float]:
    """Ingest `n` hard-mixture items, then index them as a previous night's run would have."""
    settings = load_settings(data_dir=data_dir, store={"backend": "edge"})
    backend = open_backend(settings)
    items = backend.collection("items")
    clusters = synthetic.hard_clusters(k=50, n=n, seed=2)
    started = time.perf_counter()
    for batch in synthetic.stream_mixture(clusters, n, seed=2, batch=20_000, background=0.05):
        synthetic.store_corpus(items, batch, text_noise=0.2)
    filled = time.perf_counter()
    if optimize:
        items.optimize()
    backend.close()
    return filled - started, time.perf_counter() - filled


def child_recluster(data_dir: Path, method_name: str, optimize: bool) -> None:
    """Child process: one recluster over the filled store; prints wall time and own peak RSS."""
    settings = load_settings(data_dir=data_dir, store={"backend": "edge"})
    backend = open_backend(settings)
    peaks: dict[str, float] = {"opened": peak_rss_gb()}

    def on_phase(name: str) -> None:
        if name != "items_batch":
            peaks[name] = peak_rss_gb()

    with method(method_name):
        report = reclustering.recluster(settings, backend, on_phase=on_phase, optimize=optimize)
    backend.close()
    out = {
        "wall": report.seconds,
        "rss": peak_rss_gb(),
        "topics": report.n_topics,
        "outliers": report.n_outliers,
        "phases": report.phases,
        "peak_after": {k: round(v, 2) for k, v in peaks.items()},
    }
    print(json.dumps(out))


def peak_rss_gb() -> float:
    """This process's peak resident set so far (Linux ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def scale(data_dir: Path, method_name: str, optimize: bool) -> dict:
    cmd = [sys.executable, __file__, "--child", str(data_dir), "--method", method_name]
    cmd += ["--optimize"] if optimize else []
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"recluster child failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---- main ----


def quality(tmp: Path, name: str) -> dict[str, float]:
    with method(name):
        steady = synthetic.drift_scenario("steady", k=10, size=300, noise=0.5, seed=3).runs[0]
        hard = synthetic.hard_mixture(k=20, n=6_000, seed=3)
        return {
            "steady_ari": steady_ari(tmp, steady, f"{name}-steady"),
            "hard_ari": steady_ari(tmp, hard, f"{name}-hard"),
            "id_kept_share": id_kept_share(tmp, f"{name}-ids"),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--no-scale", action="store_true")
    parser.add_argument("--no-umap", action="store_true")
    parser.add_argument("--no-quality", action="store_true")
    parser.add_argument("--optimize", action="store_true", help="build HNSW (fill and run) and time it")
    parser.add_argument("--child", type=Path)
    parser.add_argument("--method", default="ours")
    args = parser.parse_args()
    if args.child:
        child_recluster(args.child, args.method, args.optimize)
        return
    umap_ok = not args.no_umap and importlib.util.find_spec("umap") is not None
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        ours = {} if args.no_quality else quality(tmp, "ours")
        if ours:
            print(f"steady_ari: {ours['steady_ari']:.3f} (target >= 0.9)")
            print(f"hard_ari: {ours['hard_ari']:.3f} (hard mixture; no target here)")
            print(f"id_kept_share: {ours['id_kept_share']:.3f} over 10 runs (target >= 0.95)")
            for name in synthetic.SCENARIOS:
                kinds, found = scenario_events(tmp, name)
                print(f"events_{name}: {' '.join(kinds)} (expected events found: {'yes' if found else 'NO'})")
        ours_scale = None
        if not args.no_scale:
            wall_target, rss_target = TARGETS.get(args.n, (None, None))
            fill_s, index_s = fill_store(tmp / "scale", args.n, args.optimize)
            print(f"fill_store: {fill_s:.1f} s ({args.n} items x 512, image+text, edge)")
            if args.optimize:
                print(f"index_store: {index_s:.1f} s (first HNSW build of the ingested items)")
            ours_scale = scale(tmp / "scale", "ours", args.optimize)
            suffix = f" (target {wall_target:.0f} s)" if wall_target else ""
            print(f"recluster_wall: {ours_scale['wall']:.1f} s at n={args.n}{suffix}")
            optimized = ours_scale["phases"].get("optimized")
            shown = f"{optimized:.1f} s" if optimized is not None else "not run (--optimize to time it)"
            print(f"recluster_optimize: {shown}")
            suffix = f" (target {rss_target:.0f} GB)" if rss_target else ""
            print(f"recluster_peak_rss: {ours_scale['rss']:.2f} GB at n={args.n}{suffix}")
            print(f"recluster_topics: {ours_scale['topics']} topics, {ours_scale['outliers']} outliers")
            print(f"recluster_phases: {ours_scale['phases']} s")
            print(f"recluster_peak_rss_after_phase: {ours_scale['peak_after']} GB")
        if not umap_ok:
            print("umap_ratio: not measured (umap-learn not installed, or --no-umap)")
            return
        theirs = {} if args.no_quality else quality(tmp, "umap")
        for key in theirs:
            print(
                f"umap_ratio_{key}: {theirs[key] / max(ours[key], 1e-9):.2f} (UMAP+HDBSCAN {theirs[key]:.3f})"
            )
        if ours_scale is not None:
            umap_scale = scale(tmp / "scale", "umap", args.optimize)
            print(
                f"umap_ratio_wall: {umap_scale['wall'] / ours_scale['wall']:.2f} ({umap_scale['wall']:.1f} s)"
            )
            print(f"umap_ratio_rss: {umap_scale['rss'] / ours_scale['rss']:.2f} ({umap_scale['rss']:.2f} GB)")


if __name__ == "__main__":
    main()
