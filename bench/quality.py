"""Topic quality at both levels on real labelled corpora and hard synthetic mixtures: ours vs BERTopic.

For each dataset and seed both methods cluster the same precomputed embeddings. Scores are over all
items with outliers counted as one cluster (evaluation.quality): themes against the coarse classes,
topics against the fine ones (a one-level corpus's only classes serve both). AMI and ARI are what the
targets read; NMI is a column. BERTopic (defaults, `BERTopic().fit_transform(docs, vectors)`, the
dev extra: `pip install bertopic umap-learn`) has one level, scored against both; its labels and wall
time per dataset and seed are cached under bench/out/bertopic/ (`--fresh-bertopic` reruns them).
The corpora's Debian packages: `apt-get install wordnet-base fortunes unicode-data python3-doc`.
Prints a table, then `name: value unit (target ...)` lines, means over seeds.

    .venv/bin/python bench/quality.py                 # everything, 3 seeds
    .venv/bin/python bench/quality.py --only emoji two-level --seeds 1
    .venv/bin/python bench/quality.py --no-bertopic --set split_resolution=none   # one knob changed
    .venv/bin/python bench/quality.py --ceiling   # + how far any grouping of our topics into themes can go
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.corpora import LOADERS, OUT_DIR, embedded_corpora, has_bertopic
from evaluation.quality import Agreement, agreement, grouping_ceiling
from evaluation.synthetic import hard_mixture, two_level_mixture
from topics.fit.clustering import fit_clusters
from topics.fit.params import ClusterParams

BERTOPIC_CACHE = OUT_DIR / "bertopic"


@dataclass(frozen=True)
class Dataset:
    name: str
    kind: str  # "real" or "synthetic"
    vectors: np.ndarray
    fine: np.ndarray  # topic-level truth
    coarse: np.ndarray  # theme-level truth (the fine truth again for one-level data)
    docs: list[str]

    @property
    def n_coarse(self) -> int:
        return len(np.unique(self.coarse[self.coarse >= 0]))


@dataclass(frozen=True)
class Run:
    topics: Agreement  # against the fine truth
    themes: Agreement  # against the coarse truth
    seconds: float
    ceiling: float | None = None  # themes' AMI a label-aware grouping of these topics reaches (--ceiling)


def datasets(only: set[str] | None) -> list[Dataset]:
    """Real corpora (skipped with the install hint when their package is missing) and mixtures."""
    out = []
    for name, corpus, vectors in embedded_corpora(only):
        coarse = corpus.coarse if corpus.coarse is not None else corpus.labels
        out.append(Dataset(name, "real", vectors, corpus.labels, coarse, list(corpus.texts)))
    synthetic = {
        "hard-k20": lambda: hard_mixture(k=20, n=10_000, seed=0),
        "two-level": lambda: two_level_mixture(groups=8, n=10_000, seed=0),
    }
    for name, make in synthetic.items():
        if only and name not in only:
            continue
        mix = make()
        coarse = mix.groups if mix.groups is not None else mix.labels
        docs = [f"item{i} cluster{t}" for i, t in enumerate(mix.labels)]  # BERTopic needs some text
        out.append(Dataset(name, "synthetic", mix.vectors.astype(np.float32), mix.labels, coarse, docs))
    return out


def ours(data: Dataset, seed: int, changed: dict[str, object] | None = None, ceiling: bool = False) -> Run:
    start = time.perf_counter()
    fit = fit_clusters(data.vectors, replace(ClusterParams(seed=seed), **(changed or {})))
    seconds = time.perf_counter() - start
    themes = fit.theme_of(fit.labels)
    best = grouping_ceiling(data.coarse, fit.labels)[0] if ceiling else None
    return Run(agreement(data.fine, fit.labels), agreement(data.coarse, themes), seconds, best)


def bertopic(data: Dataset, seed: int, fresh: bool) -> Run:
    """BERTopic's defaults on the same embeddings (its UMAP is unseeded by default), cached."""
    path = BERTOPIC_CACHE / f"{data.name}-{len(data.fine)}-{seed}.json"
    if fresh or not path.is_file():
        from bertopic import BERTopic

        start = time.perf_counter()
        topics, _ = BERTopic().fit_transform(data.docs, data.vectors)
        record = {"seconds": time.perf_counter() - start, "labels": [int(t) for t in topics]}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record))
    record = json.loads(path.read_text())
    labels = np.asarray(record["labels"], np.int64)
    return Run(agreement(data.fine, labels), agreement(data.coarse, labels), float(record["seconds"]))


def mean(runs: list[Run], level: str, field: str) -> float:
    """Mean over seeds of an `Agreement` field at `level`, or of a run's own `seconds` or `ceiling`."""
    if field in ("seconds", "ceiling"):
        return float(np.mean([getattr(r, field) for r in runs]))
    return float(np.mean([getattr(getattr(r, level), field) for r in runs]))


