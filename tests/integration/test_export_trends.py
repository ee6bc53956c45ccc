"""`topics export` (CSV, JSON Lines, Parquet; items and the topic table) and `topics trends`, with
curation applied, on a recluster of a synthetic corpus whose items look like a 4CAT export."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from evaluation import synthetic
from indexer.config import load_settings
from indexer.index import Index
from topics import catalog, curation
from topics.query.export import ITEM_FIELDS, export
from topics.query.trends import period_of, small_multiples_svg, trends
from topics.recluster import recluster
from topics.report import build_report

DAY0 = datetime(2024, 1, 1, 12, tzinfo=UTC)  # a Monday


@pytest.fixture
def index(tmp_path: Path) -> Index:
    """240 items in 4 topics; item i was created on day i % 21 (3 weeks), every 10th has no date."""
    settings = load_settings(store={"backend": "memory"}, data_dir=tmp_path / "data")
    index = Index(settings)
    corpus = synthetic.drift_scenario("steady", k=4, size=60, seed=3).runs[0]
    synthetic.store_corpus(index.items, corpus)
    payloads = {}
    for i, item_id in enumerate(corpus.ids):
        payload = {"source_id": f"{7300000000000000000 + i}", "caption": f"post {i}, «quoted»", "source": "m"}
        if i % 10:
            payload["created_at"] = (DAY0 + timedelta(days=i % 21)).isoformat()
        else:
            payload["ingested_at"] = (DAY0 + timedelta(days=30)).isoformat()
        payloads[item_id] = payload
    index.items.set_payloads(payloads)
    recluster(settings, index.backend)
    yield index
    index.close()


def _assignments(index: Index) -> dict[str, int]:
    run = catalog.current_run(index.backend)
    return {
        p.payload["source_id"]: catalog.read_assignment(p.payload, run).topic
        for batch in index.items.scroll()
        for p in batch
    }


def test_csv_has_one_row_per_item_with_the_source_id_as_given_and_its_topic(index: Index, tmp_path: Path):
    out = tmp_path / "out" / "items.csv"
    summary = export(index, out, fmt="csv")
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert summary.rows == len(rows) == 240 and tuple(rows[0]) == ITEM_FIELDS
    truth = _assignments(index)
    assert {r["source_id"]: int(r["topic"]) for r in rows} == truth  # 19-digit ids come back intact
    labels = {t.topic_id: t.label for t in catalog.list_topics(index.backend)}
    assert all(r["label"] == (labels.get(int(r["topic"])) or "") for r in rows)
    assert {r["assigned"] for r in rows} == {"recluster"} and all(0 < float(r["score"]) <= 1 for r in rows)
    assert rows[0]["caption"].startswith("post ") and "«quoted»" in rows[0]["caption"]
    assert not list(out.parent.glob(".*tmp"))  # written beside, then renamed


def test_jsonl_and_parquet_rows_agree_with_csv_and_follow_curation(index: Index, tmp_path: Path) -> None:
    topic_ids = sorted(t.topic_id for t in catalog.list_topics(index.backend))
    curation.merge(index.backend, [topic_ids[0], topic_ids[1]])
    curation.set_label(index.backend, topic_ids[0], "joined")
    export(index, tmp_path / "items.jsonl", fmt="jsonl")
    export(index, tmp_path / "items.parquet", fmt="parquet")
    lines = [json.loads(line) for line in (tmp_path / "items.jsonl").read_text(encoding="utf-8").splitlines()]
    table = pq.read_table(tmp_path / "items.parquet").to_pylist()
    assert lines == table and len(lines) == 240
    truth = _assignments(index)
    theme_of = {t.topic_id: t.theme_id for t in catalog.list_topics(index.backend)}
    for row in lines:
        expected = topic_ids[0] if truth[row["source_id"]] == topic_ids[1] else truth[row["source_id"]]
        assert row["topic"] == expected and row["theme"] == theme_of.get(expected)
        assert (row["label"] == "joined") == (expected == topic_ids[0])
    assert pq.read_schema(tmp_path / "items.parquet").field("topic").type == "int64"


def test_topic_and_since_filters_and_the_topic_table(index: Index, tmp_path: Path) -> None:
    topic_ids = sorted(t.topic_id for t in catalog.list_topics(index.backend))
    curation.merge(index.backend, [topic_ids[2], topic_ids[3]])
    buffer = io.StringIO()
    export(index, None, fmt="csv", topic=topic_ids[2], stdout=buffer)
    rows = list(csv.DictReader(io.StringIO(buffer.getvalue())))
    sizes = Counter(_assignments(index).values())
    assert len(rows) == sizes[topic_ids[2]] + sizes[topic_ids[3]]
    assert {int(r["topic"]) for r in rows} == {topic_ids[2]}
    since = (DAY0 + timedelta(days=14)).date().isoformat()
    buffer = io.StringIO()
    export(index, None, fmt="jsonl", since=since, stdout=buffer)
    dates = [json.loads(line)["created_at"] for line in buffer.getvalue().splitlines()]
    assert dates and all(d >= since for d in dates) and len(dates) < 240
    export(index, tmp_path / "topics.csv", topics_table=True)
    table = {int(r["topic"]): r for r in csv.DictReader((tmp_path / "topics.csv").open())}
    assert set(table) == set(topic_ids) and int(table[topic_ids[2]]["size"]) == len(rows)


def test_bad_export_requests_fail_with_one_clear_error(index: Index, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown format 'xlsx'"):
        export(index, tmp_path / "x.xlsx", fmt="xlsx")
    with pytest.raises(ValueError, match="give --out FILE"):
        export(index, None, fmt="parquet", stdout=io.StringIO())
    with pytest.raises(ValueError, match="is a folder"):
        export(index, tmp_path, fmt="csv")


def test_periods_by_day_week_and_month() -> None:
    assert period_of("2024-01-08T07:12:00+00:00", "day") == "2024-01-08"
    assert period_of("2024-01-08T23:30:00-02:00", "day") == "2024-01-09"  # counted in UTC
    assert period_of("2024-12-30", "week") == "2025-W01"  # ISO weeks
    assert period_of("2024-02-29T10:00:00Z", "month") == "2024-02"
    assert period_of("last tuesday", "day") is None


def test_trends_count_each_items_period_and_fill_gaps(index: Index) -> None:
    found = trends(index, every="week")
    assert found.periods == ("2024-W01", "2024-W02", "2024-W03", "2024-W04", "2024-W05")
    sizes = Counter(t for t in _assignments(index).values() if t >= 0)
    assert {t.topic_id: t.total for t in found.topics} == dict(sizes)
    assert all(sum(t.counts) == t.total for t in found.topics)
    assert sum(t.counts[3] for t in found.topics) == 0  # the empty week between is kept
    assert sum(t.counts[4] for t in found.topics) == 24  # the undated items count by ingest time
    days = trends(index, every="day")
    assert len(days.periods) == 31 and days.as_dict()["every"] == "day"


def test_trends_follow_curation_and_refuse_unknown_ids(index: Index) -> None:
    ids = sorted(t.topic_id for t in catalog.list_topics(index.backend))
    curation.hide(index.backend, ids[0])
    curation.merge(index.backend, [ids[1], ids[2]])
    shown = {t.topic_id: t.total for t in trends(index).topics}
    sizes = Counter(_assignments(index).values())
    assert shown == {ids[1]: sizes[ids[1]] + sizes[ids[2]], ids[3]: sizes[ids[3]]}
    assert [t.topic_id for t in trends(index, [ids[0]]).topics] == [ids[0]]  # named: shown even if hidden
    with pytest.raises(LookupError, match="no topic 99"):
        trends(index, [99])
    with pytest.raises(ValueError, match="day, week or month"):
        trends(index, every="year")


def test_report_has_an_items_over_time_chart_without_script(index: Index, tmp_path: Path) -> None:
    curation.set_label(index.backend, 0, "<b>tractors</b>")
    build_report(index, tmp_path / "report.html")
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "<h2>Over time</h2>" in page and 'aria-label="items per week' in page
    assert "<script" not in page.lower() and "<b>tractors" not in page and "&lt;b&gt;tractors" in page
    assert "No dated items" in small_multiples_svg(trends(index, [0]).__class__("week", (), (), 0))
