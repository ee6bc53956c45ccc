"""A damaged engine file: `status` says so and what to do, every other command says it in one line, and
`topics repair` brings the store back from the ledger's folders (docs/reliability.md).

Each case damages one real file of a store made by `topics ingest` and `topics recluster` (the real
Qdrant Edge engine, through the CLI in fork-server children): garbage in a segment's `segment.json`,
in the shard's `edge_config.json`, or in the id tracker's `mutable_id_tracker.mappings`, of the items
or of the topics collection.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import pytest

from indexer.backup import copy_sparse
from indexer.config import load_settings
from indexer.index import Index
from indexer.ingest import ingest_paths
from tests.helpers import make_folder, tiny_env, use_tiny_clip
from tests.reliability.conftest import wait_for
from tests.reliability.forkserver import ForkServer
from topics.service.jobs import rebuild_topics

DAMAGED_MARK, PLAN_FILE = ".damaged-", "repair.json"  # as indexer.repair names them (docs/reliability.md)
GARBAGE = b"\x00\xffnot what the engine wrote\n" * 8
DAMAGE = ("segment.json", "edge_config.json", "mutable_id_tracker.mappings")


@pytest.fixture(scope="module")
def template(forkserver: ForkServer, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """A data dir with a folder ingested and reclustered once (copied for each case), and its item count."""
    root = tmp_path_factory.mktemp("damage-template")
    folder = make_folder(root / "in")
    env = tiny_env(root / "data", TOPICS_CLIENT="off")
    log = root / "cli.log"
    assert forkserver.run(["ingest", str(folder)], env, log)[0] == 0, log.read_text()
    assert forkserver.run(["recluster"], env, log)[0] == 0, log.read_text()
    return root, _status(forkserver, env, log)["items"]


@pytest.fixture
def copied(template: tuple[Path, int], tmp_path: Path) -> tuple[dict[str, str], int]:
    """A copy of the template's data dir (its ledger names the template's folder), its environment and
    item count."""
    root, items = template
    data = tmp_path / "data"
    shutil.copytree(root / "data", data, copy_function=copy_sparse)  # a plain copy fills ~350 MB a case
    return tiny_env(data, TOPICS_CLIENT="off", TEMPLATE_FOLDER=str(root / "in")), items


def _damage(data: Path, collection: str, name: str) -> Path:
    directory = data / "store" / collection
    files = [directory / name] if name == "edge_config.json" else sorted(directory.glob(f"segments/*/{name}"))
    assert files, f"no {name} under {directory}"
    for file in files:
        file.write_bytes(GARBAGE)
    return files[0]


def _status(forkserver: ForkServer, env: dict[str, str], log: Path) -> dict:
    code, out = forkserver.run(["status", "--json"], env, log)
    assert code == 0, out
    return json.loads(out[out.index("{") :])


def _one_error(out: str) -> str:
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in out and "qdrant-edge could not" not in out, out
    return errors[0]


@pytest.mark.parametrize("collection", ["items", "topics"])
@pytest.mark.parametrize("name", DAMAGE)
def test_a_damaged_engine_file_is_reported_and_topics_repair_brings_the_items_back(
    forkserver: ForkServer, copied: tuple[dict[str, str], int], tmp_path: Path, collection: str, name: str
) -> None:
    env, items = copied
    data = Path(env["TOPICS_DATA_DIR"])
    log = tmp_path / "cli.log"
    _damage(data, collection, name)

    shown = _status(forkserver, env, log)
    assert shown["store"]["state"] == "damaged"
    assert [d["collection"] for d in shown["store"]["damaged"]] == [collection]
    assert shown["store"]["damaged"][0]["path"] == str(data / "store" / collection)
    assert "topics repair" in shown["store"]["recovery"] and "topics restore" in shown["store"]["recovery"]
    code, out = forkserver.run(["status"], env, log)
    assert code == 0 and "damaged" in out and "topics repair" in out, out

    for argv in (["list"], ["ingest", env["TEMPLATE_FOLDER"]]):
        code, out = forkserver.run(argv, env, log)
        line = _one_error(out)
        assert code == 1, out
        assert f"the store's {collection!r} collection is damaged" in line and "topics repair" in line, line

    code, out = forkserver.run(["repair"], env, log)
    assert code == 0, out
    assert f"moved the damaged {collection!r} collection" in out and "reclustered: run" in out, out
    if collection == "topics":
        assert "curation" in out  # said lost
    else:
        assert "ingested " in out and "manifests" in out  # folder back; manifest rows named as lost
    assert len(list((data / "store").glob(f"{collection}{DAMAGED_MARK}*.why"))) == 1
    assert not (data / PLAN_FILE).exists()

    shown = _status(forkserver, env, log)
    assert (shown["store"]["state"], shown["items"], shown["pending"]) == ("ok", items, 0)
    assert shown["run_id"] is not None and shown["topics"] >= 1
    assert any("`topics repair` moved it" in w for w in shown["warnings"])  # the copy kept aside is named
    for argv in (["list"], ["recluster"]):
        code, out = forkserver.run(argv, env, log)
        assert code == 0, out

    code, out = forkserver.run(["repair"], env, log)  # a second repair finds nothing to do
    assert code == 0 and f"nothing to repair: every collection opens ({items} items)" in out, out


def test_a_repair_killed_midway_resumes_and_finishes(
    forkserver: ForkServer, copied: tuple[dict[str, str], int], tmp_path: Path
) -> None:
    env, items = copied
    data = Path(env["TOPICS_DATA_DIR"])
    log = tmp_path / "repair.log"
    _damage(data, "items", "segment.json")
    _damage(data, "topics", "mutable_id_tracker.mappings")

    pid = forkserver.spawn(["-v", "repair"], env, log)
    refilling = "repair: ingesting the ledger's folders again"
    wait_for(lambda: log.exists() and refilling in log.read_text(errors="replace"), 120, "the refill")
    os.kill(pid, signal.SIGKILL)  # while the folder is ingested again (the model loads first)
    assert forkserver.wait(pid, 30) == -signal.SIGKILL
    assert (data / PLAN_FILE).exists()
    shown = _status(forkserver, env, log)
    assert shown["store"]["state"] == "ok"  # fresh collections, part filled
    assert "a `topics repair` was interrupted; run it again to finish" in shown["warnings"]

    code, out = forkserver.run(["repair"], env, log)
    assert code == 0 and "resumed an interrupted repair" in out, out
    assert "ingested " in out and "reclustered: run" in out, out
    shown = _status(forkserver, env, log)
    assert (shown["items"], shown["pending"], shown["store"]["state"]) == (items, 0, "ok")
    assert not (data / PLAN_FILE).exists()
    assert not any("interrupted" in w for w in shown["warnings"])
    assert len(list((data / "store").glob(f"*{DAMAGED_MARK}*.why"))) == 2  # both copies kept


def test_serve_refuses_a_damaged_store_in_one_line(
    forkserver: ForkServer, copied: tuple[dict[str, str], int], tmp_path: Path
) -> None:
    env, _ = copied
    data = Path(env["TOPICS_DATA_DIR"])
    log = tmp_path / "serve.log"
    _damage(data, "items", "edge_config.json")
    code, out = forkserver.run(["serve"], env, log, timeout=60)
    assert code == 1, out
    line = _one_error(out)
    assert "the store's 'items' collection is damaged" in line and "topics repair" in line, line
    assert not (data / "control.json").exists()  # it never served


def test_repair_refuses_while_serve_owns_the_store(
    forkserver: ForkServer, copied: tuple[dict[str, str], int], tmp_path: Path
) -> None:
    env, items = copied
    data = Path(env["TOPICS_DATA_DIR"])
    log = tmp_path / "serve.log"
    pid = forkserver.spawn(["serve"], env, log)
    try:
        wait_for(lambda: (data / "control.json").exists(), 120, "serve to start")
        code, out = forkserver.run(["repair"], env, tmp_path / "cli.log")
        assert code == 1, out
        line = _one_error(out)
        assert "topics repair needs the store to itself" in line and "stop it first" in line, line
    finally:
        os.kill(pid, signal.SIGTERM)
        assert forkserver.wait(pid, 60) == 0
    assert _status(forkserver, env, tmp_path / "cli.log")["items"] == items


def test_a_damaged_store_is_restored_from_a_backup_into_an_empty_data_dir(
    forkserver: ForkServer, copied: tuple[dict[str, str], int], tmp_path: Path
) -> None:
    env, items = copied
    data = Path(env["TOPICS_DATA_DIR"])
    log = tmp_path / "cli.log"
    code, out = forkserver.run(["backup", str(tmp_path / "backups"), "--json"], env, log)
    assert code == 0, out
    made = json.loads(out[out.index("{") :])["path"]
    _damage(data, "items", "mutable_id_tracker.mappings")
    code, out = forkserver.run(["restore", made], env, log)  # refused: the data dir holds a store
    assert code == 1 and "restore into an empty data dir" in _one_error(out), out
    data.rename(tmp_path / "data.damaged")
    code, out = forkserver.run(["restore", made], env, log)
    assert code == 0 and out.startswith("restored: "), out
    shown = _status(forkserver, env, log)
    assert (shown["store"]["state"], shown["items"], shown["run_id"]) == ("ok", items, 1)


def test_repair_drops_feed_cursors_so_the_feeds_are_read_again(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from topics.service.repair import repair

    use_tiny_clip(monkeypatch)
    monkeypatch.setenv("TOPICS_DATA_DIR", str(tmp_path / "data"))
    settings = load_settings()
    make_folder(tmp_path / "in")
    with Index(settings) as index:
        ingest_paths(index, [tmp_path / "in"])
        rebuild_topics(index)
        index.ledger.set_cursor("jsonl:/feeds/a.jsonl", '{"offset": 100}')
        items = index.items.count()
    _damage(settings.data_dir, "items", "segment.json")
    report = repair(settings)
    assert report["items"] == items and report["recluster"] is not None
    assert any("feed jsonl:/feeds/a.jsonl: its cursor was dropped" in line for line in report["done"])
    with Index(settings) as index:
        assert index.ledger.get_cursor("jsonl:/feeds/a.jsonl") is None
        assert index.items.count() == items


@pytest.mark.parametrize("name", ["storage.sqlite", "meta.json"])
def test_damaged_local_qdrant_storage_is_store_damaged_not_a_raw_error(tmp_path: Path, name: str) -> None:
    import numpy as np

    from indexer.store.base import CollectionSchema, Point, StoreDamaged
    from indexer.store.qdrant import QdrantBackend

    backend = QdrantBackend.local(tmp_path / "local")
    store = backend.collection("items")
    store.ensure(CollectionSchema(vectors={"image": 4}, identity={"model": "m"}))
    store.upsert([Point(id="00000000-0000-0000-0000-000000000001", vectors={"image": np.ones(4)})])
    backend.close()
    files = sorted((tmp_path / "local").rglob(name))
    assert files
    files[0].write_bytes(GARBAGE)
    with pytest.raises(StoreDamaged, match=r"local Qdrant storage .* is damaged") as raised:
        QdrantBackend.local(tmp_path / "local")
    assert raised.value.path == str(tmp_path / "local") and "\n" not in str(raised.value)
