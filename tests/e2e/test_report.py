"""`topics report`: the page built from a real store (tiny CLIP ingest + recluster), opened in headless
Chromium: every topic, its tile and its map circle are there, and markup in captions, labels, words and
the title stays text (no script runs)."""

from __future__ import annotations

import os
import random
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from indexer.config import load_settings
from indexer.index import Index
from indexer.ingest import ingest_paths
from tests.helpers import tiny_edge_settings
from tests.web_corpus import GROUPS, MARKUP, PWNED, draw_shade
from topics import catalog
from topics.report import (
    CSP,
    MAP_H,
    MAP_W,
    PLACEHOLDER,
    MapLabel,
    ReportContent,
    ReportError,
    ReportSummary,
    build_report,
    label_box,
    map_svg,
    place_labels,
    project_2d,
    render_page,
    theme_colours,
    tile_data_uri,
)
from topics.service.jobs import rebuild_topics

PAYLOADS = MARKUP  # the report loads nothing from outside by construction: no beacon needed here
PER_GROUP = 16  # the clusterer drops communities under about ten items as no tighter than chance
LATE = 2  # items ingested after the run, before the hostile report
PLAIN_TITLE = "farm watch"
HOSTILE_TITLE = "</title><script>document.title='pwned'</script>"


@dataclass(frozen=True)
class ReportStore:
    plain: Path  # report of the store as the job left it (captions carry markup)
    hostile: Path  # after labels, words and keywords were rewritten to carry markup too
    summary: ReportSummary
    topics: tuple[catalog.Topic, ...]  # as in the plain report
    hostile_topics: tuple[catalog.Topic, ...]
    data_dir: Path


def _picture(path: Path, colour: tuple[int, int, int], seed: int) -> random.Random:
    """A shade of `colour` with a white patch; returns the generator for the caption's choices."""
    rng = random.Random(seed)
    draw_shade(path, colour, rng)
    return rng


def _corpus(folder: Path) -> None:
    """Three colour families of pictures; every caption has a topic's words and a markup payload."""
    for g, (colour, words) in enumerate(GROUPS):
        for i in range(PER_GROUP):
            rng = _picture(folder / f"g{g}_{i}.jpg", colour, seed=g * 100 + i)
            terms = words.split()
            rng.shuffle(terms)
            caption = f"{' '.join(terms[:4])} photo {i} {PAYLOADS[(g + i) % len(PAYLOADS)]}"
            (folder / f"g{g}_{i}.txt").write_text(caption, encoding="utf-8")


def _settings(data_dir: Path):
    return tiny_edge_settings(data_dir)


def _poison(index: Index) -> None:
    """Rewrite each topic's label, words and keywords with markup, as a hostile labeller would."""
    rewritten = []
    for n, topic in enumerate(catalog.list_topics(index.backend)):
        payload = PAYLOADS[n % len(PAYLOADS)]
        rep = dict(topic.extra.get("representation") or {})
        rep["words"] = [[payload, 0.9], *rep.get("words", [])]
        rep["keywords"] = [[PAYLOADS[-1], 0.5], *rep.get("keywords", [])]
        extra = {**topic.extra, "representation": rep}
        rewritten.append(replace(topic, label=f"{payload} label {topic.topic_id}", extra=extra))
    index.topics.upsert([catalog.topic_point(t) for t in rewritten])
    index.topics.flush()