HEADER = (
    f"{'dataset':10s} {'method':9s} {'level':6s} {'count':>6s} {'outl':>6s} {'AMI':>6s} {'ARI':>6s} "
    f"{'NMI':>6s} {'wall s':>7s}"
)


def rows(name: str, method: str, runs: list[Run]) -> list[str]:
    wall = mean(runs, "topics", "seconds")
    return [
        f"{name:10s} {method:9s} {level[:-1]:6s} {mean(runs, level, 'n_topics'):6.1f} "
        f"{mean(runs, level, 'outlier_share'):6.3f} {mean(runs, level, 'ami'):6.3f} "
        f"{mean(runs, level, 'ari'):6.3f} {mean(runs, level, 'nmi'):6.3f} {wall:7.1f}"
        for level in ("themes", "topics")
    ]


def report(data: Dataset, mine: list[Run], theirs: list[Run] | None) -> list[str]:
    """Target lines for one dataset (means over seeds)."""
    n, lines = data.name, []
    if data.kind == "synthetic":
        return [
            f"{n}.themes.ari: {mean(mine, 'themes', 'ari'):.3f} (target >= 0.9)",
            f"{n}.topics.ari: {mean(mine, 'topics', 'ari'):.3f} (target >= 0.9)",
        ]
    for level in ("themes", "topics"):
        lines.append(f"{n}.{level}.outliers: {mean(mine, level, 'outlier_share'):.3f} (target <= 0.10)")
        if theirs:
            d_ami = mean(mine, level, "ami") - mean(theirs, level, "ami")
            d_ari = mean(mine, level, "ari") - mean(theirs, level, "ari")
            lines.append(f"{n}.{level}.ami_minus_bertopic: {d_ami:+.3f} (target >= +0.03)")
            lines.append(f"{n}.{level}.ari_minus_bertopic: {d_ari:+.3f} (target >= 0)")
    if mine[0].ceiling is not None:
        best = mean(mine, "themes", "ceiling")
        wanted = f"; the target reads {mean(theirs, 'themes', 'ami') + 0.03:.3f}" if theirs else ""
        lines.append(
            f"{n}.themes.grouping_ceiling_ami: {best:.3f} (ours {mean(mine, 'themes', 'ami'):.3f}{wanted})"
        )
    ratio = mean(mine, "themes", "n_topics") / data.n_coarse
    lines.append(f"{n}.themes.count_per_coarse_class: {ratio:.2f} x (target 0.5-3)")
    if theirs:
        wall = mean(mine, "topics", "seconds") / max(mean(theirs, "topics", "seconds"), 1e-9)
        lines.append(f"{n}.wall_ratio_vs_bertopic: {wall:.2f} x (target <= 1)")
    return lines


def knob(text: str) -> tuple[str, object]:
    """`name=value` of a `ClusterParams` field: a number, or `none` for the field's off value."""
    name, _, value = text.partition("=")
    known = {f.name for f in fields(ClusterParams)}
    if name not in known or not value:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE with NAME one of {', '.join(sorted(known))}")
    if value.lower() == "none":
        return name, None
    try:
        return name, int(value) if value.lstrip("-").isdigit() else float(value)
    except ValueError:
        return name, value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--only", nargs="*", help=f"dataset names ({' '.join(LOADERS)} hard-k20 two-level)")
    parser.add_argument("--no-bertopic", action="store_true")
    parser.add_argument("--fresh-bertopic", action="store_true", help="rerun BERTopic, ignoring its cache")
    parser.add_argument(
        "--ceiling",
        action="store_true",
        help="also the themes' AMI a label-aware grouping of our topics reaches (slow: minutes a corpus)",
    )
    parser.add_argument(
        "--set", type=knob, action="append", default=[], metavar="NAME=VALUE", help="a ClusterParams knob"
    )
    args = parser.parse_args()
    changed = dict(args.set)
    with_bertopic = not args.no_bertopic and has_bertopic()
    print(HEADER)
    targets: list[str] = []
    for data in datasets(set(args.only) if args.only else None):
        ceiling = args.ceiling and data.kind == "real"
        mine = [ours(data, seed, changed, ceiling) for seed in range(args.seeds)]
        print("\n".join(rows(data.name, "ours", mine)), flush=True)
        theirs = None
        if with_bertopic and data.kind == "real":
            theirs = [bertopic(data, seed, args.fresh_bertopic) for seed in range(args.seeds)]
            print("\n".join(rows(data.name, "bertopic", theirs)), flush=True)
        targets += report(data, mine, theirs)
    print("\n".join(targets))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
