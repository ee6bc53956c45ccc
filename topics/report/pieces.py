"""Small pieces every part of the page uses: escaping, anchors, labels, change and time text."""

from __future__ import annotations

import html
from datetime import UTC, datetime

from topics.catalog import Theme, Topic
from topics.represent import Representation


def esc(value: object) -> str:
    """Escape any value for HTML text and quoted attributes."""
    return html.escape(str(value), quote=True)


def anchor(record: Topic | Theme) -> str:
    """The page anchor of a topic's or theme's row, also its key among the tiles."""
    return f"topic-{record.topic_id}" if isinstance(record, Topic) else f"theme-{record.theme_id}"


def representation_of(topic: Topic | Theme) -> Representation:
    fallback = Representation(topic_id=-1, label=topic.label or "")
    payload = topic.extra.get("representation")
    if not isinstance(payload, dict):
        return fallback
    try:
        return Representation.from_payload(payload)
    except (TypeError, ValueError):  # a malformed payload must not cost the whole report
        return fallback


def label_of(topic: Topic | Theme) -> str:
    return topic.label or ", ".join(topic.words[:3]) or anchor(topic).replace("-", " ")


def change_text(topic: Topic | Theme) -> str:
    if topic.status == "emerging" and topic.change == topic.size:
        return "new"
    return f"{topic.change:+d}" if topic.change else "±0"


def short(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def format_time(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
