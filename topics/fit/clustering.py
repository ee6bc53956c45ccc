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
import math
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import hdbscan
import numpy as np
from scipy import sparse
from sklearn.decomposition import PCA

from topics.fit.communities import merge_cut_communities
from topics.fit.graph_sample import stratified_subsample
from topics.fit.themes import group_topics
from topics.ids import OUTLIER

if TYPE_CHECKING:
    import igraph

    from indexer.config import ClusterSettings

log = logging.getLogger(__name__)

_MERGE_Z = 2.0  # communities closer than this many noise spreads are one topic (see _merge_indistinct)
_CHANCE_MARGIN = 3.0  # a topic must be this many times tighter than random vectors would be
_FLOOR_SIGMAS = 4.0  # robust sigmas below a topic's median cosine where its edge lies
_HDBSCAN_DIMS = 32  # HDBSCAN's trees are slow in high dimensions
_SUBSET_MIN_COMMUNITY = 5  # smallest graph community kept when the graph is a subset of the sample
_SPLIT_MIN_MEMBERS = 20  # a piece this small cannot split a topic: halves of one topic under 20 members
# measured up to 13.7 spreads apart (`separation`; bench/resolution.py's corpus), from 20 to 40 up to 6.3


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


def unit_rows(vectors: np.ndarray, dim: int | None = None) -> np.ndarray:
    """Vectors as float32 rows of unit norm; refuses wrong shapes and NaN/inf with a clear message."""
    x = np.asarray(vectors, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"expected a 2-d array of vectors, got shape {x.shape}")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"vectors have dimension {x.shape[1]}, the topics have {dim}")
    if not np.isfinite(x).all():
        raise ValueError("vectors contain NaN or infinite values")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


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


def separation(a: np.ndarray, b: np.ndarray) -> float:
    """How far apart two groups of vectors lie: the gap between their medians on the line through their
    means, in pooled member spreads on that line (1.4826 MAD), 0 when a lies on b's side.

    Each member is projected on the line drawn without it (its own group's mean less itself): drawn
    with it, a group of 10-40 members in hundreds of dimensions pulls the line towards each of its
    members and looks separate from anything. Medians and MADs, so members of the other group do not
    close the gap. Not a test: it does not grow with the sizes. One group cut in two by a plane scores
    ~2.3 (up to ~6 with 20-40 members, up to ~14 under 20: hence `_SPLIT_MIN_MEMBERS`), two groups with
    a gap between them as far apart as the gap is (`bench/resolution.py` prints both over its corpus).
    """
    na, nb = len(a), len(b)
    if na < 2 or nb < 2:
        raise ValueError(f"separation needs two members on each side, got {na} and {nb}")
    sum_a, sum_b = a.sum(axis=0, dtype=np.float64), b.sum(axis=0, dtype=np.float64)
    own_a, own_b = np.einsum("ij,ij->i", a, a), np.einsum("ij,ij->i", b, b)
    on_a = (a @ sum_a - own_a) / (na - 1) - a @ (sum_b / nb)
    on_b = b @ (sum_a / na) - (b @ sum_b - own_b) / (nb - 1)
    centre_a, centre_b = float(np.median(on_a)), float(np.median(on_b))
    mad_a, mad_b = np.median(np.abs(on_a - centre_a)), np.median(np.abs(on_b - centre_b))
    spread = 1.4826 * math.sqrt((mad_a**2 * na + mad_b**2 * nb) / (na + nb))
    return max(centre_a - centre_b, 0.0) / max(spread, 1e-12)


