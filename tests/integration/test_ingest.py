"""Ingest end to end on the real embedded store: counts, payloads, idempotence, renames, edits, deletes."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from indexer.config import load_settings
from indexer.index import Index
from indexer.ingest import ingest_paths
from indexer.store.base import Filter, IdentityMismatch
from tests.badimages import write_bad_corpus
from tests.helpers import draw_image, make_folder, use_tiny_clip


@pytest.fixture
def index(monkeypatch: pytest.MonkeyPatch):
    use_tiny_clip(monkeypatch)
    with Index(load_settings()) as idx:
        yield idx


def _payloads(index: Index) -> dict[str, dict]:
    return {p.id: dict(p.payload) for batch in index.items.scroll() for p in batch}


def test_folder_items_of_every_kind_are_stored_once(index: Index, tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "in")
    summary = ingest_paths(index, [folder])
    assert (summary.ingested, summary.failed, summary.skipped) == (10, 0, 0)
    assert index.items.count() == 10
    stored = {p.id: p for batch in index.items.scroll(vectors=True) for p in batch}
    kinds = {}
    for point in stored.values():
        name = Path(point.payload.get("path") or point.payload["origin"]).stem
        kinds[name] = set(point.vectors)
        assert point.payload["pending"] == 1
        assert point.payload["source"] == "folder"
        assert point.payload["ingested_at"]
        for vec in point.vectors.values():
            assert vec.shape == (64,)
            assert np.linalg.norm(vec) == pytest.approx(1.0, abs=2.5e-4)  # float16: each element within 2^-12
    assert kinds["pair0"] == {"image", "text"}
    assert kinds["alone0"] == {"image"}
    assert kinds["words0"] == {"text"}
    pair = next(p.payload for p in stored.values() if p.payload.get("path", "").endswith("pair1.jpg"))
    assert pair["caption"] == "caption number 1 about tractors"
    assert (pair["width"], pair["height"]) == (96, 64)
    assert len(pair["sha256"]) == 64
    assert pair["model"].startswith("open_clip:")


def test_reingest_is_a_noop(index: Index, tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "in")
    ingest_paths(index, [folder])
    before = _payloads(index)
    again = ingest_paths(index, [folder])
    assert (again.ingested, again.updated, again.skipped, again.deleted) == (0, 0, 10, 0)
    assert _payloads(index) == before


def test_moved_file_does_not_duplicate(index: Index, tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "in")
    ingest_paths(index, [folder])
    target = folder / "moved" / "renamed.jpg"
    target.parent.mkdir()
    shutil.move(folder / "alone0.png", target)
    summary = ingest_paths(index, [folder])
    assert index.items.count() == 10
    assert summary.ingested == 0 and summary.deleted == 0
    paths = {p.get("path") for p in _payloads(index).values()}
    assert str(target.resolve()) in paths
    assert not any(p and p.endswith("alone0.png") for p in paths)


def test_edited_sidecar_updates_its_item(index: Index, tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "in")
    ingest_paths(index, [folder])
    ids_before = set(_payloads(index))
    (folder / "pair0.txt").write_text("a completely new caption", encoding="utf-8")
    summary = ingest_paths(index, [folder])
    assert summary.updated == 1 and summary.ingested == 0
    payloads = _payloads(index)
    assert set(payloads) == ids_before
    assert "a completely new caption" in {p.get("caption") for p in payloads.values()}


def test_deleted_file_is_removed_on_next_scan(index: Index, tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "in")
    ingest_paths(index, [folder])
    (folder / "alone1.png").unlink()
    (folder / "words1.txt").unlink()
    summary = ingest_paths(index, [folder])
    assert summary.deleted == 2
    assert index.items.count() == 8


def test_identical_copies_are_one_item_until_the_last_goes(index: Index, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    draw_image(folder / "a.jpg", seed=1)
    shutil.copy(folder / "a.jpg", folder / "b.jpg")
    ingest_paths(index, [folder])
    assert index.items.count() == 1
    (folder / "a.jpg").unlink()
    ingest_paths(index, [folder])
    assert index.items.count() == 1
    (folder / "b.jpg").unlink()
    ingest_paths(index, [folder])
    assert index.items.count() == 0


def _manifest(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["id", "body", "image_file", "timestamp", "author"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_4cat_manifest_rows_keep_their_ids(index: Index, tmp_path: Path) -> None:
    draw_image(tmp_path / "media" / "same.jpg", seed=5)
    rows = [
        {
            "id": "111",
            "body": "tractors on the road",
            "image_file": "media/same.jpg",
            "timestamp": "2026-11-01 10:00:00",
            "author": "a",
        },
        {
            "id": "222",
            "body": "tractors again",
            "image_file": "media/same.jpg",
            "timestamp": "2026-11-02 10:00:00",
            "author": "b",
        },
        {
            "id": "333",
            "body": "only text",
            "image_file": "",
            "timestamp": "2026-11-03 10:00:00",
            "author": "c",
        },
    ]
    manifest = _manifest(tmp_path / "export.csv", rows)
    summary = ingest_paths(index, [manifest])
    assert summary.ingested == 3 and index.items.count() == 3
    sources = {p["source_id"]: p for p in _payloads(index).values()}
    assert set(sources) == {"111", "222", "333"}
    assert sources["111"]["meta"]["author"] == "a"
    again = ingest_paths(index, [manifest])
    assert (again.ingested, again.skipped) == (0, 3)
    rows[2]["body"] = "edited text"
    summary = ingest_paths(index, [_manifest(manifest, rows)])
    assert summary.updated + summary.ingested == 1
    assert {p["caption"] for p in _payloads(index).values()} >= {"edited text"}
    assert index.items.count() == 3


def _rows(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in rows))
    return path


def _captions(index: Index) -> dict[str, str]:
    return {p["source_id"]: p["caption"] for p in _payloads(index).values()}


def test_the_last_version_of_a_row_wins_in_one_batch(index: Index, tmp_path: Path) -> None:
    """A feed edit (or a row sent twice with new text) in one batch: the first version was kept."""
    summary = ingest_paths(index, [_rows(tmp_path / "feed.jsonl", [("r1", "first"), ("r1", "edited")])])
    assert _captions(index) == {"r1": "edited"}
    assert (summary.ingested, summary.skipped) == (1, 1)


def test_an_edit_reverted_within_one_run_keeps_the_last_version(index: Index, tmp_path: Path) -> None:
    ingest_paths(index, [_rows(tmp_path / "a.jsonl", [("r1", "original")])])
    ingest_paths(index, [_rows(tmp_path / "b.jsonl", [("r1", "edited"), ("r1", "original")])])
    assert _captions(index) == {"r1": "original"}


def test_an_edit_reverted_in_the_next_chunk_keeps_the_last_version(index: Index, tmp_path: Path) -> None:
    """The revert is read (and checked against the store) while the edit is still being embedded."""
    ingest_paths(index, [_rows(tmp_path / "a.jsonl", [("r1", "original")])])
    fillers = [(f"f{i}", f"filler row {i}") for i in range(255)]
    ingest_paths(index, [_rows(tmp_path / "b.jsonl", [*fillers, ("r1", "edited"), ("r1", "original")])])
    assert _captions(index)["r1"] == "original"


def test_precomputed_vectors_are_stored_as_given(index: Index, tmp_path: Path) -> None:
    vec = np.zeros(64, dtype=np.float32)
    vec[3] = 1.0
    manifest = tmp_path / "rows.jsonl"
    manifest.write_text(json.dumps({"id": "v1", "caption": "given", "vector_text": vec.tolist()}) + "\n")
    ingest_paths(index, [manifest])
    (point,) = index.items.retrieve([next(iter(_payloads(index)))], vectors=True)
    np.testing.assert_allclose(point.vectors["text"], vec, atol=1e-6)


def test_bad_images_are_recorded_and_the_rest_goes_in(index: Index, tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    expected = write_bad_corpus(folder)
    draw_image(folder / "good.jpg", seed=9)
    summary = ingest_paths(index, [folder])
    failed = {Path(origin).name: reason for origin, reason in summary.failures}
    reasons = {f.origin: f.reason for f in index.ledger.failures()}
    assert summary.failed == len(failed) > 0
    assert {Path(o).name for o in reasons} == set(failed)
    for name, outcome in expected.items():
        if outcome.ok:
            assert name not in failed, f"{name} should have been ingested, failed with {failed.get(name)}"
        else:
            assert failed.get(name) == outcome.reason, name
    assert index.items.count() == summary.ingested


def test_svg_pictures_are_stored_and_undecodable_files_are_counted_in_status(
    index: Index, tmp_path: Path
) -> None:
    from topics.query.status import status

    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "logo.svg").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" width="60" height="30"><rect width="60" height="30"/></svg>'
    )
    (folder / "logo.txt").write_text("the club logo")
    (folder / "IMG_0001.heic").write_bytes(b"\x00\x00\x00\x18ftypheic" + b"\x00" * 64)
    (folder / "IMG_0001.txt").write_text("a phone picture")
    (folder / "clip.mov").write_bytes(b"\x00" * 64)
    summary = ingest_paths(index, [folder])
    assert {Path(o).name: r for o, r in summary.failures} == {
        "IMG_0001.heic": "unsupported-format",
        "clip.mov": "unsupported-format",
    }
    payloads = {p["caption"]: p for p in _payloads(index).values()}
    assert payloads["the club logo"]["path"] == str(folder / "logo.svg")
    assert (payloads["the club logo"]["width"], payloads["the club logo"]["height"]) == (60, 30)
    assert "path" not in payloads["a phone picture"]  # kept as a caption, and the picture reported
    assert status(index)["failures"] == {"unsupported-format": 2}


def test_a_different_model_is_refused(index: Index, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = make_folder(tmp_path / "in", n_pairs=1, n_image_only=0, n_caption_only=0)
    ingest_paths(index, [folder])
    index.close()
    bigger = tmp_path / "other.json"
    config = json.loads(Path("tests/models/tiny-clip.json").read_text())
    config["embed_dim"] = 32
    bigger.write_text(json.dumps(config))
    monkeypatch.setenv("TOPICS_MODEL__CONFIG_FILE", str(bigger))
    monkeypatch.setenv("TOPICS_MODEL__ARCH", "other")
    with Index(load_settings()) as other, pytest.raises(IdentityMismatch):
        ingest_paths(other, [folder])


def test_pending_items_are_filterable(index: Index, tmp_path: Path) -> None:
    ingest_paths(index, [make_folder(tmp_path / "in")])
    assert index.items.count(Filter(must={"pending": 1})) == 10
