"""One `VectorStore` contract, run against every backend (see conftest.py for the list)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import numpy as np
import pytest

from indexer.config import Settings
from indexer.store import EdgeBackend, EdgeStore, QdrantBackend, open_backend
from indexer.store.base import (
    VECTOR_ATOL,
    Backend,
    CollectionSchema,
    Filter,
    IdentityMismatch,
    Point,
    StoreError,
    StoreLocked,
    VectorStore,
)
from tests.helpers import closed_port

REPO = Path(__file__).resolve().parents[2]
DIM = 8
IDENTITY = {"arch": "ViT-B-32", "pretrained": "laion2b_s34b_b79k", "dim": DIM}
SCHEMA = CollectionSchema(
    vectors={"image": DIM, "text": DIM},
    identity=IDENTITY,
    indexes={"tag": "keyword", "n": "integer", "when": "datetime", "topic": "integer"},
)


def pid(k: int) -> str:
    return str(uuid.UUID(int=k + 1))


def unit(rng: np.random.Generator, dim: int = DIM) -> np.ndarray:
    v = rng.standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


@pytest.fixture
def store(backend: Backend) -> VectorStore:
    s = backend.collection("items")
    s.ensure(SCHEMA)
    return s


def fill(store: VectorStore, n: int, seed: int = 0) -> dict[str, Point]:
    """`n` points: even ones image+text, k%3==1 image only, the rest text only; varied payloads."""
    rng = np.random.default_rng(seed)
    points = {}
    for k in range(n):
        vectors = {"image": unit(rng), "text": unit(rng)}
        if k % 3 == 1:
            del vectors["text"]
        elif k % 2 == 1:
            del vectors["image"]
        payload = {"tag": "abc"[k % 3], "n": k, "when": f"2024-01-{1 + k % 28:02d}T12:00:00Z"}
        points[pid(k)] = Point(id=pid(k), vectors=vectors, payload=payload)
    store.upsert(list(points.values()))
    return points


def all_ids(store: VectorStore, where: Filter | None = None, batch: int = 1000) -> list[str]:
    return [p.id for b in store.scroll(where, payload=False, batch=batch) for p in b]


# ---- lifecycle, identity ----


def test_ensure_creates_and_records_identity(backend: Backend) -> None:
    s = backend.collection("items")
    assert not s.exists()
    assert s.identity() is None
    s.ensure(SCHEMA)
    assert s.exists()
    assert s.identity() == IDENTITY
    s.ensure(SCHEMA)  # idempotent
    assert s.count() == 0


def test_collection_returns_same_store_for_same_name(backend: Backend) -> None:
    assert backend.collection("items") is backend.collection("items")
    assert backend.collection("items") is not backend.collection("topics")


def test_identity_mismatch_is_refused_naming_both(backend: Backend) -> None:
    s = backend.collection("items")
    s.ensure(SCHEMA)
    other = CollectionSchema(vectors=SCHEMA.vectors, identity={**IDENTITY, "arch": "ViT-L-14"})
    with pytest.raises(IdentityMismatch) as err:
        s.ensure(other)
    assert "ViT-B-32" in str(err.value) and "ViT-L-14" in str(err.value)
    with pytest.raises(IdentityMismatch, match="image"):
        s.ensure(CollectionSchema(vectors={"image": DIM * 2}, identity=IDENTITY))
    assert s.identity() == IDENTITY


def test_ensure_adds_a_missing_vector_name(backend: Backend) -> None:
    s = backend.collection("items")
    s.ensure(CollectionSchema(vectors={"image": DIM}, identity=IDENTITY))
    s.upsert([Point(id=pid(0), vectors={"image": unit(np.random.default_rng(1))})])
    s.ensure(SCHEMA)  # brings "text"
    v = unit(np.random.default_rng(2))
    s.upsert([Point(id=pid(1), vectors={"text": v})])
    (got,) = s.retrieve([pid(1)], vectors=True)
    np.testing.assert_allclose(got.vectors["text"], v, atol=VECTOR_ATOL)
    assert s.count() == 2


@pytest.mark.parametrize("datatype", ["float16", "float32"])
def test_edge_stores_elements_in_the_configured_datatype(tmp_path: Path, datatype: str) -> None:
    """float16 (the default) keeps 11 significant bits of each element, float32 all of them, and a
    collection keeps its type when reopened by a backend configured otherwise."""
    v = unit(np.random.default_rng(3))
    stored = v.astype(np.float16).astype(np.float32) if datatype == "float16" else v
    backend = EdgeBackend(tmp_path, datatype=datatype)  # type: ignore[arg-type]
    s = backend.collection("items")
    s.ensure(SCHEMA)
    s.upsert([Point(id=pid(0), vectors={"image": v, "text": v})])
    s.ensure(CollectionSchema(vectors={**SCHEMA.vectors, "caption": DIM}, identity=IDENTITY))
    s.upsert([Point(id=pid(1), vectors={"caption": v})])
    backend.close()
    other = EdgeBackend(tmp_path, datatype="float32" if datatype == "float16" else "float16")
    got = {p.id: p for p in other.collection("items").retrieve([pid(0), pid(1)], vectors=True)}
    other.close()
    for vector in (got[pid(0)].vectors["image"], got[pid(0)].vectors["text"], got[pid(1)].vectors["caption"]):
        np.testing.assert_allclose(vector, stored, atol=1e-7)
    assert np.abs(stored - v).max() < VECTOR_ATOL


def test_calls_before_ensure_raise_store_error(backend: Backend) -> None:
    s = backend.collection("items")
    with pytest.raises(StoreError, match="ensure"):
        s.upsert([Point(id=pid(0), vectors={"image": np.ones(DIM)})])
    with pytest.raises(StoreError, match="ensure"):
        s.count()


# ---- writes and reads ----


def test_round_trip_of_vectors_and_payload(store: VectorStore) -> None:
    rng = np.random.default_rng(3)
    payload = {
        "caption": "Traktoren vor dem Reichstag 🚜 — «протест»",
        "nested": {"a": {"b": [1, 2.5, "x", None, {"c": True}]}},
        "tags": ["farm", "protest"],
        "missing": None,
        "big": 2**53,
        "empty": [],
    }
    image, text = unit(rng), unit(rng)
    store.upsert([Point(id=pid(0), vectors={"image": image, "text": text}, payload=payload)])
    (got,) = store.retrieve([pid(0)], vectors=True)
    assert got.id == pid(0)
    assert dict(got.payload) == payload
    assert set(got.vectors) == {"image", "text"}
    assert all(v.dtype == np.float32 for v in got.vectors.values())
    np.testing.assert_allclose(got.vectors["image"], image, atol=VECTOR_ATOL)
    np.testing.assert_allclose(got.vectors["text"], text, atol=VECTOR_ATOL)
    (only_text,) = store.retrieve([pid(0)], vectors=["text"], payload=False)
    assert set(only_text.vectors) == {"text"} and dict(only_text.payload) == {}


def test_points_with_some_named_vectors(store: VectorStore) -> None:
    points = fill(store, 6)
    got = {p.id: p for p in store.retrieve(list(points), vectors=True)}
    for point_id, point in points.items():
        assert set(got[point_id].vectors) == set(point.vectors)
        for name, vector in point.vectors.items():
            np.testing.assert_allclose(got[point_id].vectors[name], vector, atol=VECTOR_ATOL)
    assert store.count(Filter(has_vector="text")) == 4  # k = 0, 2, 3, 4... minus image-only 1, 4
    assert set(all_ids(store, Filter(has_vector="image"))) == {pid(k) for k in (0, 1, 2, 4)}


def test_upsert_is_idempotent_and_replaces_whole_points(store: VectorStore) -> None:
    rng = np.random.default_rng(4)
    first = Point(id=pid(0), vectors={"image": unit(rng), "text": unit(rng)}, payload={"a": 1, "b": 2})
    store.upsert([first])
    store.upsert([first])
    assert store.count() == 1
    second = Point(id=pid(0), vectors={"image": unit(rng)}, payload={"a": 3})
    store.upsert([second])
    (got,) = store.retrieve([pid(0)], vectors=True)
    assert dict(got.payload) == {"a": 3}
    assert set(got.vectors) == {"image"}
    assert store.count() == 1


def test_ids_are_canonical_uuid_strings(store: VectorStore) -> None:
    upper = pid(7).upper()
    store.upsert([Point(id=upper, vectors={"image": np.ones(DIM)})])
    assert store.existing([pid(7)]) == {pid(7)}
    assert [p.id for p in store.retrieve([upper])] == [pid(7)]


def test_bad_input_is_refused_and_writes_nothing(store: VectorStore) -> None:
    good = Point(id=pid(0), vectors={"image": np.ones(DIM)})
    with pytest.raises(ValueError, match="shape"):
        store.upsert([good, Point(id=pid(1), vectors={"image": np.ones(DIM + 1)})])
    with pytest.raises(ValueError, match="caption"):
        store.upsert([good, Point(id=pid(1), vectors={"caption": np.ones(DIM)})])
    with pytest.raises(ValueError, match="UUID"):
        store.upsert([good, Point(id="not-a-uuid", vectors={"image": np.ones(DIM)})])
    assert store.count() == 0
    with pytest.raises(ValueError, match="float"):
        store.count(Filter(must={"score": 0.5}))


def test_set_payload_merges_and_none_drops_a_key(store: VectorStore) -> None:
    fill(store, 3)
    store.set_payload([pid(0), pid(1), pid(99)], {"topic": 5, "extra": {"k": "v"}})
    store.set_payload([pid(0)], {"tag": None})
    got = {p.id: dict(p.payload) for p in store.retrieve([pid(0), pid(1), pid(2), pid(99)])}
    assert got[pid(0)] == {"n": 0, "when": "2024-01-01T12:00:00Z", "topic": 5, "extra": {"k": "v"}}
    assert got[pid(1)]["topic"] == 5 and got[pid(1)]["tag"] == "b"
    assert "topic" not in got[pid(2)]
    assert pid(99) not in got  # a missing id is skipped, not created


def test_set_payloads_in_bulk(store: VectorStore) -> None:
    fill(store, 300)
    updates = {pid(k): {"topic": k % 7, "prob": round(k / 300, 3)} for k in range(300)}
    updates |= {pid(k): {"topic": -1} for k in range(0, 300, 50)}
    updates[pid(1000)] = {"topic": 3}  # not stored: skipped
    store.set_payloads(updates)
    got = {p.id: p.payload for b in store.scroll(batch=128) for p in b}
    assert len(got) == 300
    for k in range(300):
        want = updates[pid(k)]
        assert {key: got[pid(k)].get(key) for key in want} == want
        assert got[pid(k)]["n"] == k  # merged, not replaced
    assert store.count(Filter(must={"topic": -1})) == 6
    assert store.existing([pid(1000)]) == set()


def test_delete_and_delete_where(store: VectorStore) -> None:
    fill(store, 30)
    store.delete([pid(0), pid(1), pid(500)])
    assert store.count() == 28
    store.delete_where(Filter(must={"tag": "c"}))
    assert store.count() == 28 - 10
    assert store.count(Filter(must={"tag": "c"})) == 0
    assert store.existing([pid(0), pid(2), pid(3)]) == {pid(3)}


def test_retrieve_missing_ids_and_existing(store: VectorStore) -> None:
    fill(store, 5)
    ids = [pid(1), pid(77), pid(3), pid(88)]
    assert {p.id for p in store.retrieve(ids)} == {pid(1), pid(3)}
    assert store.retrieve([pid(77)]) == []
    assert store.retrieve([]) == []
    assert store.existing(ids) == {pid(1), pid(3)}
    assert store.existing([]) == set()


def test_scroll_streams_every_point_once_in_id_order(store: VectorStore) -> None:
    fill(store, 2500)
    batches = list(store.scroll(batch=1000, payload=False))
    assert [len(b) for b in batches] == [1000, 1000, 500]
    ids = [p.id for b in batches for p in b]
    assert len(ids) == len(set(ids)) == 2500
    assert ids == sorted(ids)
    tagged = [p for b in store.scroll(Filter(must={"tag": "a"}), batch=300, vectors=["image"]) for p in b]
    assert len(tagged) == 834
    assert all(p.payload["tag"] == "a" for p in tagged)
    assert all(set(p.vectors) == ({"image"} if int(p.payload["n"]) % 2 == 0 else set()) for p in tagged)
    assert [p.id for p in tagged] == sorted(p.id for p in tagged)


def test_scroll_reads_only_the_payload_fields_asked_for(store: VectorStore) -> None:
    fill(store, 10)
    full = [p for b in store.scroll() for p in b]
    assert all({"tag", "n"} <= set(p.payload) for p in full)
    named = [p for b in store.scroll(payload=["n", "absent"]) for p in b]
    assert [p.payload for p in named] == [{"n": p.payload["n"]} for p in full]


def test_retrieve_reads_only_the_payload_fields_asked_for(store: VectorStore) -> None:
    fill(store, 4)
    full = {p.id: p for p in store.retrieve([pid(i) for i in range(4)])}
    named = store.retrieve([pid(1), pid(3)], vectors=["image"], payload=["n", "absent"])
    assert {p.id: p.payload for p in named} == {i: {"n": full[i].payload["n"]} for i in (pid(1), pid(3))}


def test_scroll_of_nothing_yields_no_batches(store: VectorStore) -> None:
    assert list(store.scroll()) == []
    fill(store, 3)
    assert list(store.scroll(Filter(must={"tag": "zzz"}))) == []


# ---- filters ----


@pytest.fixture
def filtered(store: VectorStore) -> VectorStore:
    rows = [
        {"tag": "a", "n": 1, "when": "2024-01-01T00:00:00Z", "labels": ["x", "y"]},
        {"tag": "b", "n": 2, "when": "2024-02-01T00:00:00Z", "labels": []},
        {"tag": "c", "n": 3, "when": "2024-03-01T12:00:00Z", "labels": None},
        {"tag": "a", "n": 4, "when": "2024-04-01T00:00:00+02:00"},
        {"tag": "d", "n": 5, "labels": ["y"]},
    ]
    rng = np.random.default_rng(5)
    store.upsert(
        [
            Point(id=pid(k), vectors={"image": unit(rng)} if k % 2 == 0 else {"text": unit(rng)}, payload=row)
            for k, row in enumerate(rows)
        ]
    )
    return store


def matching(store: VectorStore, where: Filter) -> set[int]:
    found = {int(uuid.UUID(i).int) - 1 for i in all_ids(store, where)}
    assert store.count(where) == len(found)
    return found


@pytest.mark.parametrize(
    ("where", "want"),
    [
        (Filter(must={"tag": "a"}), {0, 3}),
        (Filter(must={"n": 2}), {1}),
        (Filter(must={"tag": ["b", "c"]}), {1, 2}),
        (Filter(must={"tag": ("a", "d")}), {0, 3, 4}),
        (Filter(must={"labels": "y"}), {0, 4}),
        (Filter(must_not={"tag": "a"}), {1, 2, 4}),
        (Filter(must_not={"tag": ["a", "b"]}), {2, 4}),
        (Filter(ranges={"n": (2, 4)}), {1, 2, 3}),
        (Filter(ranges={"n": (None, 2)}), {0, 1}),
        (Filter(ranges={"n": (4, None)}), {3, 4}),
        (Filter(ranges={"when": ("2024-01-15T00:00:00Z", "2024-03-31T23:59:59Z")}), {1, 2, 3}),
        (Filter(ranges={"when": ("2024-03-01T12:00:00Z", None)}), {2, 3}),
        (Filter(is_empty=("labels",)), {1, 2, 3}),
        (Filter(has_vector="image"), {0, 2, 4}),
        (Filter(has_vector="text"), {1, 3}),
        (Filter(must={"tag": "a"}, must_not={"n": 1}, has_vector="text"), {3}),
        (Filter(), {0, 1, 2, 3, 4}),
    ],
)
def test_every_filter_kind(filtered: VectorStore, where: Filter, want: set[int]) -> None:
    assert matching(filtered, where) == want


def test_datetime_range_takes_datetime_objects(filtered: VectorStore) -> None:
    import datetime as dt

    start = dt.datetime(2024, 1, 15, tzinfo=dt.UTC)
    assert matching(filtered, Filter(ranges={"when": (start, None)})) == {1, 2, 3}


# ---- search, count ----


def test_search_orders_filters_thresholds_and_limits(store: VectorStore) -> None:
    rng = np.random.default_rng(6)
    query = unit(rng)
    points = []
    for k in range(40):
        v = query + 0.08 * k * unit(rng)  # similarity falls as k grows
        points.append(
            Point(id=pid(k), vectors={"image": v / np.linalg.norm(v)}, payload={"tag": "ab"[k % 2]})
        )
    store.upsert(points)
    hits = store.search("image", query, limit=5)
    assert [h.id for h in hits][:3] == [pid(0), pid(1), pid(2)]
    assert len(hits) == 5
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True) and scores[0] == pytest.approx(1.0, abs=VECTOR_ATOL)
    assert hits[0].payload == {"tag": "a"} and dict(hits[0].vectors) == {}
    only_b = store.search("image", query, limit=3, where=Filter(must={"tag": "b"}), vectors=["image"])
    assert [h.id for h in only_b] == [pid(1), pid(3), pid(5)]
    assert set(only_b[0].vectors) == {"image"}
    threshold = hits[2].score - 1e-4
    above = store.search("image", query, limit=40, score_threshold=threshold)
    assert [h.id for h in above] == [pid(0), pid(1), pid(2)]
    assert store.search("text", query, limit=5) == []  # no point holds a text vector


def test_search_refuses_unknown_vector_or_wrong_shape(store: VectorStore) -> None:
    with pytest.raises(ValueError, match="caption"):
        store.search("caption", np.ones(DIM))
    with pytest.raises(ValueError, match="shape"):
        store.search("image", np.ones(DIM + 2))


def test_count_with_filter(store: VectorStore) -> None:
    fill(store, 90)
    assert store.count() == 90
    assert store.count(Filter(must={"tag": "b"})) == 30
    assert store.count(Filter(must={"tag": "b"}, ranges={"n": (0, 44)})) == 15


def test_flush_and_optimize_keep_everything(store: VectorStore) -> None:
    points = fill(store, 50)
    store.flush()
    store.optimize()
    assert store.count() == 50
    (hit,) = store.search("image", points[pid(0)].vectors["image"], limit=1)
    assert hit.id == pid(0)


# ---- persistence, locking, durability (backends that keep files) ----


@pytest.mark.parametrize("kind", ["edge", "local"])
def test_persists_across_close_and_reopen(kind: str, tmp_path: Path) -> None:
    def open_store() -> tuple[Backend, VectorStore]:
        b = EdgeBackend(tmp_path / "store") if kind == "edge" else QdrantBackend.local(tmp_path / "store")
        return b, b.collection("items")

    backend, store = open_store()
    store.ensure(SCHEMA)
    points = fill(store, 40)
    store.set_payload([pid(0)], {"topic": 9})
    backend.close()
    backend, store = open_store()
    try:
        assert store.exists() and store.identity() == IDENTITY
        assert store.count() == 40
        (got,) = store.retrieve([pid(0)], vectors=True)
        assert got.payload["topic"] == 9
        np.testing.assert_allclose(got.vectors["image"], points[pid(0)].vectors["image"], atol=VECTOR_ATOL)
        with pytest.raises(IdentityMismatch):
            store.ensure(CollectionSchema(vectors={"image": DIM}, identity={"arch": "other"}))
    finally:
        backend.close()


def test_edge_layout_file_is_written_atomically(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path / "items", "items")
    try:
        store.ensure(SCHEMA)
        files = sorted(p.name for p in (tmp_path / "items").iterdir())
        assert "layout.json" in files and not any(name.endswith(".tmp") for name in files)
    finally:
        store.close()


class _FailingShard:
    """Stands for an engine shard whose close raises (a full disk, a vanished directory)."""

    def close(self) -> None:
        raise OSError("injected: the shard could not close")


def test_edge_close_releases_the_lock_when_the_shard_fails_to_close(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path / "items", "items")
    store.ensure(SCHEMA)
    real = store._shard
    store._shard = _FailingShard()  # type: ignore[assignment]
    try:
        with pytest.raises(StoreError, match="close the shard"):
            store.close()
    finally:
        real.close()
    EdgeStore(tmp_path / "items", "items").close()  # the next open is not refused


def _child(script: str, tmp_path: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    code = textwrap.dedent(script)
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env, cwd=tmp_path
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line == "ready", f"child failed: {line!r}"
    return proc


CHILD_PRELUDE = """
    import sys, time, uuid
    import numpy as np
    from pathlib import Path
    from indexer.store.base import CollectionSchema, Point
    from indexer.store.edge import EdgeStore
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("items")
"""


def test_second_process_gets_store_locked_naming_dir_and_pid(tmp_path: Path) -> None:
    proc = _child(
        CHILD_PRELUDE + "    s = EdgeStore(path, 'items')\n    print('ready', flush=True)\n"
        "    time.sleep(60)\n",
        tmp_path,
    )
    try:
        with pytest.raises(StoreLocked) as err:
            EdgeStore(tmp_path / "items", "items")
        assert str(tmp_path / "items") in str(err.value)
        assert str(proc.pid) in str(err.value)
    finally:
        proc.kill()
        proc.wait()
    store = EdgeStore(tmp_path / "items", "items")  # the lock dies with its owner
    store.close()


def test_store_locked_within_one_process_too(tmp_path: Path) -> None:
    first = EdgeStore(tmp_path / "items", "items")
    try:
        with pytest.raises(StoreLocked, match=str(os.getpid())):
            EdgeStore(tmp_path / "items", "items")
    finally:
        first.close()


def test_flushed_writes_survive_sigkill(tmp_path: Path) -> None:
    script = (
        CHILD_PRELUDE
        + f"""
    s = EdgeStore(path, 'items')
    s.ensure(CollectionSchema(vectors={{"image": {DIM}}}, identity={{"arch": "x"}}))
    rng = np.random.default_rng(0)
    pts = [Point(id=str(uuid.UUID(int=k + 1)), vectors={{"image": rng.standard_normal({DIM})}},
                 payload={{"n": k}}) for k in range(500)]
    s.upsert(pts)
    s.set_payloads({{p.id: {{"topic": k % 4}} for k, p in enumerate(pts)}})
    s.delete([pts[0].id])
    s.flush()
    print("ready", flush=True)
    time.sleep(60)