@pytest.fixture(scope="module")
def report_store(tmp_path_factory: pytest.TempPathFactory) -> ReportStore:
    """One real store for the module: ingest with a tiny CLIP, recluster with representations."""
    import torch

    root = tmp_path_factory.mktemp("report")
    with pytest.MonkeyPatch.context() as env:
        for name in [n for n in os.environ if n.startswith("TOPICS_")]:
            env.delenv(name)
        env.setenv("TOPICS_CONFIG", str(root / "none.toml"))
        env.setenv("HF_HUB_OFFLINE", "1")
        torch.manual_seed(0)  # the tiny CLIP's random weights: the same store every run
        _corpus(root / "in")
        with Index(_settings(root / "data")) as index:
            assert ingest_paths(index, [root / "in"]).as_dict()["failed"] == 0
            rebuild_topics(index)
            topics = tuple(catalog.list_topics(index.backend))
            assert len(topics) >= 2, "the corpus should make several topics"
            summary = build_report(index, root / "out" / "plain.html", title=PLAIN_TITLE)
            _poison(index)
            for i in range(LATE):  # arrive after the run: stored, not yet in a topic
                _picture(root / "in" / f"late{i}.jpg", (250, 250, 250), seed=900 + i)
            assert ingest_paths(index, [root / "in"]).as_dict()["ingested"] == LATE
            hostile_topics = tuple(catalog.list_topics(index.backend))
            build_report(index, root / "out" / "hostile.html", title=HOSTILE_TITLE)
    return ReportStore(
        root / "out" / "plain.html",
        root / "out" / "hostile.html",
        summary,
        topics,
        hostile_topics,
        root / "data",
    )


class Dom(HTMLParser):
    """Elements (tag, attributes) in order, all text, and the document's own <title>."""

    def __init__(self, markup: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.texts: list[str] = []
        self.title: str | None = None
        self._in_title = False
        self.feed(markup)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))
        self._in_title = tag == "title" and self.title is None
        if self._in_title:
            self.title = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False

    def handle_data(self, data: str) -> None:
        self.texts.append(data)
        if self._in_title:
            self.title = (self.title or "") + data

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.texts).split())

    def tags(self, name: str) -> list[dict[str, str | None]]:
        return [attrs for tag, attrs in self.elements if tag == name]


def _row(dom: str, topic_id: int) -> Dom:
    found = re.search(rf'<tr id="topic-{topic_id}"[^>]*>(.*?)</tr>', dom, re.S)
    assert found, f"no table row for topic {topic_id}"
    return Dom(found.group(1))


def _facts(dom: str) -> dict[str, str]:
    """The header's name/value pairs."""
    return dict(re.findall(r"<dt>([^<]*)</dt><dd>([^<]*)</dd>", dom))


