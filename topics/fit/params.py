"""The fit's parameters (`ClusterParams`) and the defaults that scale with the sample."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from indexer.config import ClusterSettings


@dataclass(frozen=True)
class ClusterParams:
    """Knobs of one recluster run; ``None`` means a default that scales with the sample size."""

    min_cluster_size: int | None = None
    min_samples: int | None = None
    reduce_dim: int | None = None  # PCA dims before the graph; None: none for leiden, 32 for hdbscan
    outlier_threshold: float | None = None  # cosine: outliers above it join the nearest topic
    seed: int = 0
    method: Literal["leiden", "hdbscan"] = "leiden"
    n_neighbors: int = 15  # kNN graph degree (leiden)
    resolution: float = 2.0  # modularity resolution of the items' graph (leiden): higher gives more topics
    merge_threshold: float = 0.55  # groups whose halves' cut scores this or more stay whole (fit.communities)
    graph_size: int = 20_000  # communities are searched on at most this many items of the sample
    refine_rounds: int = 2  # nearest-centroid rounds over the whole sample after the community search
    theme_join_cosine: float = 0.5  # themes whose centred centroids are this alike join (topics.fit.themes)
    theme_resolution: float = 4.0  # modularity resolution of the topic graph (topics.fit.themes): more themes
    split_resolution: float | None = 16.0  # finer communities proposed as splits of a topic; None: no splits
    split_separation: float = 6.0  # ...kept where they lie this many member spreads apart (`separation`)

    @classmethod
    def from_settings(cls, s: ClusterSettings) -> ClusterParams:
        """Take the clustering knobs from the ``cluster`` settings section."""
        return cls(
            min_cluster_size=s.min_cluster_size,
            min_samples=s.min_samples,
            reduce_dim=s.reduce_dim,
            outlier_threshold=s.outlier_threshold,
            seed=s.seed,
            method=s.method,
            resolution=s.resolution,
            merge_threshold=s.merge_threshold,
            n_neighbors=s.n_neighbors,
            theme_resolution=s.theme_resolution,
            theme_join_cosine=s.theme_join_cosine,
            split_resolution=s.split_resolution or None,
            split_separation=s.split_separation,
        )


def default_min_cluster_size(n: int) -> int:
    """Smallest topic worth naming: grows like sqrt(n) so big corpora do not shatter into crumbs."""
    return max(5, round(math.sqrt(n) / 10))
