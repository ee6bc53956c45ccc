"""`QdrantStore`: one collection reached through qdrant-client: a Qdrant server, a local path, or memory.

Collections are named ``{prefix}_{name}``. The model identity and vector dims live in the collection's
``metadata``. One `QdrantClient` is shared by all collections of a `QdrantBackend`. The API key is kept
out of every repr and message.
"""

from __future__ import annotations

import math
import pickle
import sqlite3
import ssl
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from pydantic import SecretStr
from qdrant_client import QdrantClient, models

from indexer.config import CollectionTuning
from indexer.store import rules
from indexer.store.base import (
    CollectionSchema,
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

UPSERT_BATCH = 256  # a request of 256 x 512 floats stays near 1 MB of JSON
ID_BATCH = 10_000
OPS_PER_REQUEST = 256

_INDEX_TYPES: dict[IndexType, models.PayloadSchemaType] = {
    "keyword": models.PayloadSchemaType.KEYWORD,
    "integer": models.PayloadSchemaType.INTEGER,
    "float": models.PayloadSchemaType.FLOAT,
    "bool": models.PayloadSchemaType.BOOL,
    "datetime": models.PayloadSchemaType.DATETIME,
    "uuid": models.PayloadSchemaType.UUID,
}

_DATATYPES = {"float32": models.Datatype.FLOAT32, "float16": models.Datatype.FLOAT16}

T = TypeVar("T")


def create_collection_args(layout: rules.Layout, tuning: CollectionTuning) -> dict[str, Any]:
    """Keyword arguments of `create_collection` for `layout` under `tuning` (pure, so it is testable)."""
    cosine = models.Distance.COSINE
    vectors = {
        n: models.VectorParams(
            size=d,
            distance=cosine,
            on_disk=tuning.on_disk_vectors or None,
            datatype=_DATATYPES[tuning.vector_datatype],
        )
        for n, d in layout.vectors.items()
    }
    args: dict[str, Any] = {"vectors_config": vectors, "metadata": layout.to_json()}
    if tuning.hnsw_m is not None or tuning.hnsw_ef_construct is not None:
        args["hnsw_config"] = models.HnswConfigDiff(m=tuning.hnsw_m, ef_construct=tuning.hnsw_ef_construct)
    if tuning.quantization == "int8":
        int8 = models.ScalarQuantizationConfig(type=models.ScalarType.INT8, quantile=0.99, always_ram=True)
        args["quantization_config"] = models.ScalarQuantization(scalar=int8)
    for key in ("shard_number", "replication_factor", "write_consistency_factor"):
        if getattr(tuning, key) is not None:
            args[key] = getattr(tuning, key)
    return args


def _client_call(call: Callable[[], T], what: str) -> T:
    """Run one client call; engine and transport failures become `StoreError` saying what was attempted."""
    try:
        return call()
    except (StoreError, ValueError, TypeError):
        raise
    except Exception as exc:
        raise StoreError(f"qdrant could not {what}: {type(exc).__name__}: {exc}") from exc


class QdrantBackend:
    """Collections on one `QdrantClient`; `collection(name)` returns the same store for the same name."""

    def __init__(
        self,
        client: QdrantClient,
        *,
        prefix: str,
        local: bool,
        where: str,
        tuning: CollectionTuning | None = None,
    ) -> None:
        self._client = client
        self.prefix = prefix
        self.local = local  # local mode: payload indexes have no effect, updates need existing ids
        self.where = where
        self.tuning = tuning or CollectionTuning()
        self._stores: dict[str, QdrantStore] = {}

    @classmethod
    def server(
        cls,
        url: str,
        api_key: SecretStr | str | None = None,
        *,
        prefix: str = "topics",
        timeout_s: float = 30.0,
        check_compatibility: bool = True,
        tuning: CollectionTuning | None = None,
        ca_cert: Path | None = None,
    ) -> QdrantBackend:
        """A Qdrant server or cluster; TLS when the URL says ``https``, verified against `ca_cert` if given.

        The client checks the server's version in a background thread and warns on a mismatch.
        """
        key = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
        tls = {} if ca_cert is None else {"verify": ssl.create_default_context(cafile=str(ca_cert))}
        client = QdrantClient(
            url=url,
            api_key=key,
            https=url.lower().startswith("https://"),
            timeout=math.ceil(timeout_s),
            check_compatibility=check_compatibility,
            **tls,
        )
        return cls(client, prefix=prefix, local=False, where=url, tuning=tuning)

    @classmethod
    def local(cls, path: Path, *, prefix: str = "topics") -> QdrantBackend:
        """qdrant-client's local mode persisted under `path` (one process at a time)."""
        try:
            client = QdrantClient(path=str(path))
        except RuntimeError as exc:
            if "already accessed" in str(exc):
                raise StoreLocked(f"local Qdrant storage {path} is used by another process") from exc
            raise
        except (sqlite3.DatabaseError, pickle.UnpicklingError, ValueError, EOFError) as exc:
            # A collection's storage.sqlite or meta.json is garbage; the client reads them all at once,
            # so no collection is named. Not a configured store (`migrate --to/--from local:PATH`):
            # `topics repair` does not apply, a copy does.
            detail = " ".join(f"{type(exc).__name__}: {exc}".split())[:240]
            raise StoreDamaged(
                f"local Qdrant storage {path} is damaged ({detail}); migrate from a copy into a new path",
                path=str(path),
                detail=detail,
            ) from exc
        return cls(client, prefix=prefix, local=True, where=str(path))

    @classmethod
    def memory(cls, *, prefix: str = "topics") -> QdrantBackend:
        """qdrant-client's in-memory mode: tests, and runs that keep nothing."""
        return cls(QdrantClient(":memory:"), prefix=prefix, local=True, where=":memory:")

    def __repr__(self) -> str:
        return f"QdrantBackend(where={self.where!r}, prefix={self.prefix!r})"

    def collection(self, name: str) -> QdrantStore:
        if name not in self._stores:
            self._stores[name] = QdrantStore(
                self._client, name, prefix=self.prefix, local=self.local, tuning=self.tuning, where=self.where
            )
        return self._stores[name]

    def close(self) -> None:
        self._stores.clear()
        self._client.close()


class QdrantStore:
    """One collection ``{prefix}_{name}`` on a shared client."""

    def __init__(
        self,
        client: QdrantClient,
        name: str,
        *,
        prefix: str = "topics",
        local: bool = False,
        tuning: CollectionTuning | None = None,
        where: str = "",
    ) -> None:
        self.name = name
        self.collection_name = f"{prefix}_{name}"
        self.where = where
        self._client = client
        self._local = local
        self._tuning = tuning or CollectionTuning()
        self._layout: rules.Layout | None = None

    def __repr__(self) -> str:
        return f"QdrantStore(collection={self.collection_name!r})"

    def _call(self, call: Callable[[], T], what: str) -> T:
        """A client call whose failure names the collection and where the store is (server URL, path)."""
        where = f" at {self.where}" if self.where else ""
        return _client_call(call, f"{what} ({self.collection_name}{where})")

    # ---- lifecycle ----

    def exists(self) -> bool:
        return self._call(lambda: self._client.collection_exists(self.collection_name), "check a collection")

    def _stored_layout(self) -> rules.Layout | None:
        if not self.exists():
            return None
        info = self._call(lambda: self._client.get_collection(self.collection_name), "read a collection")
        metadata = info.config.metadata or {}
        if "identity" not in metadata:
            raise IdentityMismatch(
                f"collection {self.collection_name} has no recorded identity; its model is unknown"
            )
        return rules.Layout.from_json(metadata)

    def identity(self) -> dict[str, Any] | None:
        layout = self._stored_layout()
        return None if layout is None else dict(layout.identity)

    def ensure(self, schema: CollectionSchema) -> None:
        """Create the collection, or check its identity; add vector names the schema brings; build indexes."""
        stored = self._stored_layout()
        if stored is None:
            layout = rules.Layout.of(schema)
            self._create(layout)
        else:
            layout = stored.reconcile(schema, f"collection {self.collection_name}")
            for vector_name, dim in stored.added_by(layout).items():
                self._add_vector(vector_name, dim)
            if layout != stored:
                self._record_layout(layout)
        self._layout = layout
        if not self._local:
            self._ensure_indexes(schema.indexes)

    def _record_layout(self, layout: rules.Layout) -> None:
        self._call(
            lambda: self._client.update_collection(self.collection_name, metadata=layout.to_json()),
            "record the collection layout",
        )

    def _create(self, layout: rules.Layout) -> None:
        args = create_collection_args(layout, self._tuning)
        self._call(
            lambda: self._client.create_collection(self.collection_name, **args),
            "create a collection",
        )

    def _add_vector(self, vector_name: str, dim: int) -> None:
        config = models.DenseVectorNameConfig(
            dense=models.DenseVectorConfig(size=dim, distance=models.Distance.COSINE)
        )
        self._call(
            lambda: self._client.create_vector_name(self.collection_name, vector_name, config),
            f"add vector {vector_name!r} (needs Qdrant >= 1.18)",
        )

    def _ensure_indexes(self, indexes: Mapping[str, IndexType]) -> None:
        info = self._call(lambda: self._client.get_collection(self.collection_name), "read a collection")
        for field_name, kind in indexes.items():
            present = info.payload_schema.get(field_name)
            if present is not None and present.data_type == _INDEX_TYPES[kind]:
                continue
            self._call(
                lambda f=field_name, k=kind: self._client.create_payload_index(
                    self.collection_name, f, field_schema=_INDEX_TYPES[k], wait=True
                ),
                f"index payload field {field_name!r}",
            )

    def _dims(self) -> dict[str, int]:
        if self._layout is None:
            self._layout = self._stored_layout()
            if self._layout is None:
                raise StoreError(f"collection {self.collection_name} does not exist; call ensure() first")
        return self._layout.vectors

    def flush(self) -> None:
        """Nothing to do: every write waits for the server's WAL (local mode persists on each write)."""
        self._dims()

    def optimize(self) -> None:
        """Nothing to do: the server builds HNSW in the background; local mode searches exactly."""
        self._dims()

    def close(self) -> None:
        """The client belongs to the backend, which closes it."""
        self._layout = None

    def snapshot(self) -> dict[str, Any]:
        """Have the server write a snapshot of this collection (on the node answering, for its shards)."""
        if self._local:
            raise StoreError(
                f"{self.collection_name}: qdrant-client's local mode has no snapshots; stop the process "
                "and copy its directory, or `topics migrate` it into an embedded data dir"
            )
        self._dims()
        made = self._call(
            lambda: self._client.create_snapshot(self.collection_name, wait=True),
            "snapshot a collection",
        )
        if made is None:
            raise StoreError(f"qdrant returned no snapshot description for {self.collection_name}")
        return {"name": made.name, "size": made.size, "created": made.creation_time}

    # ---- writes ----

    def upsert(self, points: Sequence[Point]) -> None:
        dims = self._dims()
        for batch in rules.chunks(points, UPSERT_BATCH):
            structs = [_point_struct(p, dims) for p in batch]
            self._call(
                lambda s=structs: self._client.upsert(self.collection_name, points=s, wait=True),
                f"upsert {len(structs)} points",
            )

    def set_payload(self, ids: Sequence[PointId], payload: Mapping[str, Any]) -> None:
        """Merge `payload` into the listed points; ids not stored are skipped, a None value drops a key."""
        self._set_payload_groups([(dict(payload), rules.canonical_ids(ids))])

    def set_payloads(self, updates: Mapping[PointId, Mapping[str, Any]]) -> None:
        """One set-payload operation per distinct payload, many operations per request."""
        self._set_payload_groups(rules.group_payloads(updates))

    def _set_payload_groups(self, groups: list[tuple[dict[str, Any], list[str]]]) -> None:
        self._dims()
        ops = [op for payload, ids in groups for op in self._set_payload_ops(payload, ids)]
        for batch in rules.chunks(ops, OPS_PER_REQUEST):
            self._call(
                lambda b=batch: self._client.batch_update_points(self.collection_name, list(b), wait=True),
                f"set payload ({len(batch)} operations)",
            )

    def _set_payload_ops(
        self, payload: dict[str, Any], ids: list[str]
    ) -> Iterator[models.SetPayloadOperation]:
        for batch in rules.chunks(ids, ID_BATCH):
            if self._local:
                # Local mode evaluates filters point by point, and refuses ids it does not hold.
                stored = self.existing(batch)
                request = models.SetPayload(payload=payload, points=[i for i in batch if i in stored])
            else:
                # A has-id filter skips missing ids (the id-list form answers 404 for them).
                has_ids = models.Filter(must=[models.HasIdCondition(has_id=list(batch))])
                request = models.SetPayload(payload=payload, filter=has_ids)
            if request.points is None or request.points:
                yield models.SetPayloadOperation(set_payload=request)

    def delete(self, ids: Sequence[PointId]) -> None:
        self._dims()
        for batch in rules.chunks(rules.canonical_ids(ids), ID_BATCH):
            selector = models.PointIdsList(points=list(batch))
            self._call(
                lambda s=selector: self._client.delete(self.collection_name, points_selector=s, wait=True),
                f"delete {len(batch)} points",
            )

    def delete_where(self, where: Filter) -> None:
        self._dims()
        selector = models.FilterSelector(filter=qdrant_filter(where))
        self._call(
            lambda: self._client.delete(self.collection_name, points_selector=selector, wait=True),
            "delete points by filter",
        )

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
        """Stored ids among `ids` (no payload, no vectors sent back)."""
        return {str(r.id) for r in self._records(ids, False, False)}

    def _records(
        self, ids: Sequence[PointId], payload: bool | list[str], with_vectors: rules.Selection
    ) -> list[Any]:
        self._dims()
        out: list[Any] = []
        for batch in rules.chunks(rules.canonical_ids(ids), ID_BATCH):
            out.extend(
                self._call(
                    lambda b=batch: self._client.retrieve(
                        self.collection_name, list(b), with_payload=payload, with_vectors=with_vectors
                    ),
                    "retrieve",
                )
            )
        return out

    def scroll(
        self,
        where: Filter | None = None,
        *,
        vectors: bool | Sequence[str] = False,
        payload: bool | Sequence[str] = True,
        batch: int = 1024,
    ) -> Iterator[list[Point]]:
        """Matching points in id order, `batch` per request."""
        if batch < 1:
            raise ValueError(f"batch must be positive, got {batch}")
        self._dims()
        scroll_filter = None if where is None else qdrant_filter(where)
        with_vectors = rules.selection(vectors)
        offset: Any = None
        while True:
            records, offset = self._call(
                lambda o=offset: self._client.scroll(
                    self.collection_name,
                    scroll_filter=scroll_filter,
                    limit=batch,
                    offset=o,
                    with_payload=rules.selection(payload),
                    with_vectors=with_vectors,
                ),
                "scroll",
            )
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
        """Nearest points by cosine on one named vector, best first."""
        query = rules.query_vector(vector_name, vector, self._dims())
        response = self._call(
            lambda: self._client.query_points(
                self.collection_name,
                query=query,
                using=vector_name,
                limit=limit,
                query_filter=None if where is None else qdrant_filter(where),
                score_threshold=score_threshold,
                with_payload=True,
                with_vectors=rules.selection(vectors),
            ),
            "search",
        )
        return [_scored(h) for h in response.points]

    def count(self, where: Filter | None = None) -> int:
        self._dims()
        count_filter = None if where is None else qdrant_filter(where)
        result = self._call(
            lambda: self._client.count(self.collection_name, count_filter=count_filter, exact=True), "count"
        )
        return int(result.count)


def _point_struct(point: Point, dims: Mapping[str, int]) -> models.PointStruct:
    vectors = {n: v.tolist() for n, v in rules.checked_vectors(point, dims).items()}
    return models.PointStruct(id=rules.canonical_id(point.id), vector=vectors, payload=dict(point.payload))


def _vectors(raw: Any) -> dict[str, np.ndarray]:
    return rules.as_vectors(raw if isinstance(raw, dict) else None)


def _point(record: models.Record) -> Point:
    return Point(id=str(record.id), vectors=_vectors(record.vector), payload=record.payload or {})


def _scored(hit: models.ScoredPoint) -> ScoredPoint:
    return ScoredPoint(
        id=str(hit.id), score=float(hit.score), payload=hit.payload or {}, vectors=_vectors(hit.vector)
    )


def qdrant_filter(where: Filter) -> models.Filter:
    """`Filter` as a qdrant-client filter."""
    terms = rules.Terms.of(where)
    must: list[Any] = [_match(m) for m in terms.must]
    must += [_range(r) for r in terms.ranges]
    must += [models.IsEmptyCondition(is_empty=models.PayloadField(key=k)) for k in terms.is_empty]
    if terms.has_vector is not None:
        must.append(models.HasVectorCondition(has_vector=terms.has_vector))
    must_not: list[Any] = [_match(m) for m in terms.must_not]
    return models.Filter(must=must or None, must_not=must_not or None)


def _match(term: rules.Match) -> models.FieldCondition:
    if term.any_of is not None:
        return models.FieldCondition(key=term.key, match=models.MatchAny(any=list(term.any_of)))
    return models.FieldCondition(key=term.key, match=models.MatchValue(value=term.value))


def _range(term: rules.Range) -> models.FieldCondition:
    if term.is_datetime:
        return models.FieldCondition(key=term.key, range=models.DatetimeRange(gte=term.gte, lte=term.lte))
    return models.FieldCondition(key=term.key, range=models.Range(gte=term.gte, lte=term.lte))
