"""The split step: a topic cut where the communities of a finer resolution inside it lie apart."""

from __future__ import annotations

import math

import numpy as np

_SPLIT_MIN_MEMBERS = 20  # a piece this small cannot split a topic: halves of one topic under 20 members
# measured up to 13.7 spreads apart (`separation`; bench/resolution.py's corpus), from 20 to 40 up to 6.3


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
