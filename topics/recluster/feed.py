"""The represent hook of the recluster: what the items pass feeds, so represent needs no scroll of its own.

`topics.represent.from_store.StoreRepresent` implements it; the job only knows these protocols.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np

from indexer.store.base import Point
from topics.catalog import Theme, Topic

Centroids = Mapping[int, np.ndarray]  # unit centroids in the clustered view, by public topic or theme id


class Represent(Protocol):
    """Words, exemplars, labels, tiles of the new run's topics and themes, from the items pass itself
    (no scroll of its own): `start` before the pass, `RepresentPass.add` per batch, `finish` after."""

    def start(
        self, view: str, topics: Centroids, themes: Centroids, theme_of: Mapping[int, int]
    ) -> RepresentPass:
        """A pass over the run's items; centroids (clustered view) by public topic and theme id."""
        ...


class RepresentPass(Protocol):
    payload_fields: tuple[str, ...]  # the item payload fields `add` reads: the pass reads no others

    def add(
        self, points: Sequence[Point], rows: np.ndarray, vectors: np.ndarray, topic_ids: np.ndarray
    ) -> None:
        """One batch of items (payloads and vectors): `rows`, those with the clustered view, their unit
        vectors in it (`view_vectors`) and the public topic each got (-1 outlier)."""

    def finish(self, topics: list[Topic], themes: list[Theme]) -> tuple[list[Topic], list[Theme]]:
        """The records with their representations filled in."""
        ...
