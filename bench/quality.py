"""Topic quality on real labelled corpora and hard synthetic scenarios: ours against BERTopic.

For each corpus/scenario and seed, both methods cluster the same precomputed embeddings; NMI and
ARI are over all items with outliers counted as one cluster (evaluation.quality). Prints a table, then
`name: value unit (target ...)` lines. BERTopic is the dev extra: `pip install bertopic umap-learn`.

    .venv/bin/python bench/quality.py                 # everything, 3 seeds
    .venv/bin/python bench/quality.py --only wordnet --seeds 1
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.corpora import LOADERS, CorpusMissing, load_embedded
from evaluation.quality import Agreement, agreement
from evaluation.synthetic import hard_mixture
from topics.cluster import ClusterParams, fit_clusters

HARD_SCENARIOS = {"hard-k20": {"k": 20, "n": 10_000}, "hard-k40": {"k": 40, "n": 20_000}}


@dataclass(frozen=True)
class Dataset:
    name: str
    kind: str  # "real" or "synthetic"
    vectors: np.ndarray
    truth: np.ndarray
    docs: list[str]


@dataclass(frozen=True)
class Run:
    agreement: Agreement
    seconds: float


def datasets(only: set[str] | None) -> list[Dataset]:
    """Real corpora (skipped with the install hint when their package is missing) and scenarios."""
    out = []
    for name in LOADERS:
        if only and name not in only:
            continue
        try:
            corpus, vectors = load_embedded(name)
        except CorpusMissing as exc:
            print(f"# {name}: not run: {exc}")
            continue
        out.append(Dataset(name, "real", vectors, corpus.labels, list(corpus.texts)))
    for name, kw in HARD_SCENARIOS.items():
        if only and name not in only:
            continue
        mix = hard_mixture(seed=0, **kw)
        docs = [f"item{i} cluster{t}" for i, t in enumerate(mix.labels)]  # BERTopic needs some text
        out.append(Dataset(name, "synthetic", mix.vectors.astype(np.float32), mix.labels, docs))
    return out


def ours(data: Dataset, seed: int) -> np.ndarray:
    return fit_clusters(data.vectors, ClusterParams(seed=seed)).labels


def bertopic(data: Dataset, seed: int) -> np.ndarray:
    """BERTopic with default settings on the same embeddings (its UMAP is unseeded by default)."""
    from bertopic import BERTopic

    topics, _ = BERTopic().fit_transform(data.docs, data.vectors)
    return np.asarray(topics, np.int64)


def timed(fn: Callable[[Dataset, int], np.ndarray], data: Dataset, seed: int) -> Run:
    start = time.perf_counter()
    labels = fn(data, seed)
    return Run(agreement(data.truth, labels), time.perf_counter() - start)


def mean(runs: list[Run], field: str) -> float:
    if field == "seconds":
        return float(np.mean([r.seconds for r in runs]))
    return float(np.mean([getattr(r.agreement, field) for r in runs]))


HEADER = f"{'dataset':10s} {'method':9s} {'topics':>7s} {'outl':>6s} {'NMI':>6s} {'ARI':>6s} {'wall s':>7s}"


def row(name: str, method: str, runs: list[Run]) -> str:
    return (
        f"{name:10s} {method:9s} {mean(runs, 'n_topics'):7.1f} {mean(runs, 'outlier_share'):6.3f} "
        f"{mean(runs, 'nmi'):6.3f} {mean(runs, 'ari'):6.3f} {mean(runs, 'seconds'):7.1f}"
    )


def report(data: Dataset, mine: list[Run], theirs: list[Run] | None) -> list[str]:
    """Target lines for one dataset (means over seeds)."""
    n = data.name
    lines = [f"{n}.ours.nmi: {mean(mine, 'nmi'):.3f}", f"{n}.ours.ari: {mean(mine, 'ari'):.3f}"]
    if data.kind == "synthetic":
        lines[-1] += " (target >= 0.9)"
    else:
        lines.append(f"{n}.ours.outliers: {mean(mine, 'outlier_share'):.3f} (target <= 0.20)")
    if theirs:
        if data.kind == "real":
            d_nmi = mean(mine, "nmi") - mean(theirs, "nmi")
            d_ari = mean(mine, "ari") - mean(theirs, "ari")
            lines += [
                f"{n}.nmi_minus_bertopic: {d_nmi:+.3f} (target >= +0.05)",
                f"{n}.ari_minus_bertopic: {d_ari:+.3f} (target >= 0)",
            ]
        ratio = mean(mine, "seconds") / max(mean(theirs, "seconds"), 1e-9)
        lines.append(f"{n}.wall_ratio_vs_bertopic: {ratio:.2f} x (target <= 1)")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--only", nargs="*", help="dataset names (wordnet fortunes hard-k20 hard-k40)")
    parser.add_argument("--no-bertopic", action="store_true")
    args = parser.parse_args()
    with_bertopic = not args.no_bertopic and _has_bertopic()
    print(HEADER)
    targets: list[str] = []
    for data in datasets(set(args.only) if args.only else None):
        mine = [timed(ours, data, seed) for seed in range(args.seeds)]
        print(row(data.name, "ours", mine), flush=True)
        theirs = [timed(bertopic, data, seed) for seed in range(args.seeds)] if with_bertopic else None
        if theirs:
            print(row(data.name, "bertopic", theirs), flush=True)
        targets += report(data, mine, theirs)
    print("\n".join(targets))
    return 0


def _has_bertopic() -> bool:
    try:
        import bertopic  # noqa: F401
    except ImportError:
        print("# BERTopic not installed (pip install bertopic umap-learn): comparing nothing")
        return False
    return True


if __name__ == "__main__":
    raise SystemExit(main())
