"""Themes, the coarse level of the topic tree, through reclusters and online assignment.

The fixture is a small two-level world: groups of sibling topics (siblings at cosine 0.7, groups
near-orthogonal), so themes should be the groups and topics the siblings. Each group has a spare
sibling that a scenario can add later.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import adjusted_rand_score

import topics.query.search as search_module
from cli import served
from evaluation import synthetic as syn
from indexer.config import Settings, load_settings
from indexer.index import Index
from indexer.store import open_backend
from indexer.store.base import Backend
from topics import catalog
from topics.online.pending import assign_pending
from topics.recluster import recluster
from topics.service.jobs import rebuild_topics

GROUPS, SIBLINGS, SIZE = 4, 4, 60  # the worlds use 3 groups of 3 siblings; the rest are spares


class World:
    """Every cluster of the two-level world; `corpus` draws any subset with stable item ids."""

    def __init__(self, seed: int = 5) -> None:
        self.rng = np.random.default_rng(seed)
        parents = syn.random_centres(GROUPS, syn.DIM, self.rng)
        self.centres = [syn.sibling_centres(p, SIBLINGS, 0.7, self.rng) for p in parents]
        self.drawn: dict[tuple[int, int], np.ndarray] = {}

    def members(self, group: int, sibling: int, n: int = SIZE) -> np.ndarray:
        key = (group, sibling)
        if key not in self.drawn:
            self.drawn[key] = syn.sample_cluster(syn.Cluster(self.centres[group][sibling], n, 0.3), self.rng)
        return self.drawn[key]

    def corpus(self, clusters: list[tuple[int, int]]) -> syn.Corpus:
        """Items of these (group, sibling) clusters; labels are group * SIBLINGS + sibling."""
        ids, vectors, labels = [], [], []
        for group, sibling in clusters:
            label = group * SIBLINGS + sibling
            rows = self.members(group, sibling)
            ids += [syn.item_id(label * 1000 + i, "two-level") for i in range(len(rows))]
            vectors.append(rows)
            labels += [label] * len(rows)
        return syn.Corpus(ids, np.concatenate(vectors), np.asarray(labels, np.int64))


BASE = [(g, s) for g in range(3) for s in range(3)]


def _settings(tmp_path: Path) -> Settings:
    return load_settings(data_dir=tmp_path / "data", store={"backend": "memory"})


def _item_themes(backend: Backend) -> dict[str, int | None]:
    """Each item's theme as a reader derives it: its topic's theme under the current run."""
    run = catalog.current_run(backend)
    themes = catalog.topic_themes(backend, run)
    out = {}
    for points in backend.collection("items").scroll():
        for p in points:
            found = catalog.read_assignment(p.payload, run)
            out[p.id] = None if found is None or found.topic < 0 else themes[found.topic]
    return out


def _group_to_theme(backend: Backend, corpus: syn.Corpus) -> dict[int, int]:
    """Each group's majority theme id."""
    themes = _item_themes(backend)
    votes: dict[int, Counter] = {}
    for item_id, label in zip(corpus.ids, corpus.labels, strict=True):
        votes.setdefault(int(label) // SIBLINGS, Counter())[themes[item_id]] += 1
    return {group: c.most_common(1)[0][0] for group, c in votes.items()}


def _start(tmp_path: Path, clusters: list[tuple[int, int]] = BASE):
    world = World()
    settings = _settings(tmp_path)
    backend = open_backend(settings)
    corpus = world.corpus(clusters)
    syn.store_corpus(backend.collection("items"), corpus)
    report = recluster(settings, backend)
    return world, settings, backend, corpus, report


def test_themes_are_the_groups_and_their_ids_hold_over_unchanged_runs(tmp_path: Path) -> None:
    _world, settings, backend, corpus, first = _start(tmp_path)
    assert first.n_topics == 9 and first.n_themes == 3
    assert sorted((e.kind, e.after) for e in first.theme_events) == [("emerged", (i,)) for i in range(3)]
    groups = _group_to_theme(backend, corpus)
    assert sorted(groups.values()) == [0, 1, 2]
    themes = _item_themes(backend)
    placed = [i for i in corpus.ids if themes[i] is not None]  # outliers have no theme
    truth = dict(zip(corpus.ids, corpus.labels // SIBLINGS, strict=True))
    assert adjusted_rand_score([truth[i] for i in placed], [themes[i] for i in placed]) == 1.0
    records = catalog.list_themes(backend)
    topics = catalog.list_topics(backend)
    assert [t.theme_id for t in records] == [0, 1, 2]
    assert sum(t.size for t in records) == sum(t.size for t in topics) == len(placed) >= 0.95 * 540
    for theme in records:  # a theme's size and members are its topics'
        assert theme.size == sum(t.size for t in topics if t.theme_id == theme.theme_id)
        assert {"image", "text", "fused"} <= set(theme.centroids) and theme.status == "emerging"
    for _ in range(2):
        report = recluster(settings, backend)
        assert {(e.kind, e.before == e.after) for e in report.theme_events} == {("survived", True)}
        assert _group_to_theme(backend, corpus) == groups
    assert [t.status for t in catalog.list_themes(backend)] == ["active"] * 3
    run = catalog.current_run(backend)
    assert (run.n_themes, run.next_theme_id) == (3, 3)
    assert [e.kind for e in catalog.lineage(backend, 1, level="theme")] == ["emerged", "survived", "survived"]
    assert all(e.level == "topic" for e in catalog.lineage(backend))  # topic history is unchanged
    backend.close()


def test_a_new_sibling_topic_joins_its_groups_theme(tmp_path: Path) -> None:
    world, settings, backend, corpus, _ = _start(tmp_path)
    groups = _group_to_theme(backend, corpus)
    grown = world.corpus([*BASE, (1, 3)])
    syn.store_corpus(backend.collection("items"), grown)
    report = recluster(settings, backend)
    assert {e.kind for e in report.theme_events} == {"survived"}
    assert _group_to_theme(backend, grown) == groups
    born = [e.after[0] for e in report.events if e.kind == "emerged"]
    assert len(born) == 1 and catalog.get_topic(backend, born[0]).theme_id == groups[1]
    backend.close()


def test_a_new_group_is_a_new_theme_and_a_gone_group_vanishes(tmp_path: Path) -> None:
    world, settings, backend, corpus, _ = _start(tmp_path)
    groups = _group_to_theme(backend, corpus)
    size = catalog.get_theme(backend, groups[2]).size
    moved = world.corpus([(g, s) for g, s in BASE if g != 2] + [(3, s) for s in range(3)])
    syn.store_corpus(backend.collection("items"), moved, prune=True)
    report = recluster(settings, backend)
    after = _group_to_theme(backend, moved)
    assert after[0] == groups[0] and after[1] == groups[1] and after[3] == 3  # a fresh id, never reused
    events = {(e.kind, e.before, e.after) for e in report.theme_events}
    assert ("emerged", (), (3,)) in events and ("vanished", (groups[2],), ()) in events
    gone = catalog.get_theme(backend, groups[2])
    assert gone.status == "vanished" and gone.size == 0 and gone.change == -size
    assert groups[2] not in {t.theme_id for t in catalog.list_themes(backend)}
    assert catalog.current_run(backend).next_theme_id == 4
    backend.close()


def test_online_items_get_their_topics_theme_and_a_born_topic_the_nearest_theme(tmp_path: Path) -> None:
    world, settings, backend, corpus, _ = _start(tmp_path)
    groups = _group_to_theme(backend, corpus)
    known = {t.topic_id for t in catalog.list_topics(backend)}
    old = syn.sample_cluster(syn.Cluster(world.centres[2][0], 80, 0.3), world.rng)  # a known topic
    new = syn.sample_cluster(syn.Cluster(world.centres[1][3], 120, 0.3), world.rng)  # a new sibling
    ids = [syn.item_id(i, "stream") for i in range(200)]
    syn.store_corpus(backend.collection("items"), syn.Corpus(ids, np.concatenate([old, new]), np.zeros(200)))
    report = assign_pending(backend, settings)
    assert len(report.emerged) == 1
    born = catalog.get_topic(backend, report.emerged[0])
    assert born.topic_id not in known and born.theme_id == groups[1]  # the nearest theme: its group's
    themes = _item_themes(backend)
    assert [themes[i] for i in ids[:80]].count(groups[2]) >= 0.9 * 80
    new_part = [themes[i] for i in ids[80:]]
    assert set(new_part) <= {groups[1], None} and new_part.count(groups[1]) >= 0.5 * 120
    run = catalog.current_run(backend)
    members = backend.collection("items").count(catalog.theme_filter(backend, run, groups[1]))
    assert members == sum(1 for t in themes.values() if t == groups[1])  # born topics' items included
    backend.close()


# ---- reading both levels: list, show, history, search, exemplars (the CLI, run as `serve` runs it) ----


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, World, dict[int, int]]:
    """An embedded store of the two-level world after two runs (the second adds a spare sibling)."""
    world = World()
    settings = load_settings(data_dir=tmp_path_factory.mktemp("tree") / "data", store={"backend": "edge"})
    backend = open_backend(settings)
    corpus = world.corpus(BASE)
    syn.store_corpus(backend.collection("items"), corpus)
    recluster(settings, backend)
    syn.store_corpus(backend.collection("items"), world.corpus([*BASE, (0, 3)]))
    recluster(settings, backend)
    groups = _group_to_theme(backend, corpus)
    backend.close()
    return settings, world, groups


def _cli(settings: Settings, *argv: str) -> dict:
    return served.runner(lambda: Index(settings))(list(argv), width=200)


def _json(settings: Settings, *argv: str) -> object:
    answer = _cli(settings, *argv, "--json")
    assert answer["code"] == 0, answer["stderr"]
    return json.loads(answer["stdout"])


def test_list_nests_topics_under_their_themes(tree) -> None:
    settings, _world, groups = tree
    themes = _json(settings, "list")
    assert [t["theme_id"] for t in themes] == [groups[0], groups[1], groups[2]]  # group 0 is largest now
    assert [len(t["topics"]) for t in themes] == [4, 3, 3]
    for theme in themes:
        assert set(theme) == {"theme_id", "label", "size", "change", "status", "words", "curation", "topics"}
        assert {t["theme_id"] for t in theme["topics"]} == {theme["theme_id"]}
        assert theme["size"] == sum(t["size"] for t in theme["topics"])
        sizes = [t["size"] for t in theme["topics"]]
        assert sizes == sorted(sizes, reverse=True)
    flat = _json(settings, "list", "--flat")
    assert sorted(t["id"] for t in flat) == sorted(t["id"] for th in themes for t in th["topics"])
    assert set(flat[0]) == {"id", "label", "size", "change", "status", "words", "theme_id", "curation"}
    new = _json(settings, "list", "--status", "emerging")
    assert [t["theme_id"] for t in new] == [groups[0]] and len(new[0]["topics"]) == 1
    text = _cli(settings, "list")["stdout"].splitlines()
    rows = [line.split()[1] for line in text if line.split()[1:2] and line.split()[1][:1] in "T0123456789"]
    first = rows.index(f"T{groups[0]}")
    assert rows[first + 1 : first + 5] == [str(t["id"]) for t in themes[0]["topics"]]  # indented beneath


def test_show_and_history_of_a_theme_and_of_a_topic(tree) -> None:
    settings, _world, groups = tree
    theme = _json(settings, "show", f"T{groups[0]}")
    assert theme["theme_id"] == groups[0] and len(theme["topics"]) == 4 and theme["run_id"] == 2
    assert theme["size_history"][0][0] == 1 and theme["size_history"][1] == [2, theme["size"]]
    assert [(e["level"], e["kind"]) for e in theme["lineage"]] == [
        ("theme", "emerged"),
        ("theme", "survived"),
    ]
    assert _json(settings, "show", f"t{groups[0]}") == theme
    topic = _json(settings, "show", str(theme["topics"][0]["id"]))
    assert topic["theme_id"] == groups[0] and {e["level"] for e in topic["lineage"]} == {"topic"}
    history = _json(settings, "history", f"T{groups[1]}")
    assert [r["themes"] for r in history["runs"]] == [3, 3]
    assert [(e["kind"], e["after"]) for e in history["events"]] == [
        ("emerged", [groups[1]]),
        ("survived", [groups[1]]),
    ]
    everything = _json(settings, "history")
    assert {e["level"] for e in everything["events"]} == {"topic", "theme"}
    assert "theme survived" not in _cli(settings, "history")["stdout"]  # survivals are not news
    assert f"theme emerged [] -> [T{groups[1]}]" in _cli(settings, "history")["stdout"]
    assert _json(settings, "exemplars", f"T{groups[1]}")["id"] == groups[1]
    missing, bad = _cli(settings, "show", "T99"), _cli(settings, "show", "X3")
    assert (missing["code"], missing["stderr"]) == (1, "error: no theme T99 (see `topics list`)\n")
    assert bad["code"] == 2 and "neither a topic id (12) nor a theme id (T3)" in bad["stderr"]


def test_search_groups_topics_by_theme(tree, monkeypatch: pytest.MonkeyPatch) -> None:
    settings, world, groups = tree
    query = syn.normalise(world.centres[1][0] + world.centres[1][1] + 0.3 * world.centres[2][0])
    monkeypatch.setattr(search_module, "_queries", lambda *a: {"image": query, "text": query})
    found = _json(settings, "search", "anything", "--limit", "6")
    by_id = {t["topic_id"]: t for t in found["topics"]}
    assert found["themes"][0]["theme_id"] == groups[1] and len(found["themes"][0]["topics"]) >= 2
    for theme in found["themes"]:
        assert all(by_id[t]["theme_id"] == theme["theme_id"] for t in theme["topics"])
    assert sorted(t for th in found["themes"] for t in th["topics"]) == sorted(by_id)
    only = _json(settings, "search", "anything", "--theme", f"T{groups[2]}", "--limit", "6")
    assert [th["theme_id"] for th in only["themes"]] == [groups[2]]
    assert all(h["topic"] in only["themes"][0]["topics"] for t in only["topics"] for h in t["items"])
    text = _cli(settings, "search", "anything", "--limit", "6")["stdout"]
    assert text.startswith(f"theme T{groups[1]} ") and "\n  topic " in text


def test_themes_get_words_exemplars_labels_and_tiles_of_their_own(tmp_path: Path) -> None:
    world = World()
    settings = _settings(tmp_path)
    backend = open_backend(settings)
    corpus = world.corpus(BASE)
    items = backend.collection("items")
    syn.store_corpus(items, corpus)
    pictures = []
    for g in range(3):
        pictures.append(tmp_path / f"g{g}.jpg")
        Image.new("RGB", (16, 16), (80 * g, 40, 200 - 60 * g)).save(pictures[-1])
    group_words, payloads = ("harbour", "forest", "tractor"), {}
    for item_id, label in zip(corpus.ids, corpus.labels, strict=True):
        g, s = divmod(int(label), SIBLINGS)
        caption = f"{group_words[g]} {group_words[g]}{s}x photo"
        payloads[item_id] = {"caption": caption, "path": str(pictures[g])}
    items.set_payloads(payloads)
    rebuild_topics(Index(settings, backend=backend))
    groups = _group_to_theme(backend, corpus)
    themes = {t.theme_id: t for t in catalog.list_themes(backend)}
    tiles = {t.tile for t in catalog.list_topics(backend)}
    item_themes = _item_themes(backend)
    for g, word in enumerate(group_words):
        theme = themes[groups[g]]
        assert theme.words[0] == word and word in theme.label
        assert theme.exemplars and {item_themes[e] for e in theme.exemplars} == {theme.theme_id}
        assert Path(theme.tile).name == f"theme-{theme.theme_id}.jpg" and Path(theme.tile).is_file()
        assert theme.tile not in tiles  # a theme's tile never overwrites a topic's of the same number
    for topic in catalog.list_topics(backend):
        assert topic.words[0].endswith("x")  # a topic's top word is its own sibling word
    backend.close()
