"""Topic resolution against a corpus of hundreds of fine topics: the fit alone, one line per setting.

    python bench/resolution.py [--n 50000] [--resolutions 2 4 8 16 32] [--seed 5]

Draws `--n` items of `bench/scale.py`'s corpus (`evaluation.scale_corpus`: 299 fine topics in 60
groups, sizes 100× apart, siblings at cosine 0.95–0.97, 3 % noise), fuses their two views as the
recluster does, and fits them with `topics.cluster.fit_clusters` at each `cluster.resolution`: topic
count and ARI against the fine topics, theme count and ARI against the groups (all items, outliers one
more cluster). The default resolution was chosen on human-labelled corpora (docs/quality.md); this
shows what it costs on a corpus whose topics are this fine (docs/scaling.md).
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
from topics.cluster import ClusterParams, fit_clusters


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
    default = ClusterParams().resolution
    for resolution in opts.resolutions:
        started = time.perf_counter()
        fit = fit_clusters(fused, replace(ClusterParams(), resolution=resolution))
        seconds = time.perf_counter() - started
        name = f"resolution_{resolution:g}" + ("_default" if resolution == default else "")
        print(f"{name}_topics: {fit.n_topics} (of {corpus.labels.max() + 1} fine topics)")
        print(f"{name}_topic_ari: {adjusted_rand(corpus.labels, fit.labels):.3f}")
        print(f"{name}_themes: {fit.n_themes} (of {corpus.groups.max() + 1} groups)")
        print(f"{name}_theme_ari: {adjusted_rand(corpus.groups, fit.theme_of(fit.labels)):.3f}")
        print(f"{name}_fit: {seconds:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