def _squash(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.slow
def test_chromium_shows_every_topic_with_its_tile_words_and_map_circle(
    report_store: ReportStore, dump_dom, tmp_path: Path
) -> None:
    dom = dump_dom(report_store.plain, screenshot=tmp_path / "report.png")
    page = Dom(dom)
    assert page.title == f"{PLAIN_TITLE} report"
    assert (tmp_path / "report.png").stat().st_size > 10_000
    for topic in report_store.topics:
        row = _row(dom, topic.topic_id)
        assert _squash(topic.label) in row.text and str(topic.size) in row.text
        assert all(w in row.text for w in topic.words[:3])
        images = row.tags("img")
        assert len(images) == 1 and images[0]["src"].startswith("data:image/jpeg;base64,")
    circles = [attrs["data-topic"] for attrs in page.tags("circle")]
    assert sorted(circles) == sorted(str(t.topic_id) for t in report_store.topics)
    assert len(page.tags("svg")) == 2  # the map and the items-over-time chart
    n = len(GROUPS) * PER_GROUP
    assert _facts(dom) | {"items in run": str(n)} == _facts(dom)
    assert (_facts(dom)["items stored now"], _facts(dom)["awaiting a topic"]) == (str(n), "0")
    assert "Lineage of run 1" in page.text and f"{len(report_store.topics)} emerged" in page.text


@pytest.mark.slow
def test_summary_counts_what_was_written(report_store: ReportStore) -> None:
    summary = report_store.summary
    assert summary.path == report_store.plain
    assert summary.bytes == report_store.plain.stat().st_size
    assert (summary.n_topics, summary.n_items) == (len(report_store.topics), len(GROUPS) * PER_GROUP)
    assert summary.as_dict()["topics"] == summary.n_topics


@pytest.mark.slow
def test_page_is_self_contained_and_has_no_script(report_store: ReportStore) -> None:
    for path in (report_store.plain, report_store.hostile):
        markup = path.read_text(encoding="utf-8")
        page = Dom(markup)
        policy = [a["content"] for a in page.tags("meta") if a.get("http-equiv") == "Content-Security-Policy"]
        assert policy == [CSP]
        assert not page.tags("script") and not page.tags("link") and not page.tags("iframe")
        for _, attrs in page.elements:
            assert not [name for name in attrs if name.startswith("on")]
            for name in ("src", "href"):
                value = attrs.get(name)
                assert value is None or value.startswith(("data:image/", "#")), value
        assert "url(" not in "".join(page.texts)  # no CSS fetch either
        assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:|//|file:)""", markup, re.I)


@pytest.mark.slow
def test_markup_in_captions_labels_words_and_title_stays_text(report_store: ReportStore, dump_dom) -> None:
    dom = dump_dom(report_store.hostile)
    page = Dom(dom)
    assert page.title == f"{HOSTILE_TITLE} report"  # no script set it to 'pwned'
    assert page.title != PWNED
    assert not page.tags("script") and not page.tags("iframe") and not page.tags("style")[1:]
    assert all(attrs["src"].startswith("data:image/") for attrs in page.tags("img"))
    assert len(page.tags("img")) == len(report_store.hostile_topics) + int(_facts(dom)["themes"])
    assert len(page.tags("svg")) == 2 and not page.tags("b")  # map, over-time chart
    assert not [name for _, attrs in page.elements for name in attrs if name.startswith("on")]
    for topic in report_store.hostile_topics:
        row = _row(dom, topic.topic_id)
        assert _squash(topic.label) in row.text  # shown as the text it is
    facts = _facts(dom)
    n = len(GROUPS) * PER_GROUP
    assert (facts["items in run"], facts["items stored now"], facts["awaiting a topic"]) == (
        str(n),
        str(n + LATE),
        str(LATE),
    )
    shown = page.text
    assert sum(_squash(p) in shown for p in PAYLOADS) >= 3  # captions, words, keywords: as text


@pytest.mark.slow
def test_escaping_alone_keeps_markup_inert_without_the_policy(
    report_store: ReportStore, dump_dom, tmp_path: Path
) -> None:
    """The CSP is a second wall: with it removed, escaping must still stop every payload."""
    markup = report_store.hostile.read_text(encoding="utf-8")
    meta = f'<meta http-equiv="Content-Security-Policy" content="{CSP.replace(chr(39), "&#x27;")}">'
    assert meta in markup
    bare = tmp_path / "no-policy.html"
    bare.write_text(markup.replace(meta, ""), encoding="utf-8")
    page = Dom(dump_dom(bare))
    assert page.title == f"{HOSTILE_TITLE} report"
    assert not page.tags("script") and not page.tags("iframe")


@pytest.mark.slow
def test_the_chromium_check_does_see_a_script_that_runs(dump_dom, tmp_path: Path) -> None:
    """Control: the same harness on an unescaped page reports the injected handler's effect."""
    page = tmp_path / "unsafe.html"
    page.write_text(f"<!DOCTYPE html><title>safe</title><p>{PAYLOADS[1]}</p>", encoding="utf-8")
    assert Dom(dump_dom(page)).title == PWNED


def test_no_run_yet_is_a_clear_error(tmp_path: Path) -> None:
    error = r"no topics yet: run `topics recluster` first"
    with Index(load_settings(data_dir=tmp_path / "empty")) as index, pytest.raises(ReportError, match=error):
        build_report(index, tmp_path / "report.html")
    assert not (tmp_path / "report.html").exists()


def test_a_folder_as_output_is_refused(tmp_path: Path) -> None:
    with (
        Index(load_settings(data_dir=tmp_path / "empty")) as index,
        pytest.raises(ReportError, match="folder"),
    ):
        build_report(index, tmp_path)


@pytest.mark.slow
def test_tiles_outside_the_data_dir_or_unreadable_become_the_placeholder(
    report_store: ReportStore, tmp_path: Path
) -> None:
    tile = next(t.tile for t in report_store.topics if t.tile)
    assert tile_data_uri(tile, report_store.data_dir).startswith("data:image/jpeg;base64,")
    outside = report_store.data_dir.parent / "outside.jpg"
    Image.new("RGB", (20, 20)).save(outside)
    broken = report_store.data_dir / "tiles" / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    escape = str(report_store.data_dir / "tiles" / ".." / ".." / outside.name)
    for path in (None, "", str(outside), str(broken), escape, str(report_store.data_dir / "nope.jpg")):
        assert tile_data_uri(path, report_store.data_dir) == PLACEHOLDER


def test_pca_map_is_deterministic_and_keeps_far_topics_apart() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 16)) * 5
    vectors = np.concatenate([centres, centres + rng.normal(scale=0.01, size=centres.shape)])
    coords = project_2d(vectors)
    assert coords.shape == (6, 2)
    assert np.allclose(coords, project_2d(vectors.copy()))
    near = np.linalg.norm(coords[:3] - coords[3:], axis=1)
    far = np.linalg.norm(coords[0] - coords[1])
    assert near.max() < far / 10
    assert project_2d(vectors[:1]).tolist() == [[0.0, 0.0]]
    assert project_2d(np.zeros((0, 16))).shape == (0, 2)


