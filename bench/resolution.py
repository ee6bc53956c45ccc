"""Topic resolution against a corpus of hundreds of fine topics: the fit alone, one line per setting.

    python bench/resolution.py [--n 50000] [--resolutions 2 4 8 16 32] [--seed 5]

Draws `--n` items of `bench/scale.py`'s corpus (`evaluation.scale_corpus`: 299 fine topics in 60
groups, sizes 100× apart, siblings at cosine 0.95–0.97, 3 % noise), fuses their two views as the
recluster does, and fits them with `topics.fit.clustering.fit_clusters` at each `cluster.resolution`, with the
split step (`cluster.split_resolution`, the default) and without it: topic count and ARI against the
fine topics, theme count and ARI against the groups (all items, outliers one more cluster). The default
resolution was chosen on human-labelled corpora (docs/quality.md); this shows what modularity alone
costs on a corpus whose topics are this fine and what the split step wins back (docs/scaling.md).
First it prints the `separation` the split step reads, over the true structure: between every two
sibling topics, and between the halves of each topic cut by a plane through its mean along its
widest axis (what a finer partition does to a topic that is one group).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evaluation.quality import adjusted_rand
from evaluation.scale_corpus import chunks, two_level_mixture
from indexer.embed.base import l2_normalise
from topics.fit.clustering import fit_clusters
from topics.fit.params import ClusterParams
from topics.fit.split import separation


def separations(vectors: np.ndarray, labels: np.ndarray, groups: np.ndarray, least: int = 10) -> None:
    """Percentiles (0, 5, 50, 95, 100) of `separation` between siblings and between a topic's halves."""
    siblings, halves = [], []
    for group in np.unique(groups[groups >= 0]):
        topics = [t for t in np.unique(labels[groups == group]) if (labels == t).sum() >= least]
        members = [vectors[labels == t] for t in topics]
        siblings += [separation(a, b) for i, a in enumerate(members) for b in members[i + 1 :]]
        for topic in members:
            centred = topic - topic.mean(axis=0)
            side = centred @ np.linalg.svd(centred, full_matrices=False)[2][0] > 0
            halves.append(separation(topic[side], topic[~side]))
    for name, values in (("siblings", siblings), ("halves_of_one_topic", halves)):
        cuts = " / ".join(f"{v:.2f}" for v in np.percentile(values, [0, 5, 50, 95, 100]))
        print(f"separation_{name}: {cuts} spreads (min / p5 / median / p95 / max of {len(values)} pairs)")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--resolutions", type=float, nargs="*", default=[2.0, 4.0, 8.0, 16.0, 32.0])
    parser.add_argument("--seed", type=int, default=5)
    opts = parser.parse_args()
    corpus = next(chunks(two_level_mixture(), opts.n, seed=opts.seed, chunk=opts.n))
    fused = l2_normalise(l2_normalise(corpus.image) + l2_normalise(corpus.text)).astype(np.float32)
    separations(fused, corpus.labels, corpus.groups)
    default = ClusterParams().resolution
    for resolution, split in ((r, s) for r in opts.resolutions for s in (True, False)):
        params = replace(ClusterParams(), resolution=resolution)
        if not split:
            params = replace(params, split_resolution=None)
        started = time.perf_counter()
        fit = fit_clusters(fused, params)
        seconds = time.perf_counter() - started
        name = f"resolution_{resolution:g}" + ("_split" if split else "_modularity_only")
        name += "_default" if resolution == default and split else ""
        print(f"{name}_topics: {fit.n_topics} (of {corpus.labels.max() + 1} fine topics)")
        print(f"{name}_topic_ari: {adjusted_rand(corpus.labels, fit.labels):.3f}")
        print(f"{name}_themes: {fit.n_themes} (of {corpus.groups.max() + 1} groups)")
        print(f"{name}_theme_ari: {adjusted_rand(corpus.groups, fit.theme_of(fit.labels)):.3f}")
        print(f"{name}_fit: {seconds:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
