"""`EdgeStore`: one collection in an embedded Qdrant Edge shard (qdrant-edge-py), one shard per directory.

The directory holds the engine's files (``wal/``, ``segments/``, ``edge_config.json``) plus two of ours:
``layout.json`` (the model identity and vector dims, written atomically) and ``owner.lock`` (an
exclusive ``flock`` with the owner's pid). Edge itself locks its WAL, but only once the shard is open and
with an opaque ``WouldBlock`` error; our lock is taken first, so a second process gets `StoreLocked`
naming the directory and the pid that holds it, before it touches anything.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import qdrant_edge as qe

from indexer.atomic import write_json_atomic
from indexer.config import MIN_FREE_MB, VectorDatatype
from indexer.diskspace import disk_use, ensure_free
from indexer.pidlock import PidLock
from indexer.store import rules
from indexer.store.base import (
    CollectionSchema,
    DiskFull,
    Filter,
    IdentityMismatch,
    IndexType,
    Point,
    PointId,
    ScoredPoint,
    StoreDamaged,
    StoreError,
    StoreLocked,
)

LAYOUT_FILE = "layout.json"
LOCK_FILE = "owner.lock"
UPSERT_BATCH = 1024
UNBACKED_TTL_S = 1.0
POINT_OVERHEAD = 1024  # bytes of payload and bookkeeping per point, a generous guess for free space
ID_BATCH = 10_000

_INDEX_TYPES: dict[IndexType, qe.PayloadSchemaType] = {
    "keyword": qe.PayloadSchemaType.Keyword,
    "integer": qe.PayloadSchemaType.Integer,
    "float": qe.PayloadSchemaType.Float,
    "bool": qe.PayloadSchemaType.Bool,
    "datetime": qe.PayloadSchemaType.Datetime,
    "uuid": qe.PayloadSchemaType.Uuid,
}

_DATATYPES: dict[VectorDatatype, qe.VectorStorageDatatype] = {
    "float32": qe.VectorStorageDatatype.Float32,
    "float16": qe.VectorStorageDatatype.Float16,
}

T = TypeVar("T")
log = logging.getLogger(__name__)


def _engine(call: Callable[[], T], what: str) -> T:
    """Run one engine call, turning its bare exceptions into `StoreError` that says what was attempted."""
    try:
        return call()
    except (StoreError, ValueError, TypeError):
        raise
    except Exception as exc:
        raise StoreError(f"qdrant-edge could not {what}: {exc}") from exc


class EdgeStore:
    """One collection stored in a Qdrant Edge shard under `path`; this process owns the directory."""

    def __init__(
        self, path: Path, name: str, *, min_free_mb: int = MIN_FREE_MB, datatype: VectorDatatype = "float16"
    ) -> None:
        self.path = Path(path)
        self.name = name
        self.min_free_mb = min_free_mb
        self._datatype = _DATATYPES[datatype]  # for vectors this store creates; the engine keeps each one's
        self._unbacked_at = (float("-inf"), 0)  # (monotonic time, bytes) of the last walk
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock: PidLock | None = PidLock(self.path / LOCK_FILE, partial(_owned_by, self.path))
        try:
            self._layout = self._read_layout()
            if self._has_segments():  # loading writes into the mapped files: they must be backed
                self._ensure_space(0, f"opening collection {name!r}", reserve=False)
            self._shard: qe.EdgeShard | None = self._load() if self._has_segments() else None
        except BaseException:
            self._lock.release()
            raise

    def __repr__(self) -> str:
        return f"EdgeStore(path={str(self.path)!r}, name={self.name!r})"

    # ---- lifecycle ----

    def _has_segments(self) -> bool:
        return (self.path / "segments").is_dir()

    def _read_layout(self) -> rules.Layout | None:
        file = self.path / LAYOUT_FILE
        if not file.exists():
            return None
        try:
            return rules.Layout.from_json(json.loads(file.read_text(encoding="utf-8")))
        except (ValueError, AttributeError, TypeError, KeyError) as exc:
            detail = _short(f"{LAYOUT_FILE}: {exc}", self.path)
            raise StoreDamaged.of(self.name, str(self.path), detail) from exc

    def _load(self) -> qe.EdgeShard:
        """Open the shard; an engine that cannot read its files back raises `StoreDamaged`."""
        try:
            return qe.EdgeShard.load(str(self.path))
        except Exception as exc:
            if _NOT_DAMAGE.search(str(exc)):  # the machine, not the files: permissions, memory, handles
                raise StoreError(f"qdrant-edge could not open the shard in {self.path}: {exc}") from exc
            raise StoreDamaged.of(self.name, str(self.path), _short(str(exc), self.path)) from exc

    def ensure(self, schema: CollectionSchema) -> None:
        """Create the shard, or check its identity; add vector names the schema brings; build indexes."""
        self._check_open()
        self._ensure_space(0, f"preparing collection {self.name!r}")
        if self._layout is None and self._shard is not None:
            raise IdentityMismatch(f"{self.path} holds a shard without {LAYOUT_FILE}; its model is unknown")
        wanted = rules.Layout.of(schema)
        layout = wanted if self._layout is None else self._layout.reconcile(schema, str(self.path))
        if self._shard is None:
            self._save_layout(layout)  # first: a shard never exists without its layout
            self._shard = self._create(layout)
            self._unbacked_at = (float("-inf"), 0)  # a new shard maps its files: measure again
        else:
            assert self._layout is not None
            for vector_name, dim in self._layout.added_by(layout).items():
                self._add_vector(vector_name, dim)
            self._save_layout(layout)
        self._ensure_indexes(schema.indexes)

    def _save_layout(self, layout: rules.Layout) -> None:
        if layout != self._layout:
            write_json_atomic(self.path / LAYOUT_FILE, layout.to_json())
            self._layout = layout

    def _add_vector(self, vector_name: str, dim: int) -> None:
        # Idempotent in the engine for equal parameters, so a crash before the layout is saved is harmless.
        op = qe.UpdateOperation.create_dense_vector(
            vector_name, dim, qe.Distance.Cosine, datatype=self._datatype
        )
        self._update(op, f"add vector {vector_name!r}")

    def _create(self, layout: rules.Layout) -> qe.EdgeShard:
        cosine = qe.Distance.Cosine
        config = qe.EdgeConfig(
            vectors={
                n: qe.EdgeVectorParams(size=d, distance=cosine, datatype=self._datatype)
                for n, d in layout.vectors.items()
            }
        )
        return _engine(lambda: qe.EdgeShard.create(str(self.path), config), f"create a shard in {self.path}")

    def _ensure_indexes(self, indexes: Mapping[str, IndexType]) -> None:
        present = self._ready().info().payload_schema
        for field_name, kind in indexes.items():
            schema_type = _INDEX_TYPES[kind]
            if field_name in present and present[field_name].data_type == schema_type:
                continue
            op = qe.UpdateOperation.create_field_index(field_name, schema_type)
            self._update(op, f"index payload field {field_name!r}")

    def identity(self) -> dict[str, Any] | None:
        return None if self._layout is None else dict(self._layout.identity)

    def exists(self) -> bool:
        return self._shard is not None and self._layout is not None

    def flush(self) -> None:
        """Flush segments and WAL to disk; a kill after this returns loses nothing."""
        self._engine_call(lambda s: s.flush(), "flush")

    def optimize(self) -> None:
        """Merge segments and build HNSW where a segment is big enough; blocks, minutes at 1M points.

        Merging can rewrite every segment, so it waits (logged) until that much space is free on top
        of the reserve: it is maintenance, and search stays exact without it."""
        needed = sum(disk_use(self.path / "segments")) + disk_use(self.path.parent)[1]
        try:
            ensure_free(self.path, self.min_free_mb, needed=needed, what=f"optimizing {self.name!r}")
        except DiskFull as error:
            log.warning("%s", error)
            return
        self._engine_call(lambda s: s.optimize(), "optimize")
        self._unbacked_at = (float("-inf"), 0)  # segments were rewritten: measure again

    def close(self) -> None:
        """Close the shard, then release the directory lock even when closing the shard failed."""
        try:
            if self._shard is not None:
                shard, self._shard = self._shard, None
                _engine(shard.close, "close the shard")
        finally:
            if self._lock is not None:
                self._lock.release()
                self._lock = None

    def _check_open(self) -> None:
        if self._lock is None:
            raise StoreError(f"{self!r} is closed")

    def _ready(self) -> qe.EdgeShard:
        self._check_open()
        if self._shard is None or self._layout is None:
            raise StoreError(f"collection {self.name!r} in {self.path} does not exist; call ensure() first")
        return self._shard

    def _engine_call(self, call: Callable[[qe.EdgeShard], T], what: str) -> T:
        shard = self._ready()
        return _engine(lambda: call(shard), what)

    def _update(self, op: qe.UpdateOperation, what: str, *, needed: int = 0) -> None:
        """One write, refused first unless the disk can back it, every collection's mapped files and
        the reserve: a full disk faults the engine's mapped files with SIGBUS instead of failing."""
        self._ensure_space(needed, f"{what} in {self.name!r}")
        self._engine_call(lambda s: s.update(op), what)

    def _ensure_space(self, needed: int, what: str, *, reserve: bool = True) -> None:
        reserve_mb = self.min_free_mb if reserve else 0
        ensure_free(self.path, reserve_mb, needed=needed + self._unbacked(), what=what)

    def _unbacked(self) -> int:
        """The whole store's mapped but unbacked bytes (collections share the disk), measured at most
        once a second: between two walks the engine can map one more chunk, which the reserve covers."""
        now = time.monotonic()
        if now - self._unbacked_at[0] > UNBACKED_TTL_S:
            self._unbacked_at = (now, disk_use(self.path.parent)[1])
        return self._unbacked_at[1]

    # ---- writes ----

    def upsert(self, points: Sequence[Point]) -> None:
        """Insert or replace whole points, in engine batches of `UPSERT_BATCH`."""
        dims = self._dims()
        per_point = 2 * (4 * sum(dims.values()) + POINT_OVERHEAD)  # written to the WAL and a segment
        for batch in rules.chunks(points, UPSERT_BATCH):
            edge_points = [self._edge_point(p, dims) for p in batch]
            op = qe.UpdateOperation.upsert_points(edge_points)
            self._update(op, f"upsert {len(batch)} points", needed=per_point * len(batch))

    def _dims(self) -> dict[str, int]:
        self._ready()
        assert self._layout is not None
        return self._layout.vectors

    @staticmethod
    def _edge_point(point: Point, dims: Mapping[str, int]) -> qe.Point:
        vectors = {n: v.tolist() for n, v in rules.checked_vectors(point, dims).items()}
        return qe.Point(rules.canonical_id(point.id), vectors, dict(point.payload))

    def set_payload(self, ids: Sequence[PointId], payload: Mapping[str, Any]) -> None:
        """Merge `payload` into the listed points; ids not stored are skipped, a None value drops a key."""
        for batch in rules.chunks(rules.canonical_ids(ids), ID_BATCH):
            self._set_payload(batch, payload)

    def _set_payload(self, ids: Sequence[str], payload: Mapping[str, Any]) -> None:
        # By filter, not by id list: the id-list form stops at the first missing id.
        selector = qe.Filter(must=[qe.HasIdCondition(set(ids))])
        op = qe.UpdateOperation.set_payload_by_filter(selector, dict(payload))
        self._update(op, f"set payload on {len(ids)} points")

    def set_payloads(self, updates: Mapping[PointId, Mapping[str, Any]]) -> None:
        """One engine operation per distinct payload (a topic assignment is a handful of groups)."""
        for payload, ids in rules.group_payloads(updates):
            self.set_payload(ids, payload)

    def delete(self, ids: Sequence[PointId]) -> None:
        for batch in rules.chunks(rules.canonical_ids(ids), ID_BATCH):
            self._update(qe.UpdateOperation.delete_points(list(batch)), f"delete {len(batch)} points")

    def delete_where(self, where: Filter) -> None:
        op = qe.UpdateOperation.delete_points_by_filter(edge_filter(where))
        self._update(op, "delete points by filter")

    # ---- reads ----

    def retrieve(
        self,
        ids: Sequence[PointId],
        *,
        vectors: bool | Sequence[str] = False,
        payload: bool | Sequence[str] = True,
    ) -> list[Point]:
        records = self._records(ids, rules.selection(payload), rules.selection(vectors))
        return [_point(r) for r in records]

    def existing(self, ids: Sequence[PointId]) -> set[PointId]:
        """Stored ids among `ids`, read from the id tracker only (no payload, no vectors)."""
        return {str(r.id) for r in self._records(ids, False, False)}

    def _records(
        self, ids: Sequence[PointId], payload: bool | list[str], with_vector: bool | list[str]
    ) -> list[qe.Record]:
        shard = self._ready()
        out: list[qe.Record] = []
        for batch in rules.chunks(rules.canonical_ids(ids), ID_BATCH):
            out.extend(_engine(lambda b=batch: shard.retrieve(list(b), payload, with_vector), "retrieve"))
        return out

    def scroll(
        self,
        where: Filter | None = None,
        *,
        vectors: bool | Sequence[str] = False,
        payload: bool | Sequence[str] = True,
        batch: int = 1024,
    ) -> Iterator[list[Point]]:
        """Matching points in id order, `batch` at a time; each batch is one engine call."""
        if batch < 1:
            raise ValueError(f"batch must be positive, got {batch}")
        edge_where = None if where is None else edge_filter(where)
        with_vector = rules.selection(vectors)
        offset: Any = None
        while True:
            request = qe.ScrollRequest(
                offset=offset,
                limit=batch,
                filter=edge_where,
                with_payload=rules.selection(payload),
                with_vector=with_vector,
            )
            records, offset = self._engine_call(lambda s, r=request: s.scroll(r), "scroll")
            if records:
                yield [_point(r) for r in records]
            if offset is None:
                return

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
        """Nearest points by cosine on one named vector, best first (HNSW once optimized, else exact)."""
        query = rules.query_vector(vector_name, vector, self._dims())
        request = qe.QueryRequest(
            limit=limit,
            query=qe.Query.Nearest(query, using=vector_name),
            filter=None if where is None else edge_filter(where),
            score_threshold=score_threshold,
            with_payload=True,
            with_vector=rules.selection(vectors),
        )
        hits = self._engine_call(lambda s: s.query(request), "search")
        return [_scored(h) for h in hits]

    def count(self, where: Filter | None = None) -> int:
        request = qe.CountRequest(exact=True, filter=None if where is None else edge_filter(where))
        return int(self._engine_call(lambda s: s.count(request), "count"))


