"""The fit's parameters (`ClusterParams`) and the defaults that scale with the sample.

Every knob a user can set is declared once, in `indexer.config.ClusterSettings` (its default and its
bounds); `ClusterParams` takes its defaults from that section and `from_settings` copies the section's
fields by name. Only the fit's internal knobs (`graph_size`, `refine_rounds`), which no setting
exposes, have their defaults here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Literal

from indexer.config import ClusterSettings

_SETTINGS = ClusterSettings()  # the defaults, as the settings section declares them


@dataclass(frozen=True)
class ClusterParams:
    """Knobs of one recluster run; ``None`` means a default that scales with the sample size."""

    min_cluster_size: int | None = _SETTINGS.min_cluster_size
    min_samples: int | None = _SETTINGS.min_samples
    reduce_dim: int | None = _SETTINGS.reduce_dim  # PCA dims first; None: none (leiden), 32 (hdbscan)
    outlier_threshold: float | None = _SETTINGS.outlier_threshold  # cosine: outliers above it join a topic
    seed: int = _SETTINGS.seed
    method: Literal["leiden", "hdbscan"] = _SETTINGS.method
    n_neighbors: int = _SETTINGS.n_neighbors  # kNN graph degree (leiden)
    resolution: float = _SETTINGS.resolution  # modularity resolution of the items' graph: higher, more topics
    merge_threshold: float = _SETTINGS.merge_threshold  # cut communities whose halves score this stay whole
    graph_size: int = 20_000  # communities are searched on at most this many items of the sample
    refine_rounds: int = 2  # nearest-centroid rounds over the whole sample after the community search
    theme_join_cosine: float = _SETTINGS.theme_join_cosine  # centred centroids this alike: one theme
    theme_resolution: float = _SETTINGS.theme_resolution  # of the topic graph: higher, more themes
    split_resolution: float | None = _SETTINGS.split_resolution or None  # finer communities; None: no splits
    split_separation: float = _SETTINGS.split_separation  # ...kept this many spreads apart

    @classmethod
    def from_settings(cls, s: ClusterSettings) -> ClusterParams:
        """The fit's knobs from the ``cluster`` settings section: every field both declare, by name
        (a `split_resolution` of 0 in the settings means no splits)."""
        given = {f.name: getattr(s, f.name) for f in fields(cls) if f.name in type(s).model_fields}
        return cls(**{**given, "split_resolution": s.split_resolution or None})


def default_min_cluster_size(n: int) -> int:
    """Smallest topic worth naming: grows like sqrt(n) so big corpora do not shatter into crumbs."""
    return max(5, round(math.sqrt(n) / 10))