def split_separated(
    vectors: np.ndarray, labels: np.ndarray, fine: np.ndarray, min_size: int, apart: float
) -> np.ndarray:
    """Each topic of `labels` split into the pieces a finer partition `fine` cuts it into, where those
    pieces lie at least `apart` member spreads from each other (`separation`).

    Members of pieces under `min_size` (and outliers of `fine`) join their nearest piece; then the two
    least separated pieces merge until every pair is `apart` or more. A topic the finer partition only
    cuts through comes back whole; new topics get ids after the last one of `labels`.
    """
    out = labels.copy()
    next_id = int(labels.max()) + 1
    for topic in np.unique(labels[labels >= 0]):
        members = np.flatnonzero(labels == topic)
        ids, counts = np.unique(fine[members], return_counts=True)
        kept = ids[(ids >= 0) & (counts >= min_size)]
        if len(kept) < 2:
            continue
        pieces = [members[fine[members] == f] for f in kept]
        crumbs = members[~np.isin(fine[members], kept)]
        if len(crumbs):
            means = np.stack([vectors[p].mean(axis=0) for p in pieces])
            nearest = (vectors[crumbs] @ means.T).argmax(axis=1)
            pieces = [np.concatenate([p, crumbs[nearest == i]]) for i, p in enumerate(pieces)]
        apart_by = np.full((len(pieces), len(pieces)), np.inf)
        for i, j in zip(*np.triu_indices(len(pieces), 1), strict=True):
            apart_by[i, j] = apart_by[j, i] = separation(vectors[pieces[i]], vectors[pieces[j]])
        while len(pieces) > 1:
            i, j = np.unravel_index(np.argmin(apart_by), apart_by.shape)  # i < j: the first row wins
            if apart_by[i, j] >= apart:
                break
            pieces[i] = np.concatenate([pieces[i], pieces[j]])
            del pieces[j]
            apart_by = np.delete(np.delete(apart_by, j, axis=0), j, axis=1)
            merged = vectors[pieces[i]]
            for other in range(len(pieces)):  # only the merged piece's separations changed
                if other != i:
                    apart_by[i, other] = apart_by[other, i] = separation(merged, vectors[pieces[other]])
        for piece in pieces[1:]:
            out[piece] = next_id
            next_id += 1
    return out


def leiden(graph: igraph.Graph, resolution: float, seed: int) -> np.ndarray:
    """Modularity communities (with a resolution) of a weighted graph; seeded, so fits are equal.

    igraph's own Leiden (as leidenalg's RBConfiguration) is ~15x faster than leidenalg here. It draws
    from the generator igraph is given; the default one is put back after.
    """
    import igraph

    igraph.set_random_number_generator(random.Random(seed))
    try:
        partition = graph.community_leiden(
            objective_function="modularity", weights="weight", resolution=resolution, n_iterations=2
        )
    finally:
        igraph.set_random_number_generator(random)
    return np.asarray(partition.membership, np.int64)


def knn_igraph(vectors: np.ndarray, n_neighbors: int) -> igraph.Graph:
    """The undirected kNN graph with fuzzy membership weights (`fuzzy_weights`), each pair once."""
    import igraph

    n = vectors.shape[0]
    k = max(1, min(n_neighbors, n - 1))
    neighbours, sims = knn_graph(vectors, k)
    directed = sparse.csr_matrix(
        (fuzzy_weights(sims).ravel(), (np.repeat(np.arange(n), k), neighbours.ravel())), shape=(n, n)
    )
    union = sparse.triu(directed + directed.T - directed.multiply(directed.T), 1).tocoo()
    edges = np.stack([union.row, union.col], axis=1)
    return igraph.Graph(n=n, edges=edges, edge_attrs={"weight": union.data.astype(np.float64)})


def fuzzy_weights(sims: np.ndarray, steps: int = 48) -> np.ndarray:
    """Each item's kNN edges as fuzzy memberships, UMAP's local scaling: exp(-(d - d_1) / sigma).

    d is the chord distance, d_1 the item's nearest one; sigma is found (bisection) so that the item's
    memberships sum to log2(k). Raw cosines are nearly equal over a neighbourhood (0.5-0.7 for text), so
    they tell dense regions from sparse ones poorly; scaled per item, every item's k edges weigh the
    same in total and the nearest count most. A pair's weight is the fuzzy union a + b - ab.
    """
    dist = np.sqrt(np.maximum(2.0 - 2.0 * sims.astype(np.float64), 0.0))
    excess = np.maximum(dist - dist[:, :1], 0.0)
    target = np.log2(max(sims.shape[1], 2))
    low, high = np.zeros(len(dist)), np.full(len(dist), np.inf)
    sigma = np.ones(len(dist))
    for _ in range(steps):
        too_wide = np.exp(-excess / sigma[:, None]).sum(axis=1) > target
        high = np.where(too_wide, sigma, high)
        low = np.where(too_wide, low, sigma)
        sigma = np.where(np.isinf(high), sigma * 2.0, (low + high) / 2.0)
    return np.exp(-excess / np.maximum(sigma, 1e-12)[:, None]).astype(np.float32)


