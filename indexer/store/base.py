"""The `VectorStore` protocol: the only surface through which the rest of the code speaks to Qdrant.

Values here are plain Python and numpy; backend modules translate them to their engine's types.
One `VectorStore` is one collection (`items` or `topics`). All vectors use cosine distance.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from indexer.errors import TopicsError

PointId = str  # a UUID string
IndexType = Literal["keyword", "integer", "float", "bool", "datetime", "uuid"]


ITEMS = "items"  # the data plane's collection: one point per item
TOPICS = "topics"  # the model plane's collection (written only by topics.catalog)
# How far a stored element may be from what was written: float16 storage (the embedded default) keeps
# 11 significant bits, so a unit vector's elements come back within 2.5e-4.
VECTOR_ATOL = 1e-3
COLLECTIONS = (ITEMS, TOPICS)  # every collection of a store: what backup, migrate and the owner's locks cover


class StoreError(TopicsError, RuntimeError):
    """The store could not do what was asked (engine error, lock held, server down)."""


class DiskFull(StoreError):
    """Too little free space to write safely; refused before anything was written (`indexer.diskspace`)."""


class StoreLocked(StoreError):
    """Another process owns the embedded store directory."""


class IdentityMismatch(StoreError):
    """The collection was built with another model (or vector layout) than the one configured."""


# What a user can do about a damaged collection; `topics repair` and docs/reliability.md say more.
DAMAGE_RECOVERY = (
    "run `topics repair` (moves it aside, rebuilds it from the folders the ledger knows) "
    "or `topics restore` a backup into an empty data dir"
)


class StoreDamaged(StoreError):
    """A collection's files cannot be read back: the engine refused to open them (garbage in a segment,
    its config or its id tracker). Nothing was changed; `collection`, `path` (its directory) and `detail`
    (what failed, in short) say which, and the message says what to do in one line."""

    def __init__(self, message: str, *, collection: str = "", path: str = "", detail: str = "") -> None:
        super().__init__(message)
        self.collection = collection
        self.path = path
        self.detail = detail

    @classmethod
    def of(cls, collection: str, path: str, detail: str) -> StoreDamaged:
        message = f"the store's {collection!r} collection is damaged ({detail}); {DAMAGE_RECOVERY}"
        return cls(message, collection=collection, path=path, detail=detail)


@dataclass(frozen=True)
class Point:
    """A stored point: id, named vectors (any subset) and payload."""

    id: PointId
    vectors: Mapping[str, np.ndarray] = field(default_factory=dict)
    payload: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ScoredPoint:
    id: PointId
    score: float
    payload: Mapping[str, Any] = field(default_factory=dict)
    vectors: Mapping[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class Filter:
    """A conjunction of simple conditions on payload fields.

    ``must``: field equals value (a list/tuple/set value means "any of").
    ``must_not``: the negation of the same, per field.
    ``ranges``: field within ``(gte, lte)``; either end may be None. Numbers, or ISO datetimes on
    fields indexed as ``datetime``.
    ``is_empty``: fields that are missing, null or [].
    ``has_vector``: the point holds this named vector.
    """

    must: Mapping[str, Any] = field(default_factory=dict)
    must_not: Mapping[str, Any] = field(default_factory=dict)
    ranges: Mapping[str, tuple[Any, Any]] = field(default_factory=dict)
    is_empty: tuple[str, ...] = ()
    has_vector: str | None = None


@dataclass(frozen=True)
class CollectionSchema:
    """What a collection holds: named vectors (name -> dim), identity, payload indexes."""

    vectors: Mapping[str, int]
    identity: Mapping[str, Any] = field(default_factory=dict)
    indexes: Mapping[str, IndexType] = field(default_factory=dict)


@runtime_checkable
class VectorStore(Protocol):
    """One collection of points with named vectors."""

    name: str

    def ensure(self, schema: CollectionSchema) -> None:
        """Create the collection, or open it and check its identity; raise `IdentityMismatch` on conflict.

        A vector name in the schema that the collection lacks is added where the engine allows it.
        """

    def identity(self) -> dict[str, Any] | None:
        """The identity recorded at creation, or None when the collection does not exist."""

    def exists(self) -> bool: ...

    def upsert(self, points: Sequence[Point]) -> None:
        """Insert or replace whole points (idempotent by id)."""

    def set_payload(self, ids: Sequence[PointId], payload: Mapping[str, Any]) -> None:
        """Merge `payload` into each listed point's payload."""

    def set_payloads(self, updates: Mapping[PointId, Mapping[str, Any]]) -> None:
        """Merge a different payload into each point (bulk; one call to the engine where it can)."""

    def delete(self, ids: Sequence[PointId]) -> None: ...

    def delete_where(self, where: Filter) -> None: ...

    def retrieve(
        self,
        ids: Sequence[PointId],
        *,
        vectors: bool | Sequence[str] = False,
        payload: bool | Sequence[str] = True,
    ) -> list[Point]:
        """The points that exist among `ids` (missing ids are left out; order not guaranteed)."""

    def existing(self, ids: Sequence[PointId]) -> set[PointId]:
        """Which of `ids` are stored."""

    def scroll(
        self,
        where: Filter | None = None,
        *,
        vectors: bool | Sequence[str] = False,
        payload: bool | Sequence[str] = True,
        batch: int = 1024,
    ) -> Iterator[list[Point]]:
        """All matching points in batches, in id order, without loading the collection at once.

        `vectors` and `payload` are all, none, or the names wanted (a payload without a named field
        simply lacks it): fewer fields are fewer objects to build, which is most of a scroll's cost."""

    def search(
        self,
        vector_name: str,
        vector: np.ndarray,
        *,
        limit: int = 10,
        where: Filter | None = None,
        vectors: bool | Sequence[str] = False,
        score_threshold: float | None = None,
    ) -> list[ScoredPoint]:
        """Nearest points by cosine similarity on one named vector, best first."""

    def count(self, where: Filter | None = None) -> int: ...

    def flush(self) -> None:
        """Make everything written so far durable."""

    def optimize(self) -> None:
        """Build indexes (HNSW) and merge segments; not for the hot path."""

    def close(self) -> None: ...


class Backend(Protocol):
    """Opens collections by name: `items`, `topics`."""

    def collection(self, name: str) -> VectorStore: ...

    def close(self) -> None: ...
