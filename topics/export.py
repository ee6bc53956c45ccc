"""`topics export`: one row per item (or per topic) as CSV, JSON Lines or Parquet, streamed.

Rows are written one scroll batch at a time, so memory stays one batch (plus the topic table)
whatever the corpus size. Item rows carry the item's topic as curated (a merge member's items are
exported under the merge's first id, with its pinned label), the source's own id (a 4CAT ``id`` comes
back exactly as given, so the rows join with the original export) and how the topic was assigned.
The file is written beside its final name and renamed at the end (`indexer.atomic`): an interrupted
export leaves no half file.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import IO, Any, Literal

from indexer.atomic import atomic_file
from indexer.index import Index
from indexer.store.base import Filter
from topics import catalog, curation
from topics.catalog import Run, Topic

Format = Literal["csv", "jsonl", "parquet"]
FORMATS: tuple[str, ...] = ("csv", "jsonl", "parquet")
SCROLL_BATCH = 2048
ITEM_FIELDS = (
    "item_id",
    "source_id",
    "path",
    "url",
    "caption",
    "created_at",
    "ingested_at",
    "source",
    "topic",
    "label",
    "theme",
    "score",
    "assigned",
)
TOPIC_FIELDS = ("topic", "label", "theme", "size", "change", "status", "first_seen", "last_seen", "words")
_INTS = {"topic", "theme", "size", "change"}
_FLOATS = {"score"}


@dataclass(frozen=True)
class ExportSummary:
    """What `export` wrote (`topics export --json`)."""

    path: str
    format: str
    rows: int
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "format": self.format, "rows": self.rows, "seconds": self.seconds}


def export(
    index: Index,
    out: Path | None,
    *,
    fmt: str = "csv",
    topic: int | None = None,
    since: str | None = None,
    topics_table: bool = False,
    stdout: IO[str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> ExportSummary:
    """Write item rows (or the topic table) to `out`, or to `stdout` when `out` is None."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: use csv, jsonl or parquet")
    if out is None and fmt == "parquet":
        raise ValueError("parquet is a binary file: give --out FILE")
    if out is not None and Path(out).is_dir():
        raise ValueError(f"{out} is a folder: give the export's file name")
    started = time.perf_counter()
    fields = TOPIC_FIELDS if topics_table else ITEM_FIELDS
    batches = topic_rows(index) if topics_table else item_rows(index, topic=topic, since=since)
    rows = _write(batches, fields, fmt, out, stdout, progress)
    where = str(out) if out is not None else "-"
    return ExportSummary(where, fmt, rows, round(time.perf_counter() - started, 3))


# ---- rows ----


def _need_run(index: Index) -> Run:
    run = catalog.current_run(index.backend)
    if run is None:
        raise LookupError("no topics yet: run `topics recluster` (or `topics serve`) first")
    return run


def _curated_topics(index: Index, run: Run) -> tuple[curation.Curation, dict[int, Topic]]:
    cur = curation.load(index.backend, run)
    every = catalog.list_topics(index.backend, include_vanished=True, run=run)
    return cur, {t.topic_id: t for t in curation.curate(every, cur)}


def item_rows(
    index: Index, *, topic: int | None = None, since: str | None = None
) -> Iterator[list[dict[str, Any]]]:
    """Batches of item rows, in the store's scroll order."""
    run = _need_run(index)
    cur, topics = _curated_topics(index, run)
    where = _item_filter(run, cur, topic, since)
    for batch in index.items.scroll(where, vectors=False, batch=SCROLL_BATCH):
        yield [_item_row(p.id, p.payload, run, cur, topics) for p in batch]


def _item_filter(run: Run, cur: curation.Curation, topic: int | None, since: str | None) -> Filter | None:
    must: dict[str, Any] = {}
    if topic is not None:
        must = dict(catalog.topic_filter(run, topic).must)
        must[catalog.slot_fields(run.slot)["topic"]] = [topic, *cur.merges.get(topic, ())]
    ranges = {"created_at": (since, None)} if since else {}
    return Filter(must=must, ranges=ranges) if must or ranges else None


def _item_row(
    item_id: str, p: Mapping[str, Any], run: Run, cur: curation.Curation, topics: Mapping[int, Topic]
) -> dict[str, Any]:
    found = catalog.read_assignment(p, run)
    topic_id = None if found is None else cur.target(found.topic) if found.topic >= 0 else found.topic
    topic = topics.get(topic_id) if topic_id is not None else None
    return {
        "item_id": item_id,
        "source_id": p.get("source_id"),
        "path": p.get("path"),
        "url": p.get("url"),
        "caption": p.get("caption"),
        "created_at": p.get("created_at"),
        "ingested_at": p.get("ingested_at"),
        "source": p.get("source"),
        "topic": topic_id,
        "label": topic.label if topic is not None else None,
        "theme": topic.theme_id if topic is not None else None,
        "score": found.score if found is not None else None,
        "assigned": found.assigned if found is not None else None,
    }


def topic_rows(index: Index) -> Iterator[list[dict[str, Any]]]:
    """The topic table as curated (hidden and merged-away topics too, with their curation)."""
    run = _need_run(index)
    _cur, topics = _curated_topics(index, run)
    yield [
        {
            "topic": t.topic_id,
            "label": t.label,
            "theme": t.theme_id,
            "size": t.size,
            "change": t.change,
            "status": t.status,
            "first_seen": t.first_seen.isoformat(),
            "last_seen": t.last_seen.isoformat(),
            "words": " ".join(t.words),
        }
        for t in topics.values()
    ]


# ---- writers ----


def _write(
    batches: Iterator[list[dict[str, Any]]],
    fields: Sequence[str],
    fmt: str,
    out: Path | None,
    stdout: IO[str] | None,
    progress: Callable[[int], None] | None,
) -> int:
    if out is None:
        return _write_to(batches, fields, fmt, stdout, progress)
    with atomic_file(Path(out)) as handle:
        if fmt == "parquet":
            return _write_to(batches, fields, fmt, handle, progress)
        text = io.TextIOWrapper(handle, encoding="utf-8", newline="")
        rows = _write_to(batches, fields, fmt, text, progress)
        text.flush()
        text.detach()  # atomic_file syncs and closes the file itself
        return rows


def _write_to(batches, fields, fmt, handle, progress) -> int:
    writer = {"csv": _csv, "jsonl": _jsonl, "parquet": _parquet}[fmt]
    return writer(batches, fields, handle, progress or (lambda n: None))


def _csv(batches, fields, handle, progress) -> int:
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(fields)
    in_order = itemgetter(*fields)
    rows = 0
    for batch in batches:
        writer.writerows(map(in_order, batch))
        rows += len(batch)
        progress(len(batch))
    return rows


def _jsonl(batches, fields, handle, progress) -> int:
    rows = 0
    for batch in batches:
        handle.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in batch))
        rows += len(batch)
        progress(len(batch))
    return rows


def _parquet(batches, fields, handle, progress) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([(f, _arrow_type(pa, f)) for f in fields])
    rows = 0
    with pq.ParquetWriter(handle, schema) as writer:
        for batch in batches:
            columns = {f: list(map(itemgetter(f), batch)) for f in fields}
            writer.write_table(pa.Table.from_pydict(columns, schema=schema))
            rows += len(batch)
            progress(len(batch))
    return rows


def _arrow_type(pa: Any, name: str) -> Any:
    if name in _INTS:
        return pa.int64()
    if name in _FLOATS:
        return pa.float64()
    return pa.string()
