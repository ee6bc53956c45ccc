"""Phase 6, ``topics_written`` (the building half): the new run's topic and theme records.

The live records (sizes and centroids from the items pass, the online threshold from the sample) and a
lasting ``vanished`` record for each topic or theme that ended in this run (written once, kept for
ever, no vectors).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, TypeVar

import numpy as np

from indexer.embed.base import l2_normalise
from topics.catalog import Run, Theme, Topic
from topics.fit.clustering import Clustering
from topics.fit.geometry import leave_one_out_cosines
from topics.fit.matching import Identity
from topics.recluster.assign import WriteTotals
from topics.recluster.match import ThemeMatch
from topics.recluster.sample import Sample

THRESHOLD_PERCENTILE = 2.0  # online assignment accepts what the weakest 2% of members would reach
_Record = TypeVar("_Record", Topic, Theme)


def topic_records(
    written: WriteTotals,
    sample: Sample,
    clustering: Clustering,
    identity: Identity,
    before: list[Topic],
    run: Run,
    theme_of_topic: Mapping[int, int],
) -> list[Topic]:
    """This run's live topics."""
    old = {t.topic_id: t for t in before}
    thresholds = _thresholds(sample, clustering)
    topics = []
    for raw, topic_id in sorted(identity.ids.items(), key=lambda kv: kv[1]):
        centroids = {v: l2_normalise(s[raw][None])[0] for v, s in written.sums.items() if s[raw].any()}
        centroids[run.view] = clustering.centroids[raw]
        size = int(written.sizes[raw])
        was = old.get(identity.continued.get(topic_id, -1))
        topics.append(
            Topic(
                topic_id=topic_id,
                centroids=centroids,
                threshold=float(thresholds[raw]),
                theme_id=theme_of_topic[topic_id],
                **_carried(was, size, run),
            )
        )
    return topics + _ended(before, {t.topic_id for t in before} - set(identity.continued), run)


def theme_records(written: WriteTotals, themes: ThemeMatch, before: list[Theme], run: Run) -> list[Theme]:
    """This run's themes (sizes and centroids summed over their topics), plus the ended ones."""
    old = {t.theme_id: t for t in before}
    out = []
    for raw, theme_id in sorted(themes.identity.ids.items(), key=lambda kv: kv[1]):
        members = themes.of_topic == raw
        sums = {v: s[members].sum(axis=0) for v, s in written.sums.items()}
        centroids = {v: l2_normalise(total[None])[0] for v, total in sums.items() if total.any()}
        centroids[run.view] = themes.centroids[raw]
        was = old.get(themes.identity.continued.get(theme_id, -1))
        out.append(
            Theme(
                theme_id=theme_id,
                centroids=centroids,
                **_carried(was, int(written.sizes[members].sum()), run),
            )
        )
    ended = {t.theme_id for t in before} - set(themes.identity.continued)
    return out + _ended(before, ended, run)


def _carried(was: Topic | Theme | None, size: int, run: Run) -> dict[str, Any]:
    """A record's fields that follow from the one it continues (None: it is new in this run)."""
    return {
        "size": size,
        "status": "active" if was is not None else "emerging",
        "run_id": run.run_id,
        "first_seen": was.first_seen if was is not None else run.started,
        "last_seen": run.started,
        "change": size - (was.size if was is not None else 0),
        "label": was.label if was is not None else None,
        "extra": {"size_history": _history(was, run.run_id, size)},
    }


def _ended(before: Sequence[_Record], ended: set[int], run: Run) -> list[_Record]:
    """Records of the previous run whose ids do not continue, as this run's lasting `vanished` records
    (no vectors; `catalog.vanished_point`). Old stores also carry earlier vanished ids as run records
    (status already ``vanished``): they become lasting records once, unchanged but for the run."""
    out = []
    for record in before:
        if (record.topic_id if isinstance(record, Topic) else record.theme_id) in ended:
            change = 0 if record.status == "vanished" else -record.size
            out.append(
                replace(record, size=0, status="vanished", run_id=run.run_id, change=change, centroids={})
            )
    return out


def _history(was: Topic | Theme | None, run_id: int, size: int) -> list[list[int]]:
    """(run, size) pairs, newest last, bounded so a long-lived topic's record stays small."""
    earlier = list(was.extra.get("size_history", [])) if was is not None else []
    return [*earlier, [run_id, size]][-100:]


def _thresholds(sample: Sample, clustering: Clustering) -> np.ndarray:
    """Per raw label: a low percentile of its members' leave-one-out cosine to the centroid.

    A member scores against a centroid it helped form, so plain member cosines sit higher than a
    new item of the same topic would reach; leaving each member out of its own centroid calibrates
    the threshold for items the run has not seen (online agreement 0.90 -> 0.95 on small topics).
    """
    k = clustering.centroids.shape[0]
    out = np.zeros(k, np.float32)
    for raw in range(k):
        members = sample.vectors[clustering.labels == raw]
        if len(members) < 2:
            continue
        out[raw] = np.percentile(leave_one_out_cosines(members), THRESHOLD_PERCENTILE)
    return out
