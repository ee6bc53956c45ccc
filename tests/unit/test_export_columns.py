"""`topics export` builds each batch as columns: its CSV text is byte for byte what `csv.writer` writes
row by row, and the batch form of `read_assignment` agrees with it item by item."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from topics import catalog
from topics.query.export import ITEM_FIELDS, csv_lines

TRICKY_TEXT = ["plain", "a,b", 'say "hi"', "two\nlines", "cr\rhere", " spaced ", "", None, "🚜 «q»", "tab\t"]


def _rows_by_csv_module(rows: list[tuple]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


def test_csv_lines_are_what_the_csv_module_writes() -> None:
    n = len(TRICKY_TEXT)
    columns = {f: list(TRICKY_TEXT) for f in ITEM_FIELDS}
    columns["source_id"] = [
        7_300_000_000_000_000_000 + i for i in range(n)
    ]  # not a string: str() as csv does
    columns["path"] = [None] * n  # no bytes at all
    columns["url"] = ["https://x.org/?a=1&b=2"] * n  # nothing to quote
    columns["topic"] = [3, -1, None, 0, 12, 3, 3, None, 7, 2]
    columns["theme"] = [None, 1, None, 0, 2, 1, 1, None, 0, 5]
    columns["score"] = [1.0, 1e-07, None, 0.30000000000000004, 0.0, 0.5, 1e16, None, 0.3515, 1]
    rows = list(zip(*(columns[f] for f in ITEM_FIELDS), strict=True))
    rows = [
        tuple(float(v) if f == "score" and v is not None else v for f, v in zip(ITEM_FIELDS, r, strict=True))
        for r in rows
    ]
    assert csv_lines(columns, ITEM_FIELDS) == _rows_by_csv_module(rows)


def test_read_assignments_agrees_with_read_assignment_item_by_item() -> None:
    day = datetime(2024, 1, 1, tzinfo=UTC)
    run = catalog.Run(2, day, day, n_items=7, n_topics=5, slot=1, next_topic_id=5, view="fused")
    names = catalog.slot_fields(run.slot)
    payloads = [
        catalog.assignment_payload(1, catalog.ItemAssignment(4, 0.25, 2, "online")),
        catalog.assignment_payload(1, catalog.ItemAssignment(-1, 0.0, 2, "recluster")),
        catalog.assignment_payload(1, catalog.ItemAssignment(4, 0.9, 1, "recluster")),  # an older run
        catalog.assignment_payload(0, catalog.ItemAssignment(4, 0.9, 2, "recluster")),  # the other slot
        {names["topic"]: 3.0, names["run"]: 2},  # no score, no `assigned`
        {names["run"]: 2},  # no topic
        {},
    ]
    assert catalog.read_assignments(payloads, run)["topic"] == [4, -1, None, None, 3, None, None]
    every_current = [
        payloads[0],
        payloads[1],
        payloads[4] | {names["score"]: 0},
        payloads[0] | {names["assigned"]: ""},
    ]
    for batch in (payloads, every_current, []):
        found = [catalog.read_assignment(p, run) for p in batch]
        assert catalog.read_assignments(batch, run) == {
            "topic": [None if a is None else a.topic for a in found],
            "score": [None if a is None else a.score for a in found],
            "assigned": [None if a is None else a.assigned for a in found],
        }
