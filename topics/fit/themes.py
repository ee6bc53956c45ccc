"""Themes: the coarse level of the topic tree. Every topic belongs to exactly one theme.

Topics are the communities of the items' kNN graph at ``resolution``; themes are communities of the
same graph at ``theme_resolution``, made of whole topics: `group_topics` contracts each topic to one
node (its inner edges become a self-loop, the edges between two topics one edge of their summed
weight) and runs Leiden on that topic graph. The tree is exact (an item's theme is its topic's theme),
the number of themes comes from the data, and a higher ``theme_resolution`` gives more, narrower ones.
Tight topics may share no edge at all, and the graph cannot group them: themes whose centred centroids
are at least ``theme_join_cosine`` alike are then joined (`join_close_themes`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from topics.fit.graph import leiden

if TYPE_CHECKING:
    import igraph


def group_topics(
    graph: igraph.Graph,
    labels: np.ndarray,
    centroids: np.ndarray,
    resolution: float,
    join_cosine: float,
    seed: int = 0,
) -> np.ndarray:
    """Theme (0..t-1, numbered from topic 0 on) of each topic 0..k-1.

    `labels` are the topics of `graph`'s nodes (-1: outlier, left out); a topic with no node in the
    graph is a theme of its own.
    """
    k = centroids.shape[0]
    if k < 2:
        return np.zeros(k, np.int64)
    kept = np.flatnonzero(labels >= 0)
    topic_graph = graph.subgraph(kept.tolist())
    topic_graph.add_vertices(k)  # one node per topic even where a topic has no graph node
    topic_graph.contract_vertices(np.concatenate([labels[kept], np.arange(k)]).tolist())
    topic_graph.simplify(multiple=True, loops=False, combine_edges="sum")
    raw = join_close_themes(leiden(topic_graph, resolution, seed), centroids, join_cosine)
    _, first = np.unique(raw, return_index=True)
    order = np.empty(raw.max() + 1, np.int64)
    order[raw[np.sort(first)]] = np.arange(len(first))
    return order[raw]


def join_close_themes(themes: np.ndarray, centroids: np.ndarray, cosine: float) -> np.ndarray:
    """Themes whose centred centroids are at least `cosine` alike become one, closest pair first.

    Tight topics share no kNN edges, so the graph cannot tell siblings from strangers; their
    centroids can. Centred (the mean topic centroid taken off), so that a corpus whose vectors all
    share one direction, as CLIP's do, is not joined into one theme.
    """
    centred = centroids.astype(np.float64) - centroids.mean(axis=0)
    centred /= np.maximum(np.linalg.norm(centred, axis=1, keepdims=True), 1e-12)
    out = themes.copy()
    while True:
        ids = np.unique(out)
        if len(ids) < 2:
            return out
        sums = np.stack([centred[out == t].sum(axis=0) for t in ids])
        sums /= np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
        sims = sums @ sums.T
        np.fill_diagonal(sims, -np.inf)
        a, b = np.unravel_index(np.argmax(sims), sims.shape)
        if sims[a, b] < cosine:
            return out
        out[out == ids[b]] = ids[a]
