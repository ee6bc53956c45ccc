"""`topics ingest`: folders and manifests through the pipeline."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from indexer.index import Index
from indexer.pipeline import IngestSummary, Pipeline
from indexer.sources.manifest import read_manifest

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
        if not path.exists():
            raise FileNotFoundError(f"no such file or folder: {path}")
        if path.is_file() and path.suffix.lower() not in MANIFEST_SUFFIXES:
            raise ValueError(f"{path}: not a folder or a manifest ({', '.join(sorted(MANIFEST_SUFFIXES))})")
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
                part = pipeline.ingest_items(rows)
            total.merge(part)
    finally:
        pipeline.close()
    return total
