"""`topics export`: one row per item (or per topic) as CSV, JSON Lines or Parquet, streamed.

Rows are written one scroll batch at a time, so memory stays one batch (plus the topic table)
whatever the corpus size. Item rows carry the item's topic as curated (a merge member's items are
exported under the merge's first id, with its pinned label), the source's own id (a 4CAT ``id`` comes
back exactly as given, so the rows join with the original export) and how the topic was assigned.
The file is written beside its final name and renamed at the end (`indexer.atomic`): an interrupted
export leaves no half file.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

from indexer.atomic import atomic_file
from indexer.index import Index
from indexer.store.base import Filter
from topics import catalog, curation
from topics.catalog import Run, Topic
from topics.dates import checked_date

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
_PAYLOAD_FIELDS = ("source_id", "path", "url", "caption", "created_at", "ingested_at", "source")
Columns = dict[str, list[Any]]  # one batch of rows: field -> values, None where a row has none


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
    since = checked_date("--since", since)
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


def item_rows(index: Index, *, topic: int | None = None, since: str | None = None) -> Iterator[Columns]:
    """Batches of item rows (as columns), in the store's scroll order. Before the first recluster
    every item is exported with an empty topic (``assigned`` = ``none``); a topic needs a run.

    What can be refused (no run for a topic, a bad option) is refused here, before a row is written.
    """
    run = catalog.current_run(index.backend)
    if run is None and topic is not None:
        _need_run(index)
    cur, topics = _curated_topics(index, run) if run is not None else (None, {})
    where = _item_filter(run, cur, topic, since)
    return _item_batches(index, where, run, _ShownTopics(cur, topics) if cur is not None else None)


def _item_batches(
    index: Index, where: Filter | None, run: Run | None, shown: _ShownTopics | None
) -> Iterator[Columns]:
    for batch in index.items.scroll(where, vectors=False, batch=SCROLL_BATCH):
        payloads = [p.payload for p in batch]
        columns: Columns = {"item_id": [p.id for p in batch]}
        columns.update(zip(_PAYLOAD_FIELDS, catalog.payload_columns(payloads, _PAYLOAD_FIELDS), strict=True))
        if run is None or shown is None:
            none = [None] * len(batch)
            columns.update(topic=none, label=none, theme=none, score=none, assigned=["none"] * len(batch))
        else:
            assignments = catalog.read_assignments(payloads, run)
            columns.update(shown.columns(assignments["topic"]))
            columns.update(score=assignments["score"], assigned=assignments["assigned"])
        yield columns


def _item_filter(
    run: Run | None, cur: curation.Curation | None, topic: int | None, since: str | None
) -> Filter | None:
    must: dict[str, Any] = {}
    if topic is not None and run is not None and cur is not None:
        must = dict(catalog.topic_filter(run, topic).must)
        must[catalog.slot_fields(run.slot)["topic"]] = [topic, *cur.merges.get(topic, ())]
    ranges = {"created_at": (since, None)} if since else {}
    return Filter(must=must, ranges=ranges) if must or ranges else None


class _ShownTopics:
    """Each stored topic id as exported (its merge target, that topic's label and theme), looked up
    once per topic rather than once per item."""

    def __init__(self, cur: curation.Curation, topics: Mapping[int, Topic]) -> None:
        self._cur, self._topics = cur, topics
        self._shown: dict[str, dict[int | None, Any]] = {n: {None: None} for n in ("topic", "label", "theme")}

    def columns(self, stored: list[int | None]) -> Columns:
        for topic_id in set(stored).difference(self._shown["topic"]):
            self._show(topic_id)
        return {name: list(map(shown.__getitem__, stored)) for name, shown in self._shown.items()}

    def _show(self, topic_id: int) -> None:
        target = self._cur.target(topic_id) if topic_id >= 0 else topic_id
        topic = self._topics.get(target)
        self._shown["topic"][topic_id] = target
        self._shown["label"][topic_id] = None if topic is None else topic.label
        self._shown["theme"][topic_id] = None if topic is None else topic.theme_id


def topic_rows(index: Index) -> Iterator[Columns]:
    """The topic table as curated (hidden and merged-away topics too, with their curation)."""
    run = _need_run(index)  # refused before the header is written
    _cur, topics = _curated_topics(index, run)
    every = list(topics.values())
    return iter(
        [
            {
                "topic": [t.topic_id for t in every],
                "label": [t.label for t in every],
                "theme": [t.theme_id for t in every],
                "size": [t.size for t in every],
                "change": [t.change for t in every],
                "status": [t.status for t in every],
                "first_seen": [t.first_seen.isoformat() for t in every],
                "last_seen": [t.last_seen.isoformat() for t in every],
                "words": [" ".join(t.words) for t in every],
            }
        ]
    )


# ---- writers ----


def _write(
    batches: Iterator[Columns],
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
    handle.write(",".join(fields) + "\n")
    rows = 0
    for columns in batches:
        if count := len(columns[fields[0]]):
            handle.write(csv_lines(columns, fields))
        rows += count
        progress(count)
    return rows


def _jsonl(batches, fields, handle, progress) -> int:
    rows = 0
    for columns in batches:
        lines = [
            dict(zip(fields, row, strict=True)) for row in zip(*(columns[f] for f in fields), strict=True)
        ]
        handle.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in lines))
        rows += len(lines)
        progress(len(lines))
    return rows


def _parquet(batches, fields, handle, progress) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([(f, _arrow_type(pa, f)) for f in fields])
    rows = 0
    with pq.ParquetWriter(handle, schema) as writer:
        for columns in batches:
            table = pa.table(
                [_arrow_array(columns[f], field.type) for f, field in zip(fields, schema, strict=True)],
                schema=schema,
            )
            writer.write_table(table)
            rows += table.num_rows
            progress(table.num_rows)
    return rows


def _arrow_array(values: list[Any], kind: Any) -> Any:
    """`values` as an Arrow array of `kind`; a string column takes any other value as its ``str()``
    (what the csv module writes)."""
    import pyarrow as pa

    try:
        return pa.array(values, kind)
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        if kind != pa.string():
            raise
        return pa.array([None if v is None or isinstance(v, str) else str(v) for v in values], kind)


def _csv_cells(name: str, values: list[Any]) -> Any:
    """One column's CSV cells as text, as `csv.writer` writes them (floats by `repr`, a cell with a
    comma, quote or newline quoted, its quotes doubled); None stays null (an empty cell)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if name in _FLOATS:
        return pa.array([None if v is None else repr(float(v)) for v in values], pa.string())
    if name in _INTS:
        return pa.array(values, pa.int64()).cast(pa.string())
    cells = _arrow_array(values, pa.string())
    text = cells.buffers()[2]
    text = b"" if text is None else text.to_pybytes()
    if b"," not in text and b'"' not in text and b"\n" not in text:
        return cells  # a quick look at the column's bytes: most columns need no quotes at all
    needs_quotes = pc.match_substring_regex(cells, '[,"\n]')
    quoted = pc.binary_join_element_wise('"', pc.replace_substring(cells, '"', '""'), '"', "")
    return pc.if_else(needs_quotes, quoted, cells)


def csv_lines(columns: Columns, fields: Sequence[str]) -> str:
    """One batch's rows as CSV lines, each ending in a newline: the text `csv.writer` writes, built
    column by column in Arrow rather than row by row."""
    import pyarrow as pa
    import pyarrow.compute as pc

    cells = [_csv_cells(f, columns[f]) for f in fields]
    lines = pc.binary_join_element_wise(*cells, ",", null_handling="replace", null_replacement="")
    one_list = pa.ListArray.from_arrays(pa.array([0, len(lines)], pa.int32()), lines)
    return pc.binary_join(one_list, "\n")[0].as_py() + "\n"


def _arrow_type(pa: Any, name: str) -> Any:
    if name in _INTS:
        return pa.int64()
    if name in _FLOATS:
        return pa.float64()
    return pa.string()
