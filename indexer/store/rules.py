"""Rules every store backend applies alike: id form, vector checks, the recorded layout, filter terms.

Backends translate the results into their engine's types; keeping the rules here means an edge shard
and a Qdrant server refuse the same bad input with the same message.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from indexer.store.base import CollectionSchema, Filter, IdentityMismatch, Point, PointId

Selection = bool | Sequence[str]


@dataclass(frozen=True)
class Layout:
    """What a collection was built for: the model identity and each named vector's dimension."""

    identity: dict[str, Any]
    vectors: dict[str, int]

    @classmethod
    def of(cls, schema: CollectionSchema) -> Layout:
        """The layout a schema asks for, with the identity normalised through JSON (tuples -> lists)."""
        return cls(identity=_json_normal(dict(schema.identity)), vectors=_dims(schema.vectors))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Layout:
        return cls(identity=dict(data.get("identity") or {}), vectors=_dims(data.get("vectors") or {}))

    def to_json(self) -> dict[str, Any]:
        return {"identity": self.identity, "vectors": self.vectors}

    def describe(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True, ensure_ascii=False)

    def reconcile(self, schema: CollectionSchema, where: str) -> Layout:
        """The layout after ensuring `schema`: raise `IdentityMismatch` on conflict, add new vector names."""
        wanted = Layout.of(schema)
        clashing = {n for n, d in wanted.vectors.items() if n in self.vectors and self.vectors[n] != d}
        if wanted.identity != self.identity or clashing:
            raise IdentityMismatch(
                f"{where} holds vectors made with {self.describe()}, but {wanted.describe()} is "
                "configured; point TOPICS_DATA_DIR (or the store prefix) elsewhere, or re-embed into "
                "a new collection"
            )
        return Layout(identity=self.identity, vectors={**self.vectors, **wanted.vectors})

    def added_by(self, other: Layout) -> dict[str, int]:
        """Vector names `other` holds that this layout lacks."""
        return {n: d for n, d in other.vectors.items() if n not in self.vectors}


