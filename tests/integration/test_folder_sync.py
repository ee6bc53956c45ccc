"""Folder files and stored items stay in step: overwritten files, awkward sidecar names, old ledgers."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from indexer.config import load_settings
from indexer.index import Index
from indexer.ingest import ingest_paths
from indexer.items import id_from_content, sha256_bytes
from indexer.ledger import Ledger
from indexer.pipeline import Pipeline
from tests.helpers import draw_image, use_tiny_clip


@pytest.fixture
def index(monkeypatch: pytest.MonkeyPatch):
    use_tiny_clip(monkeypatch)
    with Index(load_settings()) as idx:
        yield idx


def _stored(index: Index) -> set[str]:
    return {p.id for batch in index.items.scroll(payload=False) for p in batch}


def _image_id(path: Path) -> str:
    return id_from_content(sha256_bytes(path.read_bytes()), None, with_caption=False)


def _caption_id(text: str) -> str:
    return id_from_content(None, text, with_caption=False)


def test_a_file_overwritten_with_another_stored_file_leaves_no_orphan(index: Index, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    a, b = draw_image(folder / "a.jpg", seed=1), draw_image(folder / "b.jpg", seed=2)
    old_a = _image_id(a)
    ingest_paths(index, [folder])
    assert _stored(index) == {old_a, _image_id(b)}
    a.write_bytes(b.read_bytes())  # a.jpg now holds b.jpg's content: its old item is held by no file
    ingest_paths(index, [folder])
    assert _stored(index) == {_image_id(b)}
    assert {r.item_id for r in index.ledger.records_under(str(folder.resolve()))} == {_image_id(b)}


def test_a_watched_file_overwritten_with_another_stored_file_leaves_no_orphan(
    index: Index, tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    a, b = draw_image(folder / "a.jpg", seed=1), draw_image(folder / "b.jpg", seed=2)
    pipeline = Pipeline(index.settings, index.items, index.ledger, clip=index.clip)
    try:
        pipeline.ingest_folder(folder)
        a.write_bytes(b.read_bytes())
        pipeline.ingest_folder_changes(folder, [a], [])
    finally:
        pipeline.close()
    assert _stored(index) == {_image_id(b)}


@pytest.mark.parametrize("stem", ["a;note", "a:note", "x:1:2;note"])
def test_sidecar_names_with_separators_leave_other_items_alone(
    index: Index, tmp_path: Path, stem: str
) -> None:
    """A caption file named `a;note.txt` once made the pipeline read `note.txt` as its own sidecar."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "note.txt").write_text("a note of its own")
    ingest_paths(index, [folder])
    image = draw_image(folder / f"{stem}.jpg", seed=3)
    (folder / f"{stem}.txt").write_text("the image's caption")
    first = ingest_paths(index, [folder])
    assert (first.ingested, first.deleted, first.failed) == (1, 0, 0)
    assert _stored(index) == {_caption_id("a note of its own"), _image_id(image)}
    again = ingest_paths(index, [folder])  # and the sidecar's stamp reads back: nothing changed
    assert (again.ingested, again.updated, again.skipped, again.deleted) == (0, 0, 2, 0)
    caption = index.items.retrieve([_image_id(image)])[0].payload["caption"]
    assert caption == "the image's caption"


def _to_schema_1(path: Path) -> None:
    """Rewrite a ledger as schema 1 wrote it: sidecars as "name:size:mtime_ns;…"."""
    db = sqlite3.connect(path, isolation_level=None)
    rows = db.execute("SELECT path, caption_sig FROM files WHERE caption_sig != ''").fetchall()
    for file, signature in rows:
        old = ";".join(f"{n}:{s}:{m}" for n, s, m in json.loads(signature))
        db.execute("UPDATE files SET caption_sig = ? WHERE path = ?", (old, file))
    db.execute("PRAGMA user_version = 1")
    db.close()


def test_a_ledger_of_schema_1_is_migrated_and_unchanged_files_stay_unchanged(
    index: Index, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "in"
    for n, stem in enumerate(["cat", "a;b", "c:d"]):
        draw_image(folder / f"{stem}.jpg", seed=n)
        (folder / f"{stem}.txt").write_text(f"caption {n}")
    (folder / "cat.json").write_text('{"author": "ann"}')
    assert ingest_paths(index, [folder]).ingested == 3
    index.ledger.close()
    _to_schema_1(index.settings.ledger_path)
    decoded: list[str] = []
    real_decode = Pipeline._decode
    monkeypatch.setattr(
        Pipeline, "_decode", lambda self, work: decoded.append(work.item.origin) or real_decode(self, work)
    )
    with Ledger(index.settings.ledger_path) as ledger:
        pipeline = Pipeline(index.settings, index.items, ledger, clip=index.clip)
        try:
            again = pipeline.ingest_folder(folder)
        finally:
            pipeline.close()
    assert (again.ingested, again.updated, again.skipped, again.deleted) == (0, 0, 3, 0)
    assert decoded == []  # the cheap check knew every file: none was read again