def knn_graph(vectors: np.ndarray, k: int, block: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours by cosine (rows are unit vectors), self excluded; memory O(block²).

    Similarity is symmetric, so each pair of row blocks is multiplied once and serves both blocks'
    running top-k: half the products of a row-by-row scan (torch's matmul + topk; several times
    faster than numpy's argpartition on the same blocks). Neighbours come most similar first.
    """
    import torch

    data = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32))
    n = data.shape[0]
    best = torch.full((n, k), -torch.inf)
    best_ids = torch.zeros((n, k), dtype=torch.int64)

    def keep_best(rows: slice, sims: torch.Tensor, first_col: int) -> None:
        top = torch.topk(sims, min(k, sims.shape[1]), dim=1)
        values = torch.cat([best[rows], top.values], dim=1)
        ids = torch.cat([best_ids[rows], top.indices + first_col], dim=1)
        kept = torch.topk(values, k, dim=1)
        best[rows] = kept.values
        best_ids[rows] = torch.gather(ids, 1, kept.indices)

    starts = range(0, n, block)
    with torch.no_grad():
        for a in starts:
            rows_a = slice(a, min(a + block, n))
            for b in range(a, n, block):
                rows_b = slice(b, min(b + block, n))
                sims = data[rows_a] @ data[rows_b].T
                if a == b:
                    sims.fill_diagonal_(-torch.inf)
                keep_best(rows_a, sims, b)
                if a != b:
                    keep_best(rows_b, sims.T, a)
    return best_ids.numpy(), best.numpy()


def _refine(sample: np.ndarray, labels: np.ndarray, rounds: int) -> np.ndarray:
    """Nearest-centroid rounds over the whole sample: the fit then agrees with `assign` by construction.

    Also spreads topics found on the graph subsample to the rest of the sample.
    """
    for _ in range(rounds):
        labels = _relabel_by_size(labels)  # no gaps: an empty label's zero centroid could win the argmax
        centroids = _centroids(sample, labels)
        if centroids.shape[0] == 0:
            return labels
        labels = np.concatenate(
            [(sample[s : s + 65_536] @ centroids.T).argmax(axis=1) for s in range(0, len(sample), 65_536)]
        ).astype(np.int64)
    return labels


def _drop_small(labels: np.ndarray, mcs: int) -> np.ndarray:
    """Topics under `mcs` members become outliers."""
    sizes = np.bincount(labels[labels >= 0], minlength=1)
    return np.where((labels >= 0) & (sizes[np.maximum(labels, 0)] >= mcs), labels, OUTLIER)


def _relabel_by_size(labels: np.ndarray) -> np.ndarray:
    """Raw labels 0..k-1 in decreasing size: stable across equal fits, readable in logs."""
    ids, counts = np.unique(labels[labels >= 0], return_counts=True)
    order = ids[np.argsort(-counts, kind="stable")]
    mapping = np.full(labels.max() + 2 if len(labels) else 1, OUTLIER, np.int64)
    mapping[order] = np.arange(len(order))
    out = np.full_like(labels, OUTLIER)
    kept = labels >= 0
    out[kept] = mapping[labels[kept]]
    return out


def _centroids(sample: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Unit mean direction of each topic's members (a sparse one-hot product: np.add.at is slow)."""
    k = int(labels.max()) + 1 if (labels >= 0).any() else 0
    kept = np.flatnonzero(labels >= 0)
    ones = np.ones(len(kept), np.float32)
    members = sparse.csr_matrix((ones, (labels[kept], kept)), shape=(k, len(labels)))
    sums = np.asarray(members @ sample, dtype=np.float64)
    norms = np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
    return (sums / norms).astype(np.float32)


def _floors(
    sample: np.ndarray, labels: np.ndarray, centroids: np.ndarray, threshold: float | None
) -> np.ndarray:
    """Per-topic cosine below which a vector is an outlier: median - 4 robust sigmas of its members.

    The threshold, when set, lowers the floor to it (outliers above it join their nearest topic).
    """
    k = centroids.shape[0]
    floors = np.zeros(k, np.float32)
    for topic in range(k):
        sims = sample[labels == topic] @ centroids[topic]
        median = np.median(sims)
        spread = 1.4826 * np.median(np.abs(sims - median))
        floors[topic] = median - _FLOOR_SIGMAS * spread
    if threshold is not None:
        floors = np.minimum(floors, np.float32(threshold))
    return floors


def _drop_incoherent(sample: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """A community no tighter than chance (uniform noise the graph had to put somewhere) is outliers.

    m random unit vectors in d dims have cosine about 1/sqrt(m) to their mean, give or take 1/sqrt(d);
    a real topic must clear that by `_CHANCE_MARGIN` of those spreads. (A bound of 3/sqrt(m) alone
    exceeds 0.86 below 13 members and dropped every small real topic.)
    """
    out = labels.copy()
    spread = 1.0 / math.sqrt(sample.shape[1])
    for topic in np.unique(labels[labels >= 0]):
        members = sample[labels == topic]
        centre = members.sum(axis=0)
        centre /= max(float(np.linalg.norm(centre)), 1e-12)
        if np.median(members @ centre) < 1.0 / math.sqrt(len(members)) + _CHANCE_MARGIN * spread:
            out[labels == topic] = OUTLIER
    return out


def _merge_indistinct(sample: np.ndarray, labels: np.ndarray, z: float = _MERGE_Z) -> np.ndarray:
    """Merge communities whose centroids are no further apart than sampling noise explains.

    Modularity at a fixed resolution cuts one large homogeneous topic into pieces. Pieces of one
    topic differ only by the noise of their centroid estimates, about s·sqrt(1/m_a + 1/m_b) (s: member
    spread); sibling topics differ by more. Measured: the pieces Leiden cut from the drift "merge"
    scenario's 120-member topic sit at 1.2–1.4 noise spreads from each other; the closest true pair of
    the hard mixture (siblings at centre cosine 0.95–0.97, sizes 22–2,169) at 2.6, most above 5.
    """
    out = labels.copy()
    while True:
        topics = np.unique(out[out >= 0])
        if len(topics) < 2:
            return out
        sums = np.stack([sample[out == t].sum(axis=0) for t in topics]).astype(np.float64)
        sizes = np.array([(out == t).sum() for t in topics], np.float64)
        centroids = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
        spread = 2.0 * (1.0 - np.linalg.norm(sums, axis=1) / sizes)  # mean |x - c|^2 of the members
        gap = np.sqrt(np.maximum(2.0 - 2.0 * centroids @ centroids.T, 0.0))
        pooled = (sizes[:, None] * spread[:, None] + sizes[None, :] * spread[None, :]) / (
            sizes[:, None] + sizes[None, :]
        )
        noise = np.sqrt(pooled * (1.0 / sizes[:, None] + 1.0 / sizes[None, :]))
        ratio = gap / np.maximum(noise, 1e-12)
        np.fill_diagonal(ratio, np.inf)
        a, b = np.unravel_index(np.argmin(ratio), ratio.shape)
        if ratio[a, b] >= z:
            return out
        out[out == topics[b]] = topics[a]


def _drop_strays(
    sample: np.ndarray, labels: np.ndarray, centroids: np.ndarray, floors: np.ndarray
) -> np.ndarray:
    """Members far below their topic's floor are outliers: a graph puts every node in some community."""
    out = labels.copy()
    kept = np.flatnonzero(labels >= 0)
    sims = np.einsum("ij,ij->i", sample[kept], centroids[labels[kept]])
    out[kept[sims < floors[labels[kept]]]] = OUTLIER
    return out


def _absorb_outliers(
    sample: np.ndarray, labels: np.ndarray, centroids: np.ndarray, threshold: float
) -> np.ndarray:
    out = labels.copy()
    idx = np.flatnonzero(labels == OUTLIER)
    if len(idx) == 0 or centroids.shape[0] == 0:
        return out
    sims = sample[idx] @ centroids.T
    best = sims.argmax(axis=1)
    ok = sims[np.arange(len(idx)), best] >= threshold
    out[idx[ok]] = best[ok]
    return out
