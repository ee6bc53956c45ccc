"""Cosine arithmetic on unit rows shared by the recluster and the online updates."""

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