def _run(n_topics: int) -> catalog.Run:
    at = datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
    return catalog.Run(1, at, at, n_items=5, n_topics=n_topics, slot=0, next_topic_id=n_topics, view="fused")


def test_a_run_of_only_outliers_still_renders_a_clear_page() -> None:
    run = _run(0)
    content = ReportContent(run, (), (), (), (run,), items_now=5, pending=0, generated=run.finished)
    page = Dom(render_page(content, title="t", tile_of=lambda t: PLACEHOLDER))
    assert "every item is an outlier" in page.text and "no events" in page.text
    assert not page.tags("svg") and not page.tags("img")


def test_a_malformed_representation_falls_back_to_the_topic_fields() -> None:
    run = _run(1)
    topic = catalog.Topic(
        topic_id=7,
        size=3,
        status="active",
        run_id=1,
        first_seen=run.started,
        last_seen=run.started,
        change=-2,
        words=("<b>bold</b>", "plain"),
        extra={"representation": {"words": "not pairs"}},
    )
    content = ReportContent(run, (topic,), (), (), (run,), items_now=5, pending=0, generated=run.finished)
    markup = render_page(content, title="t", tile_of=lambda t: PLACEHOLDER)
    page = Dom(markup)
    assert "<b>bold</b>, plain" in page.text and "-2" in page.text
    assert not page.tags("b") and "fused view to draw" in page.text
    assert [a["src"] for a in page.tags("img")] == [PLACEHOLDER]


def _tree(n_themes: int, per_theme: int, spread: float, seed: int = 0):
    """Topics around a few theme centres (close together when `spread` is small) and their themes."""
    run, rng = _run(n_themes * per_theme), np.random.default_rng(seed)
    centres = rng.normal(size=(n_themes, 32))
    topics, themes = [], []
    for th in range(n_themes):
        themes.append(
            catalog.Theme(th, per_theme * 10, "active", 1, run.started, run.started, label=f"theme{th}")
        )
        for k in range(per_theme):
            topic_id = th * per_theme + k
            vector = centres[th] + rng.normal(scale=spread, size=32)
            topics.append(
                catalog.Topic(
                    topic_id,
                    10 + k,
                    "active",
                    1,
                    run.started,
                    run.started,
                    label=f"a rather long label of topic {topic_id}",
                    centroids={"fused": vector},
                    theme_id=th,
                )
            )
    return run, topics, themes


