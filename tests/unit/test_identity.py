"""Topic identity: optimal member matching, centroid fallback, fresh ids and lineage events."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from topics.fit.matching import Event, MatchParams, contingency, jaccard, match_topics

DIM = 16


def _centroids(k: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((k, DIM))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _table(rows: list[list[int]]) -> np.ndarray:
    """A contingency table with an empty outlier row/column appended."""
    body = np.array(rows, dtype=np.int64)
    table = np.zeros((body.shape[0] + 1, body.shape[1] + 1), np.int64)
    table[:-1, :-1] = body
    return table


def _kinds(events: list[Event], kind: str) -> list[Event]:
    return [e for e in events if e.kind == kind]


def test_contingency_counts_common_items_with_outlier_row_and_column() -> None:
    previous = np.array([10, 10, 11, -1, 99, 11])  # 99: unknown id -> outlier row
    current = np.array([0, 0, 1, 1, -1, -1])
    table = contingency(previous, current, [10, 11], n_clusters=2)
    assert table.tolist() == [[2, 0, 0], [0, 1, 1], [0, 1, 1]]
    with pytest.raises(ValueError, match="differ"):
        contingency(previous, current[:3], [10, 11], 2)


@pytest.mark.parametrize("label", [2, 3])
def test_contingency_refuses_a_label_at_or_past_n_clusters(label: int) -> None:
    """Labels run 0..n_clusters-1; label n_clusters is the outlier column's index, not an outlier."""
    previous = np.array([10, 11, 11])
    with pytest.raises(ValueError, match=f"current label {label} is not a cluster"):
        contingency(previous, np.array([0, 1, label]), [10, 11], n_clusters=2)


def test_jaccard_uses_sizes_including_outliers() -> None:
    table = np.array([[6, 2, 2], [0, 4, 0], [0, 0, 0]])
    sims = jaccard(table)
    assert sims[0, 0] == pytest.approx(6 / 10)  # |a|=10, |b|=6
    assert sims[0, 1] == pytest.approx(2 / (10 + 6 - 2))
    assert sims[1, 1] == pytest.approx(4 / 6)


def test_steady_keeps_every_id_and_reports_survival_only() -> None:
    table = _table([[50, 1, 0], [0, 40, 2], [1, 0, 30]])
    result = match_topics(table, [3, 7, 9], _centroids(3), _centroids(3, 1), next_topic_id=12)
    assert result.ids == {0: 3, 1: 7, 2: 9}
    assert result.events == [Event("survived", (t,), (t,)) for t in (3, 7, 9)]
    assert result.next_topic_id == 12 and result.born == set()


def test_split_one_survives_one_emerges_with_a_split_event() -> None:
    table = _table([[60, 40, 0], [0, 0, 50]])  # topic 0 splits into clusters 0 and 1
    result = match_topics(table, [0, 1], None, _centroids(3), next_topic_id=2)
    assert result.ids[0] == 0 and result.ids[2] == 1 and result.ids[1] == 2
    assert _kinds(result.events, "split") == [Event("split", (0,), (0, 2))]
    assert _kinds(result.events, "emerged") == []  # a split's child is reported by the split
    assert result.born == {2}


def test_merge_keeps_the_better_matching_id_and_ends_the_other() -> None:
    table = _table([[60], [30]])  # old 4 and 5 both land in cluster 0
    result = match_topics(table, [4, 5], None, _centroids(1), next_topic_id=6)
    assert result.ids == {0: 4}
    assert _kinds(result.events, "merged") == [Event("merged", (4, 5), (4,))]
    assert _kinds(result.events, "vanished") == []
    assert result.ended([4, 5]) == {5}


def test_emerge_gives_fresh_ids_largest_first() -> None:
    table = _table([[50, 0, 0]])
    sizes = np.array([50, 10, 30])
    result = match_topics(table, [0], None, _centroids(3), next_topic_id=5, sizes=sizes)
    assert result.ids == {0: 0, 2: 5, 1: 6}
    assert _kinds(result.events, "emerged") == [Event("emerged", (), (5,)), Event("emerged", (), (6,))]


