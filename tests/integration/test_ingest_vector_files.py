"""`topics ingest NAME.jsonl` with precomputed vectors in ``NAME.<view>.npy`` side files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from indexer.config import load_settings
from indexer.index import Index
from indexer.ingest import ingest_paths
from indexer.sources.vector_files import VectorFileError
from indexer.store.base import VECTOR_ATOL
from tests.helpers import use_tiny_clip


@pytest.fixture
def index(monkeypatch: pytest.MonkeyPatch):
    use_tiny_clip(monkeypatch)
    with Index(load_settings()) as idx:
        yield idx


def _write(
    folder: Path, n: int, *, model: str | None = None, dim: int = 64, blank_line: bool = True
) -> tuple[Path, dict[str, np.ndarray]]:
    """NAME.jsonl with `n` rows (and a blank line, which counts as no row), its side files, its model."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest = folder / "rows.jsonl"
    lines = [json.dumps({"id": f"r{i}", "caption": f"row {i}"}) for i in range(n)]
    if blank_line:
        lines.insert(1, "")
    manifest.write_text("\n".join(lines) + "\n")
    rng = np.random.default_rng(0)
    arrays = {}
    for view in ("image", "text"):
        array = rng.standard_normal((n, dim)).astype(np.float32)
        arrays[view] = array / np.linalg.norm(array, axis=1, keepdims=True)
        np.save(folder / f"rows.{view}.npy", arrays[view])
    if model is not None:
        (folder / "rows.vectors.json").write_text(json.dumps({"model": model}))
    return manifest, arrays


def test_rows_get_their_side_file_vectors(index: Index, tmp_path: Path) -> None:
    manifest, arrays = _write(tmp_path / "in", 5, model=index.clip.model_id)
    summary = ingest_paths(index, [manifest])
    assert (summary.ingested, summary.failed) == (5, 0)
    stored = {p.payload["source_id"]: p for batch in index.items.scroll(vectors=True) for p in batch}
    for i in range(5):
        np.testing.assert_allclose(stored[f"r{i}"].vectors["image"], arrays["image"][i], atol=VECTOR_ATOL)
        np.testing.assert_allclose(stored[f"r{i}"].vectors["text"], arrays["text"][i], atol=VECTOR_ATOL)
        assert stored[f"r{i}"].payload["caption"] == f"row {i}"
    assert ingest_paths(index, [manifest]).skipped == 5


def test_a_nan_row_fails_alone(index: Index, tmp_path: Path) -> None:
    manifest, arrays = _write(tmp_path / "in", 4, model=index.clip.model_id)
    arrays["text"][2, 5] = np.nan
    np.save(tmp_path / "in" / "rows.text.npy", arrays["text"])
    summary = ingest_paths(index, [manifest])
    assert (summary.ingested, summary.failed) == (3, 1)
    assert summary.failures[0][1] == "bad-vector"
    assert {f.reason for f in index.ledger.failures()} == {"bad-vector"}
    assert "r2" not in {p.payload["source_id"] for batch in index.items.scroll() for p in batch}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("no_meta", "rows.vectors.json is missing"),
        ("other_model", "but this store's is"),
        ("wrong_dim", "this store needs (rows, 64)"),
        ("short", "rows.image.npy has 3 rows, rows.jsonl has 4"),
        ("ints", "int64 values, need floats"),
    ],
)
def test_unusable_side_files_are_refused_before_anything_is_written(
    index: Index, tmp_path: Path, change: str, message: str
) -> None:
    folder = tmp_path / "in"
    model = {"no_meta": None, "other_model": "open_clip:ViT-L-14/openai"}.get(change, index.clip.model_id)
    manifest, arrays = _write(folder, 4, model=model, dim=32 if change == "wrong_dim" else 64)
    if change == "short":
        np.save(folder / "rows.image.npy", arrays["image"][:3])
        np.save(folder / "rows.text.npy", arrays["text"][:3])
    if change == "ints":
        np.save(folder / "rows.image.npy", np.ones((4, 64), np.int64))
    with pytest.raises(VectorFileError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ingest_paths(index, [manifest])
    assert not index.items.exists() or index.items.count() == 0