class Svg(HTMLParser):
    """The map's texts (attributes and content) and circles."""

    def __init__(self, markup: str) -> None:
        super().__init__(convert_charrefs=True)
        self.texts: list[tuple[dict[str, str | None], str]] = []
        self.circles: list[dict[str, str | None]] = []
        self._open: dict[str, str | None] | None = None
        self.feed(markup)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "text":
            self._open = dict(attrs)
        elif tag == "circle":
            self.circles.append(dict(attrs))

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self.texts.append((self._open, data))
            self._open = None


@pytest.mark.parametrize("spread", [0.05, 0.6])
def test_map_labels_never_overlap_and_crowded_ones_are_hidden(spread: float) -> None:
    _, topics, themes = _tree(5, 12, spread)
    svg = Svg(map_svg(topics, "fused", themes))
    boxes = []
    for attrs, text in svg.texts:
        box = label_box(
            text, float(attrs["x"]), float(attrs["y"]), attrs["text-anchor"], float(attrs["font-size"])
        )
        assert box[0] >= 0 and box[1] >= 0 and box[2] <= MAP_W and box[3] <= MAP_H, text
        boxes.append((box, text))
    for i, (a, text_a) in enumerate(boxes):
        for b, text_b in boxes[i + 1 :]:
            apart = a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]
            assert apart, f"{text_a!r} overlaps {text_b!r}"
    shown = [text for _, text in svg.texts]
    assert len(shown) < 5 + 30  # 5 theme labels and the 30 largest topics' wanted: not all fit
    assert any(attrs["class"] == "theme" for attrs, _ in svg.texts)  # themes are placed first
    assert len(svg.circles) == 60  # every topic keeps its circle


def test_map_circles_are_coloured_by_theme() -> None:
    _, topics, themes = _tree(3, 4, 0.6)
    colours = theme_colours(themes)
    assert len(set(colours.values())) == 3
    svg = Svg(map_svg(topics, "fused", themes))
    theme_of = {t.topic_id: t.theme_id for t in topics}
    for circle in svg.circles:
        assert f"fill:{colours[theme_of[int(circle['data-topic'])]]}" in circle["style"]


def test_place_labels_moves_a_colliding_label_and_hides_what_fits_nowhere() -> None:
    same = [MapLabel(f"label {i}", 300.0, 200.0, 10.0, 11, "topic") for i in range(6)]
    placed = place_labels(same)
    assert [label.text for label, *_ in placed] == [f"label {i}" for i in range(4)]  # 4 spots around a point
    assert len({(x, y) for _, x, y, _ in placed}) == 4
    edge = place_labels([MapLabel("x" * 40, 2.0, 100.0, 1.0, 11, "topic")])
    assert [anchor for *_, anchor in edge] == ["start"]  # the only spot inside the drawing


def test_the_page_leads_with_themes_and_groups_topics_by_theme() -> None:
    run, topics, themes = _tree(2, 3, 0.6)
    content = ReportContent(
        run,
        tuple(topics),
        (),
        (),
        (run,),
        items_now=5,
        pending=0,
        generated=run.finished,
        themes=tuple(themes),
    )
    markup = render_page(content, title="t", tile_of=lambda t: PLACEHOLDER)
    headings = re.findall(r"<h2>([^<]*)</h2>", markup)
    assert headings[:3] == ["Themes", "Map", "Topics"]
    rows = re.findall(r'<tr id="(t\w+)-(\d+)"', markup)
    assert rows[:2] == [("theme", "0"), ("theme", "1")]
    topic_rows = [int(i) for kind, i in rows if kind == "topic"]
    assert [t // 3 for t in topic_rows] == [0, 0, 0, 1, 1, 1]  # grouped under their themes
    theme_row = re.search(r'<tr id="theme-1".*?</tr>', markup, re.S).group(0)
    assert re.findall(r'href="#topic-(\d+)"', theme_row) == ["5", "4", "3"]  # its topics, largest first
    assert "themes" in _facts(markup)
