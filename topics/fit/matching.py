"""Topic identity across runs: which new cluster continues which old topic, and what happened to the rest.

Input is the overlap between the previous run's topics and this run's clusters, counted over the
items present in both runs (a contingency table whose last row holds items that were outliers in the
previous run and whose last column holds items that are outliers now), plus both runs' centroids.

Matching, in order:

1. **Members.** Jaccard similarity J(a, b) = |a ∩ b| / |a ∪ b| over the common items; the optimal
   one-to-one assignment (``scipy.optimize.linear_sum_assignment``, maximising total J) keeps the
   pairs with J ≥ ``min_jaccard``. Greedy "best pair first" matching can strand a topic whose only
   good partner was taken by a slightly better pair; the optimal assignment does not.
2. **Centroids**, for the rest: an old topic and a new cluster that both lack member evidence (fewer
   than ``min_evidence`` common items, as when all items were replaced) are paired by the optimal
   assignment over centroid cosine, kept when it is ≥ ``min_cosine``. The bar is high (0.98) because
   sibling topics can be 0.95 apart.
3. Every other new cluster gets a fresh public id, counting up from the run's ``next_topic_id``:
   ids are never reused.

Lineage events (kind, ids before, ids after):

- ``survived``: an old id continues (one per matched pair).
- ``split``: ≥ 2 new clusters each took ≥ ``split_share`` of one old topic's common items;
  ``after`` lists them all (the survivor and the newly born ids).
- ``merged``: ≥ 2 old topics each put ≥ ``merge_share`` of their common items into one new cluster;
  ``after`` is that cluster's id (it continues one of them; the others end here).
- ``emerged``: a new id not born in a split.
- ``vanished``: an old id that neither continues nor was split or merged into other topics.

The overlap is counted on the run's sample (what the fit saw), so memory does not grow with the
corpus; Jaccard and shares are ratios, so a uniform sample estimates them without bias.

Themes (groups of topics) are matched by the same function, with theme ids in place of topic ids:
an item's theme in the previous run is its old topic's theme, its theme now its new cluster's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from indexer.embed.base import l2_normalise


@dataclass(frozen=True)
class MatchParams:
    """Thresholds of identity matching and lineage (see the module docstring)."""

    min_jaccard: float = 0.2
    min_cosine: float = 0.98
    min_evidence: int = 5
    split_share: float = 0.2
    merge_share: float = 0.5


@dataclass(frozen=True)
class Event:
    """A lineage event in public ids: `before` -> `after`."""

    kind: str
    before: tuple[int, ...]
    after: tuple[int, ...]


@dataclass(frozen=True)
class Identity:
    """The outcome of matching: public id per raw cluster label, events, and the next free id."""

    ids: dict[int, int]  # raw label of this run -> public topic id
    events: list[Event]
    next_topic_id: int
    continued: dict[int, int] = field(default_factory=dict)  # public id -> old id it continues (same)
    matched_by: dict[int, str] = field(default_factory=dict)  # public id -> "members" | "centroid" | "new"

    @property
    def born(self) -> set[int]:
        """Public ids created in this run."""
        return {i for i, how in self.matched_by.items() if how == "new"}

    def ended(self, previous_ids: Sequence[int]) -> set[int]:
        """Old ids that do not continue (vanished or merged away)."""
        return set(previous_ids) - set(self.continued)


def contingency(
    previous: np.ndarray, current: np.ndarray, previous_ids: Sequence[int], n_clusters: int
) -> np.ndarray:
    """Count common items per (old topic, new cluster); last row/column: outliers.

    `previous` holds each common item's public topic id in the previous run (-1 outlier; an id not in
    `previous_ids` counts as outlier), `current` its raw label now (-1 outlier).
    """
    if previous.shape != current.shape:
        raise ValueError(f"previous {previous.shape} and current {current.shape} differ in length")
    row_of = {int(t): r for r, t in enumerate(previous_ids)}
    rows = np.array([row_of.get(int(t), len(previous_ids)) for t in previous], dtype=np.int64)
    if (current >= n_clusters).any():  # n_clusters is the outlier column's index, never a label
        bad = int(current.max())
        raise ValueError(f"current label {bad} is not a cluster (labels run 0..{n_clusters - 1}, -1 outlier)")
    cols = np.where(current < 0, n_clusters, current).astype(np.int64)
    table = np.zeros((len(previous_ids) + 1, n_clusters + 1), dtype=np.int64)
    np.add.at(table, (rows, cols), 1)
    return table


def jaccard(table: np.ndarray) -> np.ndarray:
    """Jaccard of each (old topic, new cluster) pair over common items; outlier row/column dropped."""
    inter = table[:-1, :-1].astype(np.float64)
    old_sizes = table[:-1].sum(axis=1, keepdims=True)
    new_sizes = table[:, :-1].sum(axis=0, keepdims=True)
    union = old_sizes + new_sizes - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def match_topics(
    table: np.ndarray,
    previous_ids: Sequence[int],
    previous_centroids: np.ndarray | None,
    centroids: np.ndarray,
    next_topic_id: int,
    params: MatchParams | None = None,
    sizes: np.ndarray | None = None,
) -> Identity:
    """Carry public ids from the previous run to this run's clusters and name what happened.

    `previous_centroids` rows follow `previous_ids` (a row of zeros where unknown); `centroids` rows
    are this run's raw labels 0..k-1. `sizes` orders fresh ids (largest cluster first).
    """
    params = params or MatchParams()
    previous_ids = [int(t) for t in previous_ids]
    k = centroids.shape[0]
    _check_shapes(table, previous_ids, k)
    pairs = _member_pairs(table, params)
    how = dict.fromkeys(pairs.values(), "members")
    for old, new in _centroid_pairs(table, previous_centroids, centroids, pairs, params).items():
        pairs[old] = new
        how[new] = "centroid"
    ids = {new: previous_ids[old] for old, new in pairs.items()}
    order = np.argsort(-(sizes if sizes is not None else table[:, :-1].sum(axis=0)), kind="stable")
    next_id = next_topic_id
    for new in (int(b) for b in order if int(b) not in ids):
        ids[new] = next_id
        next_id += 1
    matched_by = {ids[b]: how.get(b, "new") for b in range(k)}
    continued = {ids[new]: previous_ids[old] for old, new in pairs.items()}
    events = _events(table, previous_ids, ids, pairs, params)
    return Identity(ids=ids, events=events, next_topic_id=next_id, continued=continued, matched_by=matched_by)


def _check_shapes(table: np.ndarray, previous_ids: list[int], k: int) -> None:
    if table.shape != (len(previous_ids) + 1, k + 1):
        raise ValueError(f"table shape {table.shape} != ({len(previous_ids) + 1}, {k + 1})")
    if len(set(previous_ids)) != len(previous_ids):
        raise ValueError("previous topic ids are not unique")


def _member_pairs(table: np.ndarray, params: MatchParams) -> dict[int, int]:
    """Old row -> new column by optimal Jaccard assignment."""
    sims = jaccard(table)
    if sims.size == 0:
        return {}
    rows, cols = linear_sum_assignment(sims, maximize=True)
    return {int(r): int(c) for r, c in zip(rows, cols, strict=True) if sims[r, c] >= params.min_jaccard}


def _centroid_pairs(
    table: np.ndarray,
    previous_centroids: np.ndarray | None,
    centroids: np.ndarray,
    taken: dict[int, int],
    params: MatchParams,
) -> dict[int, int]:
    """Old row -> new column by centroid cosine, among those with no member evidence either way."""
    if previous_centroids is None or len(previous_centroids) == 0 or len(centroids) == 0:
        return {}
    old_evidence = table[:-1].sum(axis=1)
    new_evidence = table[:-1, :-1].sum(axis=0)  # items that came from a real old topic
    old_free = [
        r for r in range(len(old_evidence)) if r not in taken and old_evidence[r] < params.min_evidence
    ]
    used = set(taken.values())
    new_free = [c for c in range(len(centroids)) if c not in used and new_evidence[c] < params.min_evidence]
    if not old_free or not new_free:
        return {}
    sims = l2_normalise(previous_centroids[old_free]) @ l2_normalise(centroids[new_free]).T
    rows, cols = linear_sum_assignment(sims, maximize=True)
    return {
        old_free[r]: new_free[c] for r, c in zip(rows, cols, strict=True) if sims[r, c] >= params.min_cosine
    }


def _events(
    table: np.ndarray,
    previous_ids: list[int],
    ids: dict[int, int],
    pairs: dict[int, int],
    params: MatchParams,
) -> list[Event]:
    events = [Event("survived", (previous_ids[o],), (ids[n],)) for o, n in sorted(pairs.items())]
    split_children: set[int] = set()
    split_parents: set[int] = set()
    for old in range(len(previous_ids)):
        children = _significant(table[old, :-1], table[old].sum(), params.split_share, params.min_evidence)
        if len(children) >= 2:
            after = tuple(sorted(ids[c] for c in children))
            events.append(Event("split", (previous_ids[old],), after))
            split_children.update(after)
            split_parents.add(previous_ids[old])
    merged_away: set[int] = set()
    for new in range(table.shape[1] - 1):
        parents = [
            old
            for old in range(len(previous_ids))
            if table[old, new] >= max(params.merge_share * table[old].sum(), params.min_evidence)
        ]
        if len(parents) >= 2:
            events.append(Event("merged", tuple(sorted(previous_ids[p] for p in parents)), (ids[new],)))
            merged_away.update(previous_ids[p] for p in parents)
    continuing = {ids[n] for n in pairs.values()}
    for new in sorted(ids.values()):
        if new not in continuing and new not in split_children:
            events.append(Event("emerged", (), (new,)))
    for old in range(len(previous_ids)):
        if old not in pairs and previous_ids[old] not in merged_away | split_parents:
            events.append(Event("vanished", (previous_ids[old],), ()))
    return events


def _significant(row: np.ndarray, total: int, share: float, min_count: int) -> list[int]:
    """Columns holding at least `share` of `total` (and at least `min_count` items)."""
    if total == 0:
        return []
    return [int(c) for c in np.flatnonzero(row >= max(share * total, min_count))]
