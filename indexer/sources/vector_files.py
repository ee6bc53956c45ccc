"""Precomputed vectors beside a manifest: ``NAME.image.npy``, ``NAME.text.npy``, ``NAME.caption.npy``.

A manifest ``NAME.jsonl`` (or ``.csv``, ...) with side files gets row ``i`` of each array as the
vectors of its ``i``-th row (blank lines not counted). ``NAME.vectors.json`` names the models that
made them: ``{"model": "open_clip:ViT-B-32/laion2b_s34b_b79k"}`` for ``image``/``text`` and
``"caption_model"`` for ``caption`` (as `topics status` shows them). Arrays are memory-mapped and
read a chunk at a time, so a million rows never sit in memory; JSON lists of numbers in the manifest
itself cost ~30× the bytes to parse.

Everything about the files as a whole is checked before anything is written (`VectorFiles.check`:
the model, each array's shape against the store's dims, the row count against the manifest's); a row
whose vector is NaN, infinite or zero becomes a ``bad-vector`` failure and the others go in.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from indexer.errors import InvalidInput
from indexer.items import Item
from indexer.sources import SourceError

VIEWS = ("image", "text", "caption")
MODEL_KEYS = {"image": "model", "text": "model", "caption": "caption_model"}
CHUNK = 4096


class VectorFileError(InvalidInput):
    """The side files cannot be used as they are; nothing was ingested."""


@dataclass(frozen=True)
class VectorFiles:
    """The side files of one manifest: memory-mapped arrays by view and the models that made them."""

    manifest: Path
    arrays: Mapping[str, np.ndarray]
    models: Mapping[str, str]

    @property
    def rows(self) -> int:
        return int(next(iter(self.arrays.values())).shape[0])

    def check(self, dims: Mapping[str, int], models: Mapping[str, str], manifest_rows: int) -> None:
        """Refuse what the store cannot take: another model, other dims, a row count unlike the manifest's."""
        for view, array in self.arrays.items():
            name = self._file(view).name
            if view not in dims:
                raise VectorFileError(f"{name}: this store keeps no {view!r} vectors (ingest.views)")
            wanted = models.get(view)
            if self.models.get(view) != wanted:
                key = MODEL_KEYS[view]
                raise VectorFileError(
                    f"{self._meta().name}: {key} is {self.models.get(view)!r}, but this store's is {wanted!r}"
                )
            if array.ndim != 2 or array.shape[1] != dims[view]:
                raise VectorFileError(f"{name}: shape {array.shape}, this store needs (rows, {dims[view]})")
            if array.shape[0] != manifest_rows:
                raise VectorFileError(
                    f"{name} has {array.shape[0]} rows, {self.manifest.name} has {manifest_rows}"
                )

    def attach(self, rows: Iterable[Item | SourceError]) -> Iterator[Item | SourceError]:
        """Each manifest row with its vectors; a row with a NaN, infinite or zero vector is a failure."""
        start = 0
        batch: list[Item | SourceError] = []
        for row in rows:
            batch.append(row)
            if len(batch) == CHUNK:
                yield from self._attach_chunk(start, batch)
                start, batch = start + len(batch), []
        if batch:
            yield from self._attach_chunk(start, batch)

    def _attach_chunk(self, start: int, rows: list[Item | SourceError]) -> Iterator[Item | SourceError]:
        stop = start + len(rows)
        parts = {view: np.asarray(a[start:stop], np.float32) for view, a in self.arrays.items()}
        bad = np.zeros(len(rows), bool)
        for part in parts.values():
            bad |= ~np.isfinite(part).all(axis=1) | ~(np.abs(part).sum(axis=1) > 0)
        for i, row in enumerate(rows):
            if isinstance(row, SourceError):
                yield row
            elif bad[i]:
                detail = f"row {start + i} of the side files is NaN, infinite or zero"
                yield SourceError(row.origin, "bad-vector", detail)
            else:
                yield dataclasses.replace(row, vectors={**row.vectors, **{v: p[i] for v, p in parts.items()}})

    def _file(self, view: str) -> Path:
        return side_file(self.manifest, view)

    def _meta(self) -> Path:
        return side_file(self.manifest, "vectors", ".json")


def side_file(manifest: Path, part: str, suffix: str = ".npy") -> Path:
    """``NAME.<part><suffix>`` beside ``NAME.<ext>``."""
    return manifest.with_name(f"{manifest.stem}.{part}{suffix}")


def find_vector_files(manifest: Path) -> VectorFiles | None:
    """The side files of `manifest`, opened read-only; None when it has none."""
    found = {view: side_file(manifest, view) for view in VIEWS if side_file(manifest, view).is_file()}
    if not found:
        return None
    meta = side_file(manifest, "vectors", ".json")
    example = '{"model": "open_clip:ViT-B-32/laion2b_s34b_b79k"}'
    if not meta.is_file():
        raise VectorFileError(
            f"{meta.name} is missing: it names the model that made the vectors, e.g. {example}"
        )
    try:
        declared = json.loads(meta.read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:
        raise VectorFileError(f"{meta.name}: not readable JSON ({exc})") from exc
    if not isinstance(declared, dict):
        raise VectorFileError(f"{meta.name}: expected an object like {example}")
    arrays = {view: _open(path) for view, path in found.items()}
    lengths = {a.shape[0] for a in arrays.values()}
    if len(lengths) > 1:
        raise VectorFileError(f"{manifest.stem}.*.npy: the side files differ in length ({sorted(lengths)})")
    models = {view: declared.get(MODEL_KEYS[view]) for view in arrays}
    return VectorFiles(manifest=manifest, arrays=arrays, models=models)


def _open(path: Path) -> np.ndarray:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise VectorFileError(f"{path.name}: not a NumPy .npy array ({exc})") from exc
    if not np.issubdtype(array.dtype, np.floating):
        raise VectorFileError(f"{path.name}: {array.dtype} values, need floats")
    return array
