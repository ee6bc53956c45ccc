"""Which items of a big sample the community search runs on: a stratified subset, so small topics keep
enough nodes in the graph to be found.

A uniform subset of `size` items keeps each topic's share: a topic of 20 items in a 50k sample has 8 in
a 20k graph, under the smallest community kept (sqrt(20k)/10 = 14), so it is lost, absorbed by a
sibling. Here the sample is cut into cells by a few rounds of k-means (one cell per `CELL_ITEMS` graph
nodes, seeded from random items), and every cell gives at most the same number of items (water-filling
to `size`): a big topic spans many cells and is thinned, a small one keeps its items.
"""

from __future__ import annotations

import numpy as np

CELL_ITEMS = 25  # graph nodes per cell: cells = size // CELL_ITEMS
ROUNDS = 4  # Lloyd rounds: the cells need not be good clusters, only local
_BLOCK = 8192


def stratified_subsample(sample: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Sorted indices of `size` rows of `sample` (unit rows), at most the same number from each cell."""
    n = sample.shape[0]
    if n <= size:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    cells = _cells(sample, max(2, size // CELL_ITEMS), rng)
    counts = np.bincount(cells)
    quota = _quota(counts, size)
    order = rng.permutation(n)
    ranks = _rank_within_cells(cells[order], len(counts))
    chosen = order[ranks < quota]
    if len(chosen) > size:  # the water level is an integer: drop the excess at random
        chosen = rng.choice(chosen, size, replace=False)
    return np.sort(chosen)


def _cells(sample: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Nearest-centre labels after a few Lloyd rounds from `k` random rows."""
    centres = sample[rng.choice(sample.shape[0], k, replace=False)].copy()
    labels = np.zeros(sample.shape[0], np.int64)
    for _ in range(ROUNDS):
        labels = _nearest(sample, centres)
        sums = np.zeros_like(centres, dtype=np.float64)
        np.add.at(sums, labels, sample)
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        filled = norms[:, 0] > 0
        centres[filled] = (sums[filled] / norms[filled]).astype(centres.dtype)
    return _nearest(sample, centres)


def _nearest(sample: np.ndarray, centres: np.ndarray) -> np.ndarray:
    return np.concatenate(
        [(sample[s : s + _BLOCK] @ centres.T).argmax(axis=1) for s in range(0, sample.shape[0], _BLOCK)]
    )


def _quota(counts: np.ndarray, size: int) -> int:
    """The largest per-cell cap whose total stays within `size` (plus one more level, trimmed later)."""
    low, high = 0, int(counts.max())
    while low < high:
        mid = (low + high + 1) // 2
        if np.minimum(counts, mid).sum() <= size:
            low = mid
        else:
            high = mid - 1
    return low + 1 if np.minimum(counts, low).sum() < size else low


def _rank_within_cells(cells: np.ndarray, k: int) -> np.ndarray:
    """For each position, how many earlier positions share its cell (0 for the first)."""
    order = np.argsort(cells, kind="stable")
    starts = np.concatenate([[0], np.cumsum(np.bincount(cells, minlength=k))[:-1]])
    ranks = np.empty(len(cells), np.int64)
    ranks[order] = np.arange(len(cells)) - starts[cells[order]]
    return ranks
