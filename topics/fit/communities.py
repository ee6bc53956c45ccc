"""Merging graph communities that are only arbitrary cuts of one group.

Leiden at a fixed resolution can cut a large homogeneous topic into pieces (at high resolutions
it does so often; at the default 2 rarely). `merge_cut_communities` undoes such cuts and leaves
boundaries between groups: it merges neighbouring communities whose cut looks like a cut through one
group rather than a boundary between two (see `cut_score`), reading a greedy merge tree from the top
so that chains of weak merges are not followed.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np


def cut_score(size: tuple[float, float], internal: tuple[float, float], cut: float) -> float:
    """How much two communities' cut looks like an arbitrary cut through their union: about 1 when it is.

    Splitting a group of n_a + n_b members at random into n_a and n_b cuts a share 2 p (1 - p) of its
    edge weight (p = n_a / (n_a + n_b)); the score is the cut they have over the cut such a split
    would have. Pieces of one topic score ~0.3 and more, neighbouring topics less. A community with
    fewer members than the graph's degree must send most of its edges out, so next to a large
    neighbour it looks like a cut whatever it is: such crumbs are left to the minimum topic size.
    """
    p = size[0] / (size[0] + size[1])
    expected = 2.0 * p * (1.0 - p) * (internal[0] + internal[1] + cut)
    return cut / max(expected, 1e-12)


def merge_cut_communities(
    edges: np.ndarray, weights: np.ndarray, labels: np.ndarray, threshold: float
) -> np.ndarray:
    """Labels (every node in a community 0..k-1) with communities that are cuts of one group merged.

    edges: (m, 2) node pairs of an undirected graph, each once; weights: (m,) their weights.
    The communities are merged greedily, best-scoring adjacent pair first, until nothing adjacent is
    left: a merge tree. The tree is then read from the top: a group stays whole when the merge that
    formed it scored at least `threshold` (its two halves look like one group cut in two), otherwise
    it splits into the two groups it was made of, which are read the same way. Read this way a chain
    of weak merges (a growing group taking in its small neighbours one by one, which is how a
    continuum such as real text embeddings merges) is undone, while a well-separated topic cut into
    pieces comes back whole however its first pieces were joined. Result ids are ids of tree nodes.
    """
    labels = np.asarray(labels, np.int64)
    k = int(labels.max()) + 1 if len(labels) else 0
    if k < 2:
        return labels.copy()
    tree = _merge_tree(edges, np.asarray(weights, np.float64), labels, k)
    group = np.arange(k)
    stack = list(tree.roots)
    while stack:
        node = stack.pop()
        if node < k:
            continue  # a community no merge kept: its own group
        left, right, score = tree.merges[node - k]
        if score < threshold:
            stack += [left, right]
            continue
        below = [node]
        while below:  # the whole subtree is one group
            child = below.pop()
            if child < k:
                group[child] = node
            else:
                below += tree.merges[child - k][:2]
    return group[labels]


@dataclass
class _Tree:
    merges: list[tuple[int, int, float]]  # merge i makes node k + i from two nodes, with its score
    roots: list[int]  # the top node of every connected part of the graph


def _merge_tree(edges: np.ndarray, weights: np.ndarray, labels: np.ndarray, k: int) -> _Tree:
    """Greedy merging of adjacent communities, best `cut_score` first, until none are adjacent."""
    a, b = labels[edges[:, 0]], labels[edges[:, 1]]
    inside = a == b
    internal = np.bincount(a[inside], weights=weights[inside], minlength=k)
    size = np.bincount(labels, minlength=k).astype(np.float64)
    neighbours = _pair_cuts(a[~inside], b[~inside], weights[~inside], k)
    version = np.zeros(k, np.int64)  # a heap entry is stale once either side has changed
    alive = np.ones(k, bool)
    node = np.arange(k)  # the tree node each surviving community id stands for now
    merges: list[tuple[int, int, float]] = []

    def entry(x: int, y: int, cut: float) -> tuple[float, int, int, int, int]:
        score = cut_score((size[x], size[y]), (internal[x], internal[y]), cut)
        return (-score, x, y, int(version[x]), int(version[y]))

    heap = [entry(x, y, cut) for x in range(k) for y, cut in neighbours[x].items() if x < y]
    heapq.heapify(heap)
    while heap:
        negative, x, y, vx, vy = heapq.heappop(heap)
        if not (alive[x] and alive[y]) or version[x] != vx or version[y] != vy:
            continue
        if size[y] > size[x]:
            x, y = y, x  # the larger keeps its id
        cut = neighbours[x].pop(y)
        del neighbours[y][x]
        internal[x] += internal[y] + cut
        size[x] += size[y]
        alive[y] = False
        version[x] += 1
        merges.append((int(node[x]), int(node[y]), -negative))
        node[x] = k + len(merges) - 1
        for z, weight in neighbours[y].items():
            del neighbours[z][y]
            neighbours[x][z] = neighbours[z][x] = neighbours[x].get(z, 0.0) + weight
        neighbours[y] = {}
        for z, weight in neighbours[x].items():
            heapq.heappush(heap, entry(min(x, z), max(x, z), weight))
    return _Tree(merges=merges, roots=node[alive].tolist())


def _pair_cuts(a: np.ndarray, b: np.ndarray, weights: np.ndarray, k: int) -> list[dict[int, float]]:
    """Total weight between every pair of adjacent communities, as one dict per community."""
    key = np.minimum(a, b) * k + np.maximum(a, b)
    pairs, index = np.unique(key, return_inverse=True)
    cuts = np.bincount(index, weights=weights)
    neighbours: list[dict[int, float]] = [{} for _ in range(k)]
    for pair, cut in zip(pairs.tolist(), cuts.tolist(), strict=True):
        x, y = divmod(pair, k)
        neighbours[x][y] = neighbours[y][x] = cut
    return neighbours
