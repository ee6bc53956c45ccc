"""`topics ingest`: folders and manifests through the pipeline."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from indexer.index import Index
from indexer.items import Item
from indexer.pipeline import IngestSummary, Pipeline
from indexer.sources import SourceError, check_storable_path
from indexer.sources.manifest import count_rows, read_manifest
from indexer.sources.vector_files import VectorFiles, find_vector_files

MANIFEST_SUFFIXES = {".csv", ".tsv", ".jsonl", ".ndjson"}


def open_pipeline(index: Index, progress: Callable[[int], None] | None = None) -> Pipeline:
    views = set(index.settings.ingest.views)
    return Pipeline(
        index.settings,
        index.items,
        index.ledger,
        clip=index.clip if views & {"image", "text"} else None,
        caption=index.caption_embedder,
        progress=progress,
    )


def ingest_paths(
    index: Index,
    paths: Sequence[Path],
    *,
    namespace: str | None = None,
    progress: Callable[[int], None] | None = None,
    caption_columns: Sequence[str] = (),
) -> IngestSummary:
    """Ingest each folder (scan, update, sweep) and each manifest; one summary for all.

    `caption_columns` (else the `ingest.caption_columns` setting): manifest columns joined into the caption.
    """
    for path in paths:
        check_storable_path(path)
        if not path.exists():
            raise FileNotFoundError(f"no such file or folder: {path}")
        if path.is_file() and path.suffix.lower() not in MANIFEST_SUFFIXES:
            raise ValueError(f"{path}: not a folder or a manifest ({', '.join(sorted(MANIFEST_SUFFIXES))})")
    side_files = {path: checked_vector_files(index, path) for path in paths if path.is_file()}
    pipeline = open_pipeline(index, progress)
    total = IngestSummary()
    try:
        for path in paths:
            if path.is_dir():
                part = pipeline.ingest_folder(path)
            else:
                rows = read_manifest(
                    path,
                    allowed_roots=index.settings.ingest.allowed_roots,
                    namespace=namespace,
                    max_caption_bytes=index.settings.ingest.max_caption_bytes,
                    caption_columns=caption_columns or index.settings.ingest.caption_columns,
                )
                part = pipeline.ingest_items(_with_vectors(rows, side_files[path]))
            total.merge(part)
    finally:
        pipeline.close()
    return total


def checked_vector_files(index: Index, manifest: Path) -> VectorFiles | None:
    """The manifest's precomputed-vector side files, checked against the store's models and dims."""
    files = find_vector_files(manifest)
    if files is None:
        return None
    dims: dict[str, int] = {}
    models: dict[str, str] = {}
    views = set(index.settings.ingest.views)
    if views & {"image", "text"} & set(files.arrays):
        for view in views & {"image", "text"}:
            dims[view], models[view] = index.clip.dim, index.clip.model_id
    if "caption" in views and "caption" in files.arrays and index.caption_embedder is not None:
        dims["caption"], models["caption"] = index.caption_embedder.dim, index.caption_embedder.model_id
    files.check(dims, models, count_rows(manifest))
    return files


def _with_vectors(
    rows: Iterable[Item | SourceError], files: VectorFiles | None
) -> Iterable[Item | SourceError]:
    return rows if files is None else files.attach(rows)