def test_vanish_reports_the_lost_id_and_never_reuses_it() -> None:
    table = np.zeros((3, 2), np.int64)
    table[0, 0] = 50
    table[1, 1] = 20  # old topic 1's items are all outliers now
    result = match_topics(table, [0, 1], _centroids(2), _centroids(1), next_topic_id=2)
    assert result.ids == {0: 0}
    assert _kinds(result.events, "vanished") == [Event("vanished", (1,), ())]


def test_optimal_assignment_beats_greedy_on_a_crafted_case() -> None:
    # Greedy takes (A, X) first (J = 0.6) and strands B, whose only good partner was X.
    table = np.array(
        [
            [60, 40, 0],  # A: |A| = 100
            [40, 0, 0],  # B: |B| = 40
            [0, 0, 0],
        ]
    )
    sims = jaccard(table)
    greedy = _greedy(sims, 0.2)
    rows, cols = linear_sum_assignment(sims, maximize=True)
    assert sims[rows, cols].sum() > sum(sims[r, c] for r, c in greedy.items())
    result = match_topics(table, [0, 1], None, _centroids(2), next_topic_id=2)
    assert result.ids == {0: 1, 1: 0}  # X continues B, Y continues A: both ids survive
    assert len(greedy) == 1 and len(_kinds(result.events, "survived")) == 2


def _greedy(sims: np.ndarray, floor: float) -> dict[int, int]:
    pairs: dict[int, int] = {}
    order = np.dstack(np.unravel_index(np.argsort(-sims, axis=None), sims.shape))[0]
    for r, c in order:
        if sims[r, c] >= floor and r not in pairs and c not in pairs.values():
            pairs[int(r)] = int(c)
    return pairs


def test_centroids_match_when_no_items_are_shared() -> None:
    old = _centroids(3)
    noise = np.random.default_rng(5).standard_normal((3, DIM)) * 0.01
    new = old[[2, 0, 1]] + noise
    table = np.zeros((4, 4), np.int64)  # no common items at all (the corpus was replaced)
    result = match_topics(table, [10, 11, 12], old, new, next_topic_id=13)
    assert result.ids == {0: 12, 1: 10, 2: 11}
    assert set(result.matched_by.values()) == {"centroid"}


def test_sibling_centroids_are_not_the_same_topic() -> None:
    rng = np.random.default_rng(6)
    parent = _centroids(1)[0]
    ortho = rng.standard_normal(DIM)
    ortho -= ortho @ parent * parent
    ortho /= np.linalg.norm(ortho)
    sibling = np.sqrt(0.96) * parent + np.sqrt(0.04) * ortho  # cosine 0.96 to the old centroid
    result = match_topics(np.zeros((2, 2), np.int64), [0], parent[None], sibling[None], next_topic_id=1)
    assert result.ids == {0: 1}
    assert {e.kind for e in result.events} == {"emerged", "vanished"}


def test_centroids_do_not_override_member_evidence() -> None:
    old = _centroids(2)
    table = _table([[0, 0], [0, 0]])
    table[0, -1] = 30  # old topic 0's items are present and became outliers
    result = match_topics(table, [0, 1], old, old.copy(), next_topic_id=2)
    assert result.ids[0] == 2 and result.ids[1] == 1  # old 1 had no evidence: matched by centroid


def test_thresholds_are_tunable() -> None:
    table = _table([[30, 70]])
    strict = match_topics(table, [0], None, _centroids(2), 1, MatchParams(min_jaccard=0.8))
    assert strict.ids == {0: 2, 1: 1}  # J(0, cluster 1) = 0.7 < 0.8: nothing continues
    assert _kinds(strict.events, "vanished") == [] and _kinds(strict.events, "split") != []


def test_shape_errors_are_clear() -> None:
    with pytest.raises(ValueError, match="table shape"):
        match_topics(np.zeros((2, 2), np.int64), [0, 1], None, _centroids(1), 2)
    with pytest.raises(ValueError, match="unique"):
        match_topics(np.zeros((3, 2), np.int64), [0, 0], None, _centroids(1), 2)
