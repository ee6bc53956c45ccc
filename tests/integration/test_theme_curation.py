"""Curation of themes (label, hide, merge and their undo, ids `T3`): shown by every reader and carried
through reclusters along the themes' lineage, on the two-level world of test_themes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

import topics.query.search as search_module
from cli import render, served
from evaluation import synthetic as syn
from indexer.config import Settings, load_settings
from indexer.index import Index
from indexer.store import open_backend
from tests.integration.test_themes import BASE, World, _group_to_theme, _settings
from topics import catalog, curation, report
from topics.query import browse
from topics.query.search import SearchFilters, SearchResult, TopicHit, _by_theme, search
from topics.recluster import recluster


def _start(settings: Settings):
    world = World()
    backend = open_backend(settings)
    corpus = world.corpus(BASE)
    syn.store_corpus(backend.collection("items"), corpus)
    recluster(settings, backend)
    return world, backend, _group_to_theme(backend, corpus)


def _topics_of(backend, *theme_ids: int) -> list[int]:
    return sorted(t.topic_id for t in catalog.list_topics(backend) if t.theme_id in theme_ids)


def test_theme_label_hide_merge_show_in_every_reader_and_each_undo_restores(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    _world, backend, g = _start(settings)
    index = Index(settings, backend=backend)
    before = browse.list_tree(index, sort="id")
    sizes = {t["theme_id"]: t["size"] for t in before}
    curation.set_label(backend, g[0], " rural\n protests ", level="theme")
    curation.hide(backend, g[1], level="theme")
    curation.merge(backend, [g[0], g[2]], level="theme")
    assert curation.load(backend).is_empty()  # the topics' curation is untouched

    tree = browse.list_tree(index, sort="id")
    assert [t["theme_id"] for t in tree] == [g[0]]  # hidden g1 and merged-away g2 are left out
    assert tree[0]["label"] == "rural protests" and tree[0]["size"] == sizes[g[0]] + sizes[g[2]]
    assert tree[0]["curation"] == {"label": True, "hidden": False, "merged": [g[2]]}
    assert sorted(t["id"] for t in tree[0]["topics"]) == _topics_of(backend, g[0], g[2])
    every = {t["theme_id"]: t for t in browse.list_tree(index, include_hidden=True)}
    assert every[g[1]]["curation"]["hidden"] and every[g[2]]["curation"]["merged_into"] == g[0]
    assert sorted(t["id"] for t in every[g[2]]["topics"]) == _topics_of(backend, g[2])
    shown = browse.show(index, browse.Ref("theme", g[0]))
    assert shown["label"] == "rural protests" and len(shown["topics"]) == 6

    hits = [
        TopicHit(t, None, 1, 0.1, 0.5, theme_id=g[i]) for i in (1, 2, 0) for t in _topics_of(backend, g[i])
    ]
    grouped = _by_theme(SearchResult("q", hits, []), index, catalog.current_run(backend))
    assert [(h.theme_id, h.label, h.size) for h in grouped.themes] == [
        (g[0], "rural protests", tree[0]["size"])
    ]
    assert sorted(grouped.themes[0].topics) == sorted(t.topic_id for t in grouped.topics)
    assert sorted(grouped.themes[0].topics) == _topics_of(backend, g[0], g[2])  # g1's topics left out
    content = report.read_content(index)
    assert [(t.theme_id, t.label) for t in content.themes] == [(g[0], "rural protests")]
    assert {t.theme_id for t in content.topics} == {g[0]} and len(content.topics) == 6

    curation.unset_label(backend, g[0], level="theme")
    curation.unhide(backend, g[1], level="theme")
    curation.unmerge(backend, g[2], level="theme")
    after = browse.list_tree(index, sort="id")
    assert [{**t, "curation": None} for t in after] == [{**t, "curation": None} for t in before]
    assert all(t["curation"] == {"label": False, "hidden": False} for t in after)
    backend.close()


def test_a_hidden_theme_merged_into_a_shown_one_keeps_its_topics_out(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    _world, backend, g = _start(settings)
    index = Index(settings, backend=backend)
    curation.merge(backend, [g[0], g[2]], level="theme")
    curation.hide(backend, g[2], level="theme")
    tree = browse.list_tree(index)
    shown = {t["theme_id"]: sorted(x["id"] for x in t["topics"]) for t in tree}
    assert shown == {g[0]: _topics_of(backend, g[0]), g[1]: _topics_of(backend, g[1])}
    content = report.read_content(index)
    assert sorted(t.topic_id for t in content.topics) == _topics_of(backend, g[0], g[1])
    backend.close()


def test_search_within_a_theme_takes_the_themes_merged_into_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings(tmp_path)
    world, backend, g = _start(settings)
    index = Index(settings, backend=backend)
    query = syn.normalise(world.centres[2][0] + world.centres[2][1])  # group 2's topics
    monkeypatch.setattr(search_module, "_queries", lambda *a: {"image": query, "text": query})
    within = SearchFilters(theme=g[0])
    assert not set(_topics_of(backend, g[2])) & {
        t.topic_id for t in search(index, "q", filters=within).topics
    }
    curation.merge(backend, [g[0], g[2]], level="theme")
    found = search(index, "q", filters=within)
    assert [th.theme_id for th in found.themes] == [g[0]]
    hit_topics = {t.topic_id for t in found.topics} | {i.topic for t in found.topics for i in t.items}
    assert set(_topics_of(backend, g[2])) & hit_topics  # topic and item hits of the merged theme
    assert hit_topics <= set(_topics_of(backend, g[0], g[2]))
    backend.close()


def test_theme_verbs_refuse_unknown_themes_and_missing_undo(tmp_path: Path) -> None:
    _world, backend, g = _start(_settings(tmp_path))
    with pytest.raises(LookupError, match="no theme T99"):
        curation.set_label(backend, 99, "x", level="theme")
    with pytest.raises(LookupError, match="no theme T99"):
        curation.merge(backend, [g[0], 99], level="theme")
    with pytest.raises(LookupError, match=f"theme T{g[0]} has no pinned label"):
        curation.unset_label(backend, g[0], level="theme")
    with pytest.raises(LookupError, match=f"theme T{g[1]} is not hidden"):
        curation.unhide(backend, g[1], level="theme")
    assert curation.load(backend, level="theme").is_empty()  # nothing was written
    backend.close()


def test_theme_curation_follows_the_themes_lineage_through_reclusters_with_drift(tmp_path: Path) -> None:
    """Label every theme, hide one, merge two; a sibling joins, then group 2 goes and group 3 comes."""
    settings = _settings(tmp_path)
    world, backend, g = _start(settings)
    items = backend.collection("items")
    pinned = {g[i]: f"story {i}" for i in range(3)}
    for theme_id, text in pinned.items():
        curation.set_label(backend, theme_id, text, level="theme")
    curation.hide(backend, g[1], level="theme")
    curation.merge(backend, [g[0], g[2]], level="theme")
    syn.store_corpus(items, world.corpus([*BASE, (1, 3)]))
    first = recluster(settings, backend)
    assert {e.kind for e in first.theme_events} == {"survived"}
    cur = curation.load(backend, level="theme")
    assert dict(cur.labels) == pinned and cur.hidden == {g[1]} and dict(cur.merges) == {g[0]: (g[2],)}

    drifted = world.corpus([(gr, s) for gr, s in BASE if gr != 2] + [(1, 3)] + [(3, s) for s in range(3)])
    syn.store_corpus(items, drifted, prune=True)
    second = recluster(settings, backend)
    assert ("vanished", (g[2],), ()) in {(e.kind, e.before, e.after) for e in second.theme_events}
    cur = curation.load(backend, level="theme")
    assert dict(cur.labels) == pinned  # the vanished theme's label stays on its record
    assert cur.hidden == {g[1]} and cur.target(g[2]) == g[2]  # the merge lost its vanished member
    themes = {t.theme_id: t for t in curation.curate(catalog.list_themes(backend), cur)}
    assert themes[g[0]].label == "story 0" and not curation.shown(themes[g[1]])
    notes = curation.notes(backend, g[2], level="theme")
    assert {(n["level"], n["event"], n["run_id"]) for n in notes} == {("theme", "vanished", 3)}
    assert f"label 'story 2' stays on T{g[2]}" in [n["text"] for n in notes]
    assert all(n["level"] == "topic" for n in curation.notes(backend, level="topic"))
    history = browse.history(Index(settings, backend=backend), browse.Ref("theme", g[2]))
    assert history["curation"] == notes
    out = io.StringIO()
    with render.captured(out, io.StringIO(), width=200, color=False):
        render.history(history)
    assert f"run 3: curated theme T{g[2]} vanished: label 'story 2' stays on T{g[2]}" in out.getvalue()
    backend.close()


def test_follow_moves_theme_curation_through_split_and_merge() -> None:
    at = np.datetime64("2026-01-01").astype(object)

    def theme(tid: int, size: int) -> catalog.Theme:
        return catalog.Theme(tid, size, "active", 2, at, at)  # type: ignore[arg-type]

    events = [
        catalog.LineageEvent(2, "split", (1,), (5, 6), at, level="theme"),
        catalog.LineageEvent(2, "merged", (2, 3), (2,), at, level="theme"),
    ]
    before = curation.Curation(labels={1: "one", 3: "three"}, hidden=frozenset({1}), merges={7: (3,)})
    records = [theme(2, 50), theme(5, 10), theme(6, 30), theme(7, 9)]
    after = curation.follow(before, events, records, 2, level="theme")
    assert dict(after.labels) == {6: "one", 2: "three"} and after.hidden == {5, 6}
    assert dict(after.merges) == {7: (2,)}
    texts = {(n["topic_id"], n["text"]) for n in after.notes}
    assert {(1, "label 'one' moved to T6"), (1, "hidden: T5, T6"), (3, "merge group now T7 + [T2]")} <= texts


def _cli(*argv: str) -> dict:
    """Run `topics ARGV` in this process, as a user would (settings from the environment)."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with render.captured(stdout, stderr, width=200, color=False):
        code = served._invoke(list(argv), stderr)
    return {"stdout": stdout.getvalue(), "stderr": stderr.getvalue(), "code": code}


