"""The fit's graph: exact cosine kNN with fuzzy (UMAP-style) weights, and seeded Leiden communities of it."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import numpy as np
from scipy import sparse

if TYPE_CHECKING:
    import igraph


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
