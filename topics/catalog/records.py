"""The records of the topics collection as values: topics, themes, lineage events, runs, item assignments."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import numpy as np

from topics.ids import ThemeId, TopicId

TopicStatus = Literal["active", "emerging", "vanished"]
EventKind = Literal["survived", "split", "merged", "emerged", "vanished"]
AssignedBy = Literal["recluster", "online"]
Level = Literal["topic", "theme"]


@dataclass(frozen=True)
class Topic:
    """One public topic as of one run. `threshold`: the cosine an online item needs to join it."""

    topic_id: TopicId
    size: int
    status: TopicStatus
    run_id: int
    first_seen: datetime
    last_seen: datetime
    change: int = 0  # size minus the size in the previous run (= size when new)
    label: str | None = None
    centroids: Mapping[str, np.ndarray] = field(default_factory=dict)
    words: tuple[str, ...] = ()
    exemplars: tuple[str, ...] = ()  # item ids
    keywords: tuple[str, ...] = ()
    tile: str | None = None  # path of the exemplar mosaic image
    threshold: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    theme_id: ThemeId | None = None  # None: a record written before themes existed


@dataclass(frozen=True)
class Theme:
    """One public theme (a group of topics) as of one run; its fields mean what a topic's do."""

    theme_id: ThemeId
    size: int
    status: TopicStatus
    run_id: int
    first_seen: datetime
    last_seen: datetime
    change: int = 0
    label: str | None = None
    centroids: Mapping[str, np.ndarray] = field(default_factory=dict)
    words: tuple[str, ...] = ()
    exemplars: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    tile: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LineageEvent:
    """What happened to topic (or theme) ids in one run: `before` ids became `after` ids."""

    run_id: int
    kind: EventKind
    before: tuple[TopicId, ...]
    after: tuple[TopicId, ...]
    at: datetime
    level: Level = "topic"


@dataclass(frozen=True)
class Run:
    """One finished recluster run; the current one also says which item slot it owns."""

    run_id: int
    started: datetime
    finished: datetime
    n_items: int
    n_topics: int
    slot: int
    next_topic_id: int
    view: str
    params: Mapping[str, Any] = field(default_factory=dict)
    n_themes: int = 0
    next_theme_id: int = 0


@dataclass(frozen=True)
class ItemAssignment:
    """An item's topic under the current run."""

    topic: TopicId
    score: float
    run_id: int
    assigned: AssignedBy
