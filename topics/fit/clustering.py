"""Recluster: fit topics and themes (a two-level tree) on a sample of unit vectors, then assign the rest.

fit: exact cosine kNN graph (k=15, UMAP-style fuzzy weights) on at most ``graph_size`` items of the
sample -> Leiden modularity communities at ``resolution`` (2) -> communities that are only cuts through
one group merged back (fit.communities) -> communities under ``min_cluster_size`` (sqrt(n)/10) and those
no tighter than chance become outliers -> two nearest-centroid rounds over the whole sample (so the fit
agrees with `Clustering.assign`) -> the same at ``split_resolution`` (16), whose finer topics split a
topic where they lie ``split_separation`` (6) member spreads apart (`separation`) -> per-topic cosine
floor (median - 4 robust sigmas); members below it are outliers, unless ``outlier_threshold`` lets them
join their nearest topic -> themes: Leiden on the same graph with each topic contracted to one node, at
``theme_resolution`` (topics.fit.themes).
assign: nearest centroid in the input space, with the same floors; an item's theme is its topic's.
``method="hdbscan"`` (PCA 32 + HDBSCAN, leaf selection) is kept as the alternative.

Why: the defaults are chosen by chance-adjusted agreement (AMI, ARI; all items, outliers one cluster)
with labelled corpora at both levels, against BERTopic's defaults on the same vectors (bench/quality.py;
figures and the sweep in docs/quality.md). A high resolution gave hundreds of topics: NMI rewards that,
AMI and ARI do not. Yet modularity at one resolution cannot tell apart topics that each hold a small
share of a big graph: with hundreds of fine topics, siblings merge (docs/scaling.md). The split step
keeps the finer topics whose members form separate groups: on the scale corpus that recovers them
(ARI 0.76 -> 0.96), on the labelled text corpora it changes little (docs/quality.md). Fuzzy weights
(each item's edges scaled by its own neighbourhood) find classes in text embeddings better than raw
cosines, which are nearly equal over a neighbourhood.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import hdbscan
import numpy as np
from sklearn.decomposition import PCA

from topics.fit.communities import merge_cut_communities
from topics.fit.geometry import unit_rows
from topics.fit.graph import knn_igraph, leiden
from topics.fit.graph_sample import stratified_subsample
from topics.fit.params import ClusterParams, default_min_cluster_size
from topics.fit.refine import (
    _absorb_outliers,
    _centroids,
    _drop_incoherent,
    _drop_small,
    _drop_strays,
    _floors,
    _merge_indistinct,
    _refine,
    _relabel_by_size,
)
from topics.fit.split import _SPLIT_MIN_MEMBERS, split_separated
from topics.fit.themes import group_topics
from topics.ids import OUTLIER

if TYPE_CHECKING:
    import igraph

log = logging.getLogger(__name__)

_HDBSCAN_DIMS = 32  # HDBSCAN's trees are slow in high dimensions
_SUBSET_MIN_COMMUNITY = 5  # smallest graph community kept when the graph is a subset of the sample


@dataclass(frozen=True)
class Clustering:
    """The fitted topics: raw labels of the sample and centroids in the input space."""

    labels: np.ndarray  # (n_sample,) int64; -1 outlier, else 0..k-1
    centroids: np.ndarray  # (k, d) float32, L2-normalised, input space
    floors: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # (k,) cosine floor per topic
    themes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # (k,) theme of each topic
    batch_size: int = 65_536

    @property
    def n_topics(self) -> int:
        return int(self.centroids.shape[0])

    @property
    def n_themes(self) -> int:
        return int(self.themes.max()) + 1 if len(self.themes) else 0

    def theme_of(self, labels: np.ndarray) -> np.ndarray:
        """Theme of each topic label; outliers (-1) stay -1."""
        labels = np.asarray(labels, np.int64)
        if not len(self.themes):
            return np.full(labels.shape, OUTLIER, np.int64)
        return np.where(labels >= 0, self.themes[np.maximum(labels, 0)], OUTLIER).astype(np.int64)

    def assign(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Labels (-1 allowed) and cosine scores for vectors outside the sample; streaming batches."""
        vectors = unit_rows(vectors, self.centroids.shape[1] if self.n_topics else None)
        n = vectors.shape[0]
        labels = np.full(n, OUTLIER, np.int64)
        scores = np.zeros(n, np.float32)
        if self.n_topics == 0 or n == 0:
            return labels, scores
        for start in range(0, n, self.batch_size):
            part = slice(start, start + self.batch_size)
            labels[part], scores[part] = self._assign_batch(vectors[part])
        return labels, scores

    def _assign_batch(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sims = batch @ self.centroids.T
        best = sims.argmax(axis=1)
        score = sims[np.arange(len(best)), best].astype(np.float32)
        floors = self.floors[best] if len(self.floors) else np.full(len(best), -np.inf, np.float32)
        labels = np.where(score >= floors, best, OUTLIER).astype(np.int64)
        return labels, score


def fit_clusters(sample: np.ndarray, params: ClusterParams) -> Clustering:
    """Fit on an L2-normalised sample (n, d) float32."""
    sample = unit_rows(sample, None)
    n = sample.shape[0]
    if n < 2:
        raise ValueError(f"need at least 2 vectors to cluster, got {n}")
    use_leiden = params.method == "leiden"
    reduced = _reduce(sample, params.reduce_dim or (None if use_leiden else _HDBSCAN_DIMS), params.seed)
    on_graph = _graph_subsample(sample, params)
    m = len(on_graph)
    min_size = max(2, min(params.min_cluster_size or default_min_cluster_size(m), m))
    subset = m < n and params.refine_rounds > 0
    graph_min_size = max(_SUBSET_MIN_COMMUNITY, round(min_size * m / n)) if subset else min_size
    graph = knn_igraph(reduced[on_graph], params.n_neighbors)
    sizes = (min_size, graph_min_size, subset)
    labels = _topic_labels(sample, reduced, on_graph, graph, params, params.resolution, sizes)
    if params.split_resolution and use_leiden:
        fine = _topic_labels(sample, reduced, on_graph, graph, params, params.split_resolution, sizes)
        pieces_from = max(min_size, _SPLIT_MIN_MEMBERS)
        labels = split_separated(sample, labels, fine, pieces_from, params.split_separation)
    labels = _relabel_by_size(labels)
    centroids = _centroids(sample, labels)
    floors = _floors(sample, labels, centroids, params.outlier_threshold)
    labels = _drop_strays(sample, labels, centroids, floors)
    if params.outlier_threshold is not None:
        labels = _absorb_outliers(sample, labels, centroids, params.outlier_threshold)
    themes = group_topics(
        graph, labels[on_graph], centroids, params.theme_resolution, params.theme_join_cosine, params.seed
    )
    return Clustering(labels=labels, centroids=centroids, floors=floors, themes=themes)


def _topic_labels(
    sample: np.ndarray,
    reduced: np.ndarray,
    on_graph: np.ndarray,
    graph: igraph.Graph,
    params: ClusterParams,
    resolution: float,
    sizes: tuple[int, int, bool],
) -> np.ndarray:
    """The sample's topics at one `resolution`: communities of the graph, grown over the whole sample
    (a subset graph) or refined by nearest centroid, then judged by size and distinctness."""
    min_size, graph_min_size, subset = sizes
    labels = np.full(sample.shape[0], OUTLIER, np.int64)
    if params.method == "leiden":
        labels[on_graph] = _leiden_labels(graph, params, graph_min_size, resolution)
    else:
        labels[on_graph] = _hdbscan_labels(reduced[on_graph], params, graph_min_size)
    if subset:  # grow the graph's communities over the whole sample, then judge their size and distinctness
        labels = _refine(sample, _drop_incoherent(sample, labels), params.refine_rounds)
        return _drop_small(_merge_indistinct(sample, _drop_incoherent(sample, labels)), min_size)
    labels = _merge_indistinct(sample, _drop_incoherent(sample, labels))
    if params.refine_rounds:
        labels = _drop_incoherent(sample, _refine(sample, labels, params.refine_rounds))
    return labels


def _graph_subsample(sample: np.ndarray, params: ClusterParams) -> np.ndarray:
    """Indices the community search runs on: all of a small sample, a stratified subset of a big one
    (`topics.fit.graph_sample`: small topics keep their items, big ones are thinned)."""
    n = sample.shape[0]
    if n <= params.graph_size or not params.refine_rounds:
        return np.arange(n)
    return stratified_subsample(sample, params.graph_size, params.seed)


def _reduce(sample: np.ndarray, dims: int | None, seed: int) -> np.ndarray:
    """PCA to `dims`, rows re-normalised (None: the sample as it is)."""
    n, d = sample.shape
    k = min(dims or d, d, n - 1)
    if k >= d or k < 2:
        return sample
    pca = PCA(n_components=k, svd_solver="randomized", random_state=seed)
    reduced = pca.fit_transform(sample)
    reduced /= np.maximum(np.linalg.norm(reduced, axis=1, keepdims=True), 1e-12)
    return reduced.astype(np.float32)


def _hdbscan_labels(reduced: np.ndarray, params: ClusterParams, min_size: int) -> np.ndarray:
    """HDBSCAN with leaf selection: eom merges sibling topics (cosine 0.95) into one."""
    clusterer = hdbscan.HDBSCAN(
        min_cluster_size=min_size,
        min_samples=params.min_samples or min(5, min_size),
        cluster_selection_method="leaf",
        core_dist_n_jobs=1,
    )
    return clusterer.fit_predict(reduced.astype(np.float64)).astype(np.int64)


def _leiden_labels(
    graph: igraph.Graph, params: ClusterParams, min_size: int, resolution: float
) -> np.ndarray:
    """Modularity communities of the cosine kNN graph, arbitrary cuts merged back (topics.fit.communities);
    communities under `min_size` items are outliers. The merge runs on the whole partition: dropping the
    small communities first would cut the graph links between pieces of one topic."""
    labels = leiden(graph, resolution, params.seed)
    if params.merge_threshold > 0:
        pairs = np.asarray(graph.get_edgelist(), np.int64).reshape(-1, 2)
        weights = np.asarray(graph.es["weight"], np.float64)
        labels = merge_cut_communities(pairs, weights, labels, params.merge_threshold)
    sizes = np.bincount(labels)
    return np.where(sizes[labels] >= min_size, labels, OUTLIER)
