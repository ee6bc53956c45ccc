"""`migrate`: embedded store ▸ qdrant-client local mode ▸ embedded store, with real topic records."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from evaluation import synthetic
from indexer.config import load_settings
from indexer.migrate import migrate, open_target
from indexer.store import EdgeBackend, QdrantBackend
from indexer.store.base import VECTOR_ATOL, Backend, CollectionSchema, IdentityMismatch, Point, VectorStore
from topics import catalog
from topics.recluster import recluster
from topics.service.store_copy import STORE_INDEXES

INDEXES = STORE_INDEXES
POINTER_LAST = {"topics": ("kind", "pointer")}


@pytest.fixture(scope="module")
def reclustered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An embedded store holding a small corpus, reclustered once: items, topics, lineage, a pointer."""
    data_dir = tmp_path_factory.mktemp("reclustered")
    backend = EdgeBackend(data_dir / "store")
    try:
        corpus = synthetic.drift_scenario("steady", k=3, size=40, seed=5).runs[0]
        synthetic.store_corpus(backend.collection("items"), corpus)
        recluster(load_settings(data_dir=data_dir, store={"backend": "edge"}), backend)
    finally:
        backend.close()
    return data_dir / "store"


@pytest.fixture
def source(reclustered: Path, tmp_path: Path) -> Backend:
    """A private copy of the reclustered store (tests change it)."""
    root = tmp_path / "src" / "store"
    shutil.copytree(reclustered, root, ignore=shutil.ignore_patterns("owner.lock"))
    backend = EdgeBackend(root)
    yield backend
    backend.close()


@pytest.fixture
def local(store_dir: Path) -> Backend:
    """qdrant-client's local mode on a path (in RAM where possible: it commits every point)."""
    backend = QdrantBackend.local(store_dir)
    yield backend
    backend.close()


def _points(store: VectorStore) -> dict[str, Point]:
    return {p.id: p for batch in store.scroll(vectors=True) for p in batch}


