"""Phase 4, ``matched``: which new cluster continues which previous topic, and theme, by public id.

Public ids and lineage come from the overlap between the previous run's topics and the new clusters on
the sample (`topics.fit.matching`); then the same for themes (the fit's groups of topics), from the
overlap of the previous run's themes (each sampled item's old topic's theme) with the new ones. Theme
ids are their own sequence (`Run.next_theme_id`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from indexer.embed.base import l2_normalise
from indexer.store.base import Backend
from topics import catalog
from topics.catalog import LineageEvent, Run, Theme, Topic
from topics.fit.clustering import Clustering
from topics.fit.matching import Identity, MatchParams, contingency, match_topics
from topics.ids import OUTLIER
from topics.recluster.sample import NOT_PRESENT, Sample

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ThemeMatch:
    """The fit's themes: public ids and lineage, and each raw theme's centroid and topics."""

    identity: Identity
    of_topic: np.ndarray  # (k,) raw theme of each raw topic label
    centroids: np.ndarray  # (t, d) unit centroid of each raw theme in the clustered view


@dataclass(frozen=True)
class Matched:
    """Both levels matched: the previous run's records and the new run's public ids."""

    before: list[Topic]
    identity: Identity
    themes_before: list[Theme]
    themes: ThemeMatch
    theme_of: dict[int, int]  # public topic id -> public theme id


def match_ids(
    backend: Backend,
    sample: Sample,
    clustering: Clustering,
    view: str,
    previous: Run | None,
    match: MatchParams | None,
) -> Matched:
    """Public ids of the new topics and themes, continuing the previous run's where members overlap."""
    before = catalog.run_topics(backend, previous) if previous else []
    if previous is not None and previous.n_topics and not before:
        log.warning("recluster: %s", catalog.missing_run_note(backend, previous))
        before = _topics_from_items(sample, previous, view)
    identity = _match(sample, clustering, before, view, previous, match)
    themes_before = catalog.run_themes(backend, previous) if previous else []
    themes = _match_themes(sample, clustering, before, themes_before, view, previous, match)
    theme_of = {identity.ids[raw]: themes.identity.ids[int(t)] for raw, t in enumerate(clustering.themes)}
    return Matched(before, identity, themes_before, themes, theme_of)


def lineage(identity: Identity, run: Run, level: catalog.Level) -> list[LineageEvent]:
    """The matching's events as this run's lineage records of `level`."""
    return [LineageEvent(run.run_id, e.kind, e.before, e.after, run.started, level) for e in identity.events]


def _topics_from_items(sample: Sample, previous: Run, view: str) -> list[Topic]:
    """The previous run's topics as its items still name them, when its topic records are gone:
    ids, sizes and centroids from the sample, so the ids live on."""
    topics = []
    for topic_id in np.unique(sample.previous[sample.previous >= 0]):
        members = sample.vectors[sample.previous == topic_id]
        centroid = l2_normalise(members.mean(axis=0)[None])[0]
        at = previous.started
        topics.append(
            Topic(int(topic_id), len(members), "active", previous.run_id, at, at, centroids={view: centroid})
        )
    return topics


def _match(
    sample: Sample,
    clustering: Clustering,
    before: list[Topic],
    view: str,
    previous: Run | None,
    match: MatchParams | None,
) -> Identity:
    live = [t for t in before if t.status != "vanished"]
    previous_ids = [t.topic_id for t in live]
    common = sample.previous != NOT_PRESENT
    k = clustering.centroids.shape[0]
    table = contingency(sample.previous[common], clustering.labels[common], previous_ids, k)
    dim = clustering.centroids.shape[1]
    old_centroids = (
        np.stack([t.centroids.get(view, np.zeros(dim, np.float32)) for t in live]) if live else None
    )
    sizes = np.bincount(clustering.labels[clustering.labels >= 0], minlength=k)
    # Ids born online since the last run count too: an id is never handed out twice.
    next_id = max([previous.next_topic_id, *(t.topic_id + 1 for t in before)]) if previous else 0
    return match_topics(table, previous_ids, old_centroids, clustering.centroids, next_id, match, sizes)


def _match_themes(
    sample: Sample,
    clustering: Clustering,
    topics_before: list[Topic],
    themes_before: list[Theme],
    view: str,
    previous: Run | None,
    match: MatchParams | None,
) -> ThemeMatch:
    """Theme ids carried over by member overlap (an item's old theme is its old topic's), as topics are."""
    n = clustering.n_themes
    of_topic = np.asarray(clustering.themes, np.int64)
    centroids = _theme_centroids(clustering, n)
    old_theme = {t.topic_id: t.theme_id for t in topics_before if t.theme_id is not None}
    was = np.array([old_theme.get(int(t), OUTLIER) if t >= 0 else t for t in sample.previous], np.int64)
    common = was != NOT_PRESENT
    live = [t for t in themes_before if t.status != "vanished"]
    now = clustering.theme_of(clustering.labels)
    table = contingency(was[common], now[common], [t.theme_id for t in live], n)
    dim = clustering.centroids.shape[1]
    old = np.stack([t.centroids.get(view, np.zeros(dim, np.float32)) for t in live]) if live else None
    first = max([previous.next_theme_id, *(t.theme_id + 1 for t in themes_before)]) if previous else 0
    sizes = np.bincount(now[now >= 0], minlength=n)
    identity = match_topics(table, [t.theme_id for t in live], old, centroids, first, match, sizes)
    return ThemeMatch(identity, of_topic, centroids)


def _theme_centroids(clustering: Clustering, n: int) -> np.ndarray:
    """Each theme's centroid: its topics' centroids weighted by their sizes in the sample."""
    sizes = np.bincount(clustering.labels[clustering.labels >= 0], minlength=clustering.n_topics)
    sums = np.zeros((n, clustering.centroids.shape[1]), np.float64)
    np.add.at(sums, clustering.themes, clustering.centroids * np.maximum(sizes, 1)[:, None])
    return l2_normalise(sums).astype(np.float32) if n else sums.astype(np.float32)
