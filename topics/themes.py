"""Themes: the coarse level of the topic tree. Every topic belongs to exactly one theme.

`group_topics` groups a fit's topics by average-linkage agglomeration of their centroids, cut where
two groups' centroids are less similar than ``theme_threshold`` (cosine). The number of themes comes
from the data; a higher threshold gives more, narrower themes.
"""

from __future__ import annotations

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage


def group_topics(centroids: np.ndarray, threshold: float) -> np.ndarray:
    """Theme label (0..t-1, largest-first order of first appearance) of each of k topic centroids."""
    k = centroids.shape[0]
    if k == 0:
        return np.zeros(0, np.int64)
    if k == 1:
        return np.zeros(1, np.int64)
    tree = linkage(centroids.astype(np.float64), method="average", metric="cosine")
    raw = fcluster(tree, t=1.0 - threshold, criterion="distance")
    _, first = np.unique(raw, return_index=True)
    order = {int(raw[i]): rank for rank, i in enumerate(sorted(first))}  # topic 0 (largest) -> theme 0
    return np.array([order[int(r)] for r in raw], np.int64)