def _assert_same(a: Backend, b: Backend) -> None:
    for name in ("items", "topics"):
        ours, theirs = _points(a.collection(name)), _points(b.collection(name))
        assert ours.keys() == theirs.keys()
        for point_id in list(ours)[:: max(1, len(ours) // 10)]:
            assert ours[point_id].payload == theirs[point_id].payload
            assert ours[point_id].vectors.keys() == theirs[point_id].vectors.keys()
            for view, vector in ours[point_id].vectors.items():
                np.testing.assert_allclose(vector, theirs[point_id].vectors[view], atol=VECTOR_ATOL)
        assert a.collection(name).identity() == b.collection(name).identity()


def test_round_trip_embedded_to_local_mode_and_back(source: Backend, local: Backend, tmp_path: Path) -> None:
    there = migrate(source, local, indexes=INDEXES, last=POINTER_LAST, batch=7)
    assert there.ok, there.as_dict()
    counts = {c.name: (c.source_count, c.copied, c.dest_count) for c in there.collections}
    n_items = source.collection("items").count()
    n_records = source.collection("topics").count()
    assert counts == {"items": (n_items,) * 3, "topics": (n_records,) * 3}
    assert all(c.sampled > 0 and not c.mismatched for c in there.collections)

    back_dir = EdgeBackend(tmp_path / "back" / "store")
    try:
        back = migrate(local, back_dir, indexes=INDEXES, last=POINTER_LAST, batch=64)
        assert back.ok, back.as_dict()
        _assert_same(source, back_dir)
        assert catalog.current_run(back_dir) == catalog.current_run(source)
        shown = [(t.topic_id, t.size, t.status) for t in catalog.list_topics(back_dir)]
        assert shown == [(t.topic_id, t.size, t.status) for t in catalog.list_topics(source)]
    finally:
        back_dir.close()


def test_rerun_adds_no_duplicates(source: Backend, local: Backend) -> None:
    first = migrate(source, local, indexes=INDEXES)
    second = migrate(source, local, indexes=INDEXES)
    assert first.ok and second.ok
    assert [c.dest_count for c in second.collections] == [c.source_count for c in first.collections]


def test_a_destination_of_another_model_is_refused_before_anything_is_written(
    source: Backend, local: Backend
) -> None:
    other = local.collection("topics")
    other.ensure(CollectionSchema(vectors={"fused": 512}, identity={"records": "topics/1", "items": {}}))
    with pytest.raises(IdentityMismatch, match="destination collection 'topics'"):
        migrate(source, local)
    assert not local.collection("items").exists()  # items come first, yet nothing was copied
    assert other.count() == 0


def test_prune_deletes_what_the_source_no_longer_holds(source: Backend, local: Backend) -> None:
    assert migrate(source, local, collections=["items"]).ok
    items = source.collection("items")
    gone = [p.id for p in next(items.scroll(batch=5))]
    items.delete(gone)

    stale = migrate(source, local, collections=["items"]).collections[0]
    assert not stale.ok and stale.dest_count == stale.source_count + len(gone)
    pruned = migrate(source, local, collections=["items"], prune=True).collections[0]
    assert pruned.ok and pruned.pruned == len(gone)
    assert local.collection("items").existing(gone) == set()


def test_missing_and_empty_source_collections_are_reported_not_created(
    tmp_path: Path, local: Backend
) -> None:
    empty = EdgeBackend(tmp_path / "empty" / "store")
    try:
        report = migrate(empty, local)
    finally:
        empty.close()
    assert report.ok
    assert [c.skipped for c in report.collections] == ["not in the source", "not in the source"]
    assert not local.collection("items").exists()


class _Recording:
    """A real destination store that records the order of upserted ids (and may damage payloads)."""

    def __init__(self, store: VectorStore, damage: str | None = None) -> None:
        self._store = store
        self.name = store.name
        self.order: list[str] = []
        self._damage = damage

    def upsert(self, points: Sequence[Point]) -> None:
        self.order += [p.id for p in points]
        if self._damage is not None:
            points = [replace(p, payload={**p.payload, self._damage: "changed"}) for p in points]
        self._store.upsert(points)

    def __getattr__(self, name: str):
        return getattr(self._store, name)


class _RecordingBackend:
    def __init__(self, inner: Backend, damage: str | None = None) -> None:
        self._inner = inner
        self.stores: dict[str, _Recording] = {}
        self._damage = damage

    def collection(self, name: str) -> _Recording:
        if name not in self.stores:
            self.stores[name] = _Recording(self._inner.collection(name), self._damage)
        return self.stores[name]

    def close(self) -> None:
        self._inner.close()


def test_the_run_pointer_is_copied_last(source: Backend, local: Backend) -> None:
    dst = _RecordingBackend(local)
    assert migrate(source, dst, last=POINTER_LAST, batch=4).ok
    assert dst.stores["topics"].order[-1] == catalog.POINTER_ID
    assert dst.stores["topics"].order.count(catalog.POINTER_ID) == 1


def test_the_sample_check_catches_a_copy_that_differs(source: Backend, local: Backend) -> None:
    report = migrate(source, _RecordingBackend(local, damage="n"), collections=["items"], sample=5)
    (items,) = report.collections
    assert not report.ok and items.dest_count == items.source_count
    assert items.sampled == 5 and len(items.mismatched) == 5


def test_bad_arguments_and_same_store_are_refused(source: Backend) -> None:
    with pytest.raises(ValueError, match="batch"):
        migrate(source, source, batch=0)
    with pytest.raises(ValueError, match="same store"):
        migrate(source, source)


def test_open_target_names_each_kind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    edge = open_target(str(tmp_path / "other"))
    assert isinstance(edge, EdgeBackend) and edge.root == tmp_path / "other" / "store"
    local = open_target(f"local:{tmp_path / 'q'}", prefix="x")
    assert isinstance(local, QdrantBackend) and local.local and local.prefix == "x"
    local.close()
    calls = []
    monkeypatch.setattr(QdrantBackend, "server", lambda *a, **kw: calls.append((a, kw)) or "server")
    ca = tmp_path / "ca.pem"
    assert open_target("https://qdrant.example:6333", api_key="k", prefix="p", ca_cert=ca) == "server"
    assert calls == [(("https://qdrant.example:6333", "k"), {"prefix": "p", "ca_cert": ca})]
    with pytest.raises(ValueError, match="URL, local:PATH or a data dir"):
        open_target(" ")


def test_curation_travels_with_the_topics(source: Backend, local: Backend) -> None:
    from topics import curation

    first, second = (t.topic_id for t in catalog.list_topics(source)[:2])
    curation.set_label(source, first, "pinned label")
    curation.merge(source, [first, second])
    assert migrate(source, local, indexes=INDEXES, last=POINTER_LAST).ok
    moved = curation.load(local)
    assert moved.labels == {first: "pinned label"} and moved.target(second) == first