"""
    )
    proc = _child(script, tmp_path)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    store = EdgeStore(tmp_path / "items", "items")
    try:
        assert store.identity() == {"arch": "x"}
        assert store.count() == 499
        assert store.count(Filter(must={"topic": 3})) == 125
        (p,) = store.retrieve([pid(10)], vectors=True)
        assert p.payload == {"n": 10, "topic": 2} and p.vectors["image"].shape == (DIM,)
    finally:
        store.close()


def test_closed_edge_store_refuses_calls(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path / "items", "items")
    store.ensure(SCHEMA)
    store.close()
    store.close()  # twice is fine
    with pytest.raises(StoreError, match="closed"):
        store.count()


# ---- open_backend ----


def test_open_backend_picks_the_configured_kind(tmp_path: Path) -> None:
    edge = open_backend(Settings(data_dir=tmp_path / "data"))
    try:
        assert isinstance(edge, EdgeBackend)
        assert isinstance(edge.collection("items"), EdgeStore)
        assert edge.collection("items").path == tmp_path / "data" / "store" / "items"
        with pytest.raises(ValueError, match="collection name"):
            edge.collection("../escape")
    finally:
        edge.close()
    memory = open_backend(Settings(store={"backend": "memory", "prefix": "p"}))
    try:
        assert isinstance(memory, QdrantBackend)
        assert memory.collection("items").collection_name == "p_items"
    finally:
        memory.close()
    with pytest.raises(ValueError, match="TOPICS_STORE__URL"):
        open_backend(Settings(store={"backend": "qdrant"}))


def test_open_backend_reaches_a_server_with_url_and_key(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(QdrantBackend, "server", lambda *a, **kw: calls.append((a, kw)) or "server")
    settings = Settings(store={"url": "https://qdrant.example:6333", "api_key": "k", "timeout_s": 5})
    assert open_backend(settings) == "server"
    ((url, key), kw) = calls[0]
    assert url == "https://qdrant.example:6333" and key.get_secret_value() == "k"
    tuning = kw.pop("tuning")
    assert kw == {"prefix": "topics", "timeout_s": 5.0, "ca_cert": None}
    assert (tuning.quantization, tuning.on_disk_vectors, tuning.shard_number) == ("none", False, None)


def test_server_backend_keeps_the_api_key_out_of_reprs() -> None:
    settings = Settings(store={"url": "https://qdrant.example:6333", "api_key": "s3cret-key"})
    backend = QdrantBackend.server(settings.store.url, settings.store.api_key, check_compatibility=False)
    try:
        text = repr(backend) + repr(backend.collection("items")) + repr(settings) + str(settings.store)
        assert "s3cret-key" not in text
        assert "qdrant.example" in repr(backend)
    finally:
        backend.close()


def test_an_unreachable_server_is_named_in_the_error() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    backend = QdrantBackend.server(url, timeout_s=2, check_compatibility=False)
    try:
        with pytest.raises(StoreError, match=rf"check a collection \(topics_items at {url}\)"):
            backend.collection("items").exists()
    finally:
        backend.close()


def test_bool_filters_are_refused_on_every_backend(filtered: VectorStore) -> None:
    """qdrant-edge-py 0.9.0 turns MatchValue(True) into 1 and matches nothing: a wrong answer is worse
    than a clear error, so every backend refuses bools and flags are stored as 0/1."""
    with pytest.raises(ValueError, match="store 0/1"):
        filtered.count(Filter(must={"flag": True}))
