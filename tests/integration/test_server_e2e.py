"""Server mode: collection settings for scale, TLS and key handling, and a whole run against a real Qdrant.

The run (ingest ▸ recluster ▸ search, then snapshots and a migration back to an embedded store) is one
function executed twice: on qdrant-client's in-memory mode here, and on a Qdrant server in Docker
(testcontainers, marked ``docker``) where an engine answers; there it skips saying why. The store
contract suite runs against that server too (``test_store_contract.py``, backend ``server``).
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from qdrant_client import models

from indexer.backup import snapshot_server
from indexer.config import CollectionTuning, Settings, load_settings
from indexer.index import Index
from indexer.ingest import ingest_paths
from indexer.migrate import migrate
from indexer.store import EdgeBackend, QdrantBackend, open_backend
from indexer.store.base import CollectionSchema
from indexer.store.qdrant import create_collection_args
from indexer.store.rules import Layout
from tests.helpers import STORIES, TINY_CLIP_CONFIG
from tests.integration.conftest import QDRANT_API_KEY
from topics import catalog
from topics.query.search import search
from topics.service.jobs import rebuild_topics
from topics.service.store_copy import STORE_INDEXES

LAYOUT = Layout(identity={"clip": {"arch": "ViT-B-32"}}, vectors={"image": 512, "text": 512})


# ---- collection settings for scale ----


def test_default_tuning_leaves_the_server_defaults() -> None:
    args = create_collection_args(LAYOUT, CollectionTuning())
    assert set(args) == {"vectors_config", "metadata"}
    assert args["metadata"] == LAYOUT.to_json()
    image = args["vectors_config"]["image"]
    assert (image.size, image.distance, image.on_disk) == (512, models.Distance.COSINE, None)


def test_scale_tuning_sets_disk_quantization_hnsw_shards_and_replicas() -> None:
    tuning = CollectionTuning(
        on_disk_vectors=True,
        quantization="int8",
        hnsw_m=32,
        hnsw_ef_construct=256,
        shard_number=12,
        replication_factor=2,
        write_consistency_factor=1,
    )
    args = create_collection_args(LAYOUT, tuning)
    assert all(v.on_disk for v in args["vectors_config"].values())
    assert args["hnsw_config"] == models.HnswConfigDiff(m=32, ef_construct=256)
    scalar = args["quantization_config"].scalar
    assert (scalar.type, scalar.quantile, scalar.always_ram) == (models.ScalarType.INT8, 0.99, True)
    assert (args["shard_number"], args["replication_factor"], args["write_consistency_factor"]) == (12, 2, 1)


def test_a_tuned_backend_creates_collections_with_its_tuning_in_local_mode(store_dir: Path) -> None:
    """Local mode accepts (and ignores) the scale arguments; the point is that they reach create."""
    tuning = CollectionTuning(on_disk_vectors=True, quantization="int8", hnsw_m=24, shard_number=3)
    backend = QdrantBackend(
        QdrantBackend.local(store_dir)._client, prefix="t", local=True, where="x", tuning=tuning
    )
    try:
        items = backend.collection("items")
        items.ensure(CollectionSchema(vectors={"image": 4}, identity={"m": 1}))
        assert items.identity() == {"m": 1} and items.count() == 0
        assert backend.collection("topics")._tuning == tuning
    finally:
        backend.close()


@pytest.mark.filterwarnings("ignore:Failed to obtain server version")  # no server behind the URL
def test_tls_with_a_private_ca_and_the_key_kept_out_of_sight(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        QdrantBackend.server("https://qdrant.internal:6333", "k", ca_cert=tmp_path / "missing-ca.pem")
    backend = QdrantBackend.server("https://qdrant.internal:6333", "s3cret-key")
    try:
        assert "s3cret-key" not in repr(backend) + repr(backend.collection("items"))
    finally:
        backend.close()


# ---- one whole run: ingest ▸ recluster ▸ search, snapshot, migrate back ----


def _write_manifest(path: Path) -> int:
    rows = [
        (f"{story}-{n}-{r}", f"{line} (post {r})")
        for story, lines in STORIES.items()
        for n, line in enumerate(lines)
        for r in range(3)
    ]
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "body"])
        writer.writerows(rows)
    return len(rows)


def _settings(tmp_path: Path, store: dict[str, object]) -> Settings:
    return load_settings(
        data_dir=tmp_path / "data",
        store=store,
        model={"arch": "tiny-clip", "pretrained": "none", "config_file": TINY_CLIP_CONFIG},
        ingest={"views": ["caption"], "batch_size": 16},
        cluster={"view": "caption", "min_cluster_size": 5},
    )


def _whole_run(settings: Settings, tmp_path: Path) -> None:
    n = _write_manifest(tmp_path / "posts.csv")
    with Index(settings) as index:
        summary = ingest_paths(index, [tmp_path / "posts.csv"])
        assert summary.ok and index.items.count() == n
        report = rebuild_topics(index)
        assert report.n_topics >= 1 and report.n_items == n
        found = search(index, "farmers protest with tractors", limit=5)
        hits = [h for t in found.topics for h in t.items] + list(found.unassigned)
        best = max(hits, key=lambda h: h.score)
        assert "tractor" in (best.caption or "")
        again = ingest_paths(index, [tmp_path / "posts.csv"])
        assert index.items.count() == n and again.ok  # re-ingest stores nothing twice
        if isinstance(index.backend, QdrantBackend) and not index.backend.local:
            made = snapshot_server(index.backend)
            assert [s["collection"].split("_")[-1] for s in made.snapshots] == ["items", "topics"]
            assert all(s["name"] and s["size"] > 0 for s in made.snapshots)
        back = EdgeBackend(tmp_path / "back" / "store")
        try:
            copied = migrate(index.backend, back, indexes=STORE_INDEXES, last={"topics": ("kind", "pointer")})
            assert copied.ok, copied.as_dict()
            assert catalog.current_run(back) == catalog.current_run(index.backend)
        finally:
            back.close()


@pytest.mark.slow
def test_ingest_recluster_search_on_the_in_memory_client(tmp_path: Path) -> None:
    _whole_run(_settings(tmp_path, {"backend": "memory"}), tmp_path)


@pytest.mark.docker
def test_ingest_recluster_search_on_a_qdrant_server(qdrant_server_url: str, tmp_path: Path) -> None:
    settings = _settings(tmp_path, {"url": qdrant_server_url, "api_key": QDRANT_API_KEY, "prefix": "e2e"})
    backend = open_backend(settings)
    assert isinstance(backend, QdrantBackend) and not backend.local
    backend.close()
    _whole_run(settings, tmp_path)
