"""Array arithmetic shared by the recluster, represent and the online updates."""

from __future__ import annotations

import numpy as np


def leave_one_out_cosines(members: np.ndarray) -> np.ndarray:
    """Each unit row's cosine to the mean of the others: what a new item of the group would score.

    A member's cosine to a mean it is part of is inflated by about (1 - cos²) / n, which for a group
    of 20 is larger than the spread of the scores themselves.
    """
    total = members.sum(axis=0, dtype=np.float64)
    dots = members @ total
    rest = np.sqrt(np.maximum(total @ total - 2.0 * dots + 1.0, 1e-12))
    return ((dots - 1.0) / rest).astype(np.float32)


def group_rows(labels: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """(label, row indices) for each distinct label: one sort instead of one mask per label."""
    labels = np.asarray(labels)
    if len(labels) == 0:
        return []
    order = np.argsort(labels, kind="stable")
    distinct, starts = np.unique(labels[order], return_index=True)
    return [(int(label), rows) for label, rows in zip(distinct, np.split(order, starts[1:]), strict=True)]


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