def _scored(hit: qe.ScoredPoint) -> ScoredPoint:
    vectors = rules.as_vectors(hit.vector)
    return ScoredPoint(id=str(hit.id), score=float(hit.score), payload=hit.payload or {}, vectors=vectors)


def _point(record: qe.Record) -> Point:
    return Point(id=str(record.id), vectors=rules.as_vectors(record.vector), payload=record.payload or {})


def edge_filter(where: Filter) -> qe.Filter:
    """`Filter` as a qdrant-edge filter."""
    terms = rules.Terms.of(where)
    must: list[Any] = [_match(m) for m in terms.must]
    must += [_range(r) for r in terms.ranges]
    must += [qe.IsEmptyCondition(key) for key in terms.is_empty]
    if terms.has_vector is not None:
        must.append(qe.HasVectorCondition(terms.has_vector))
    must_not = [_match(m) for m in terms.must_not]
    return qe.Filter(must=must or None, must_not=must_not or None)


def _match(term: rules.Match) -> qe.FieldCondition:
    if term.any_of is not None:
        return qe.FieldCondition(term.key, match=qe.MatchAny(list(term.any_of)))
    return qe.FieldCondition(term.key, match=qe.MatchValue(term.value))


def _range(term: rules.Range) -> qe.FieldCondition:
    if term.is_datetime:
        return qe.FieldCondition(term.key, range=qe.RangeDateTime(gte=term.gte, lte=term.lte))
    return qe.FieldCondition(term.key, range=qe.RangeFloat(gte=term.gte, lte=term.lte))


# Failures to open a shard that say nothing about its files: refused as a plain `StoreError`.
_NOT_DAMAGE = re.compile(
    r"permission denied|no space left|too many open files|cannot allocate memory|out of memory"
    r"|wouldblock|resource temporarily unavailable|read-only file system",
    re.IGNORECASE,
)
_ENGINE_NOISE = re.compile(r"Service runtime error: |IO Error: |Failed to read segment state \S+ error: ")
MAX_DETAIL = 240


def _short(message: str, directory: Path) -> str:
    """The engine's message on one line: its wrappers dropped, paths relative to the collection."""
    text = _ENGINE_NOISE.sub("", message).replace(f"{directory}/", "").replace(str(directory), ".")
    text = " ".join(text.split())
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 1] + "…"


def _owned_by(directory: Path, holder: str) -> StoreLocked:
    return StoreLocked(
        f"store directory {directory} is owned by process {holder}; stop it or reach the store through it"
    )