def test_theme_verbs_through_the_cli_while_serve_owns_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from indexer.store.shared import StoreServer

    monkeypatch.setenv("TOPICS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TOPICS_STORE__BACKEND", "edge")
    settings = load_settings()
    settings.data_dir.mkdir(parents=True)
    world, owner, g = _start(settings)
    server = StoreServer(owner, settings.data_dir)  # the commands below reach the store through it
    try:
        t0, t1, t2 = (f"T{g[i]}" for i in range(3))
        assert _cli("label", t0, "Farm protests")["stdout"] == f"theme {t0}: label pinned\n"
        assert _cli("hide", t1)["code"] == 0
        merged = _cli("merge", t0, t2, "--json")
        assert json.loads(merged["stdout"])["merges"] == {str(g[0]): [g[2]]}
        syn.store_corpus(owner.collection("items"), world.corpus([*BASE, (1, 3)]))
        recluster(settings, owner)  # the service's next run carries what the commands pinned
        listed = json.loads(_cli("list", "--json")["stdout"])
        assert [(t["theme_id"], t["label"]) for t in listed] == [(g[0], "Farm protests")]
        shown = _cli("show", t0)["stdout"]
        assert f"theme {t0}: Farm protests" in shown and f"merged with {t2}" in shown
        mixed = _cli("merge", t0, "3")
        assert mixed["code"] == 2 and "not both" in mixed["stderr"]
        missing = _cli("unhide", t0)
        assert (missing["code"], missing["stderr"]) == (1, f"error: theme {t0} is not hidden\n")
        for argv in (("unmerge", t0), ("unhide", t1), ("unlabel", t0)):
            assert _cli(*argv)["code"] == 0, argv
        listed = json.loads(_cli("list", "--json")["stdout"])
        assert len(listed) == 3 and not any(t["curation"]["label"] for t in listed)
    finally:
        server.close()
        owner.close()