def _json_normal(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def _dims(vectors: Mapping[str, Any]) -> dict[str, int]:
    dims = {str(n): int(d) for n, d in vectors.items()}
    bad = {n: d for n, d in dims.items() if d < 1 or not n}
    if bad:
        raise ValueError(f"vector names must be non-empty and dims positive, got {bad}")
    return dims


_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def canonical_id(point_id: PointId) -> str:
    """The lower-case hyphenated UUID string every backend stores (ids are UUIDs, nothing else)."""
    if isinstance(point_id, str) and _CANONICAL_UUID.fullmatch(point_id):
        return point_id  # the common case, 5x cheaper than parsing
    try:
        return str(uuid.UUID(str(point_id)))
    except ValueError:
        raise ValueError(f"point id must be a UUID string, got {point_id!r}") from None


def canonical_ids(ids: Iterable[PointId]) -> list[str]:
    return [canonical_id(i) for i in ids]


def checked_vectors(point: Point, dims: Mapping[str, int]) -> dict[str, np.ndarray]:
    """The point's vectors as float32 arrays, refused when a name is unknown or a shape is wrong."""
    out: dict[str, np.ndarray] = {}
    for name, value in point.vectors.items():
        if name not in dims:
            raise ValueError(f"point {point.id}: vector {name!r} is not in the collection ({sorted(dims)})")
        array = np.asarray(value, dtype=np.float32)
        if array.shape != (dims[name],):
            want = (dims[name],)
            raise ValueError(f"point {point.id}: vector {name!r} has shape {array.shape}, want {want}")
        out[name] = array
    return out


def query_vector(vector_name: str, vector: np.ndarray, dims: Mapping[str, int]) -> list[float]:
    """A query vector checked against the collection's dims, as the list engines take."""
    if vector_name not in dims:
        raise ValueError(f"no vector {vector_name!r} in the collection ({sorted(dims)})")
    array = np.asarray(vector, dtype=np.float32)
    if array.shape != (dims[vector_name],):
        raise ValueError(f"query vector has shape {array.shape}, want ({dims[vector_name]},)")
    return array.tolist()


def selection(names: Selection) -> bool | list[str]:
    """`with_vector` / `with_payload` as engines take them: True, False, or a list of names."""
    if isinstance(names, bool):
        return names
    if isinstance(names, str):
        return [names]
    return list(names)


def as_vectors(raw: Mapping[str, Any] | None) -> dict[str, np.ndarray]:
    """Engine vectors (lists of floats by name) as float32 arrays."""
    if not raw:
        return {}
    return {name: np.asarray(v, dtype=np.float32) for name, v in raw.items()}


def group_payloads(updates: Mapping[PointId, Mapping[str, Any]]) -> list[tuple[dict[str, Any], list[str]]]:
    """Points that receive an identical payload, so each group becomes one engine operation."""
    groups: dict[str, tuple[dict[str, Any], list[str]]] = {}
    for point_id, payload in updates.items():
        key = json.dumps(payload, sort_keys=True, default=str)
        groups.setdefault(key, (dict(payload), []))[1].append(canonical_id(point_id))
    return list(groups.values())


def chunks(seq: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(seq), size):
        yield seq[start : start + size]


# ---- filter terms: one flat reading of `Filter` that each backend maps onto its engine ----


@dataclass(frozen=True)
class Match:
    key: str
    value: str | int | None = None
    any_of: tuple[str | int, ...] | None = None  # set when the filter gave a collection


@dataclass(frozen=True)
class Range:
    key: str
    gte: float | str | None
    lte: float | str | None
    is_datetime: bool


def match_of(key: str, value: Any) -> Match:
    """An equality or any-of condition; floats and mixed lists are refused (engines match exactly)."""
    if isinstance(value, list | tuple | set | frozenset):
        items = tuple(sorted(value, key=str)) if isinstance(value, set | frozenset) else tuple(value)
        kinds = {type(v) for v in items}
        if not kinds <= {str} and not kinds <= {int}:
            raise ValueError(f"filter on {key!r}: an any-of list must hold only strings or only ints")
        return Match(key=key, any_of=items)
    if isinstance(value, bool):
        # qdrant-edge-py 0.9.0 turns MatchValue(True) into MatchValue(1), which never matches a stored
        # true: refuse bools everywhere (so no backend silently answers wrong) and store flags as 0/1.
        raise ValueError(f"filter on {key!r}: bool values are not matchable on every engine; store 0/1")
    if not isinstance(value, str | int):
        kind = type(value).__name__
        raise ValueError(f"filter on {key!r}: can match str or int exactly, not {kind} {value!r}; use ranges")
    return Match(key=key, value=value)


def range_of(key: str, bounds: tuple[Any, Any]) -> Range:
    """A numeric range, or a datetime range when either end is an ISO string or a datetime."""
    gte, lte = bounds
    is_datetime = any(isinstance(b, str | dt.date) for b in (gte, lte))
    if is_datetime:
        return Range(key=key, gte=_iso(gte), lte=_iso(lte), is_datetime=True)
    for bound in (gte, lte):
        if bound is not None and not isinstance(bound, int | float):
            raise ValueError(f"range on {key!r}: bounds must be numbers or ISO datetimes, got {bound!r}")
    return Range(key=key, gte=gte, lte=lte, is_datetime=False)


def _iso(bound: Any) -> str | None:
    if bound is None or isinstance(bound, str):
        return bound
    if isinstance(bound, dt.date):
        return bound.isoformat()
    raise ValueError(f"datetime range bound must be an ISO string or datetime, got {bound!r}")


@dataclass(frozen=True)
class Terms:
    """A `Filter` read once: what must match, what must not, ranges, empties, a vector."""

    must: tuple[Match, ...]
    must_not: tuple[Match, ...]
    ranges: tuple[Range, ...]
    is_empty: tuple[str, ...]
    has_vector: str | None

    @classmethod
    def of(cls, where: Filter) -> Terms:
        return cls(
            must=tuple(match_of(k, v) for k, v in where.must.items()),
            must_not=tuple(match_of(k, v) for k, v in where.must_not.items()),
            ranges=tuple(range_of(k, b) for k, b in where.ranges.items()),
            is_empty=tuple(where.is_empty),
            has_vector=where.has_vector,
        )
