"""Copy collections between store backends (embedded ⇄ server), idempotently, and verify the copy.

Points keep their ids, named vectors and payloads, so a re-run replaces what an earlier run copied
(no duplicates) and a run cut short is resumed by running it again. The destination collection is
created with the source's model identity; a destination built for another model is refused before
anything is written. At the end the counts of both sides are compared and a sample of points (spread
over the id order) is read back from both and compared vector by vector and payload by payload.

Vector dims are learned from the points themselves (the `VectorStore` protocol does not expose a
collection's layout): a named vector that no point holds is not carried over; the next `ensure` with
the full schema (the next ingest or recluster) adds it. An empty source collection is reported and not
created, since the embedded engine cannot create a collection without vectors.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import SecretStr

from indexer.errors import InvalidInput
from indexer.store import EdgeBackend, QdrantBackend
from indexer.store.base import (
    COLLECTIONS,
    VECTOR_ATOL,
    Backend,
    CollectionSchema,
    Filter,
    IdentityMismatch,
    IndexType,
    Point,
    VectorStore,
)

Progress = Callable[[str, int], None]  # (collection, points copied so far)
LastField = tuple[str, str | int | bool]  # (payload field, value): these points are copied last


@dataclass(frozen=True)
class CollectionCopy:
    """What happened to one collection: counts on both sides after the copy, and the sample check."""

    name: str
    source_count: int
    copied: int
    dest_count: int
    sampled: int = 0
    mismatched: tuple[str, ...] = ()  # sampled ids whose vectors or payload differ (or are missing)
    pruned: int = 0  # destination points absent from the source, deleted (with prune=True)
    skipped: str | None = None  # why nothing was copied

    @property
    def ok(self) -> bool:
        if self.skipped is not None:
            return True
        return self.dest_count == self.source_count and not self.mismatched


@dataclass(frozen=True)
class MigrateReport:
    source: str
    destination: str
    collections: tuple[CollectionCopy, ...]
    seconds: float

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.collections)

    def as_dict(self) -> dict[str, Any]:
        """A stable, JSON-ready shape (`topics migrate --json`)."""
        return {
            "ok": self.ok,
            "source": self.source,
            "destination": self.destination,
            "seconds": round(self.seconds, 3),
            "collections": [
                {**asdict(c), "mismatched": list(c.mismatched), "ok": c.ok} for c in self.collections
            ],
        }


@dataclass
class _Sampler:
    """Keeps every `stride`-th id seen, up to `limit`: a sample spread over the whole id order."""

    stride: int
    limit: int
    ids: list[str] = field(default_factory=list)
    seen: int = 0

    def offer(self, batch: Sequence[Point]) -> None:
        for point in batch:
            if self.seen % self.stride == 0 and len(self.ids) < self.limit:
                self.ids.append(point.id)
            self.seen += 1


def open_target(
    spec: str,
    *,
    api_key: SecretStr | str | None = None,
    prefix: str = "topics",
    ca_cert: Path | None = None,
) -> Backend:
    """A backend named on the command line: ``http(s)://host:port`` (a server), ``local:PATH``
    (qdrant-client's local mode) or a data dir (the embedded store under ``DIR/store``)."""
    if spec.lower().startswith(("http://", "https://")):
        return QdrantBackend.server(spec, api_key, prefix=prefix, ca_cert=ca_cert)
    if spec.startswith("local:"):
        return QdrantBackend.local(Path(spec.removeprefix("local:")).expanduser(), prefix=prefix)
    if not spec.strip():
        raise InvalidInput("a migrate target must be a URL, local:PATH or a data dir, got an empty string")
    return EdgeBackend(Path(spec).expanduser() / "store")


def migrate(
    source: Backend,
    destination: Backend,
    *,
    collections: Iterable[str] = COLLECTIONS,
    indexes: Mapping[str, Mapping[str, IndexType]] | None = None,
    batch: int = 512,
    sample: int = 32,
    last: Mapping[str, LastField] | None = None,
    prune: bool = False,
    progress: Progress | None = None,
) -> MigrateReport:
    """Copy `collections` from `source` to `destination` and verify them.

    `indexes`: payload indexes to build per collection (the protocol does not expose the source's).
    `last`: per collection, the points (field == value) to copy after all others, e.g. the topics
    collection's run pointer, so the destination never names a run whose records are not there yet.
    `prune`: also delete destination points the source lacks, so counts can match after a re-run
    over a destination that kept points deleted from the source since.
    """
    if batch < 1 or sample < 0:
        raise ValueError(f"batch must be positive and sample not negative, got {batch} and {sample}")
    names = tuple(collections)
    if repr(source) == repr(destination):
        raise InvalidInput(f"source and destination are the same store: {source!r}")
    _check_identities(source, destination, names)
    started = time.monotonic()
    copies = tuple(
        _copy_collection(
            source.collection(name),
            destination.collection(name),
            dict((indexes or {}).get(name, {})),
            batch=batch,
            sample=sample,
            last=(last or {}).get(name),
            prune=prune,
            progress=progress,
        )
        for name in names
    )
    return MigrateReport(repr(source), repr(destination), copies, time.monotonic() - started)


def _normal(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def _check_identities(source: Backend, destination: Backend, names: Sequence[str]) -> None:
    """Refuse before writing anything when a destination collection holds another model's vectors."""
    for name in names:
        src, dst = source.collection(name), destination.collection(name)
        if not (src.exists() and dst.exists()):
            continue
        want, have = _normal(src.identity() or {}), _normal(dst.identity() or {})
        if want != have:
            raise IdentityMismatch(
                f"destination collection {name!r} holds vectors made with {json.dumps(have, sort_keys=True)}"
                f", the source's were made with {json.dumps(want, sort_keys=True)}; migrate into an empty "
                "store (another data dir or store prefix)"
            )


def _copy_collection(
    src: VectorStore,
    dst: VectorStore,
    indexes: dict[str, IndexType],
    *,
    batch: int,
    sample: int,
    last: LastField | None,
    prune: bool,
    progress: Progress | None,
) -> CollectionCopy:
    if not src.exists():
        return CollectionCopy(src.name, 0, 0, _count(dst), skipped="not in the source")
    writer = _Writer(dst, src.identity() or {}, indexes)
    sampler = _Sampler(stride=max(1, src.count() // max(sample, 1)), limit=sample)
    for where in _passes(last):
        for points in src.scroll(where, vectors=True, payload=True, batch=batch):
            writer.write(points)
            sampler.offer(points)
            if progress is not None:
                progress(src.name, writer.copied)
    writer.finish()
    if writer.copied == 0:
        reason = "empty in the source" if sampler.seen == 0 else "no point in the source holds a vector"
        return CollectionCopy(src.name, src.count(), 0, _count(dst), skipped=reason)
    pruned = _prune(src, dst, batch) if prune else 0
    mismatched = _compare(src, dst, sampler.ids)
    return CollectionCopy(
        src.name, src.count(), writer.copied, dst.count(), len(sampler.ids), mismatched, pruned
    )


def _passes(last: LastField | None) -> list[Filter | None]:
    """One scroll over everything, or two: all but the `last` points, then those."""
    if last is None:
        return [None]
    key, value = last
    return [Filter(must_not={key: value}), Filter(must={key: value})]


class _Writer:
    """Upserts into the destination, creating it (or adding vector names) as the points show their dims.

    Points without vectors that come before any vector is known are held back: the embedded engine
    cannot create a collection without vectors.
    """

    def __init__(self, dst: VectorStore, identity: Mapping[str, Any], indexes: dict[str, IndexType]) -> None:
        self.dst = dst
        self.identity = dict(identity)
        self.indexes = indexes
        self.dims: dict[str, int] = {}
        self.held: list[Point] = []
        self.copied = 0

    def write(self, points: Sequence[Point]) -> None:
        new = _new_dims(points, self.dims)
        if new:
            self.dims.update(new)
            schema = CollectionSchema(vectors=dict(self.dims), identity=self.identity, indexes=self.indexes)
            self.dst.ensure(schema)
        if not self.dims:
            self.held.extend(points)
            return
        if self.held:
            self._upsert(self.held)
            self.held = []
        self._upsert(points)

    def _upsert(self, points: Sequence[Point]) -> None:
        self.dst.upsert(points)
        self.copied += len(points)

    def finish(self) -> None:
        if self.copied:
            self.dst.flush()


def _count(store: VectorStore) -> int:
    return store.count() if store.exists() else 0


def _new_dims(points: Sequence[Point], known: Mapping[str, int]) -> dict[str, int]:
    """Vector names in `points` not in `known`, with their dims."""
    found: dict[str, int] = {}
    for point in points:
        for name, vector in point.vectors.items():
            if name not in known and name not in found:
                found[name] = int(np.asarray(vector).shape[0])
    return found


def _prune(src: VectorStore, dst: VectorStore, batch: int) -> int:
    """Delete destination points whose ids the source does not hold."""
    extra: list[str] = []
    for points in dst.scroll(payload=False, batch=batch):
        ids = [p.id for p in points]
        kept = src.existing(ids)
        extra += [i for i in ids if i not in kept]
    if extra:
        dst.delete(extra)
        dst.flush()
    return len(extra)


def _compare(src: VectorStore, dst: VectorStore, ids: Sequence[str]) -> tuple[str, ...]:
    """Sampled ids whose copy differs: missing, other vector names, vectors or payload not equal."""
    if not ids:
        return ()
    theirs = {p.id: p for p in dst.retrieve(ids, vectors=True)}
    ours = {p.id: p for p in src.retrieve(ids, vectors=True)}
    return tuple(i for i in ids if i in ours and not _same(ours[i], theirs.get(i)))


def _same(a: Point, b: Point | None) -> bool:
    if b is None or set(a.vectors) != set(b.vectors) or not _equal(_normal(a.payload), _normal(b.payload)):
        return False
    return all(np.allclose(a.vectors[n], b.vectors[n], atol=VECTOR_ATOL) for n in a.vectors)


def _equal(a: Any, b: Any) -> bool:
    """JSON values equal, floats to 1e-12: engines print the last digit of a double differently."""
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, int | float) and isinstance(b, int | float) and math.isclose(a, b, rel_tol=1e-12)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return a == b
