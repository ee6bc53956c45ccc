"""The 2-D map of topic centroids as inline SVG, coloured by theme, with greedily placed labels."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from topics.catalog import Theme, Topic
from topics.report.pieces import change_text, esc, label_of, short

N_MAP_LABELS = 30  # the largest topics may get a label on the map (space allowing); every one a tooltip
TOPIC_FONT, THEME_FONT = 11, 13  # px
CHAR_EM = 0.62  # a character's width in ems, generous for system-ui so estimated boxes cover the text
MAP_W, MAP_H, MAP_PAD = 760, 460, 50


def project_2d(vectors: np.ndarray) -> np.ndarray:
    """PCA to two dimensions (SVD of the centred rows); signs fixed so reruns draw the same map."""
    x = np.asarray(vectors, dtype=np.float64)
    out = np.zeros((len(x), 2))
    if len(x) < 2:
        return out
    x = x - x.mean(axis=0)
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    k = min(2, len(s))
    coords = u[:, :k] * s[:k]
    for j in range(k):
        pivot = coords[np.argmax(np.abs(coords[:, j])), j]
        coords[:, j] *= -1.0 if pivot < 0 else 1.0
    out[:, :k] = coords
    return out


def _fit_to_box(coords: np.ndarray) -> np.ndarray:
    """Coordinates scaled (one factor for both axes) and centred into the drawing area."""
    if not len(coords):
        return coords
    low, high = coords.min(axis=0), coords.max(axis=0)
    span = float(max(high - low)) or 1.0
    scale = min(MAP_W - 2 * MAP_PAD, MAP_H - 2 * MAP_PAD) / span
    centre = (low + high) / 2
    return (coords - centre) * scale + np.array([MAP_W / 2, MAP_H / 2])


@dataclass(frozen=True)
class MapLabel:
    """A label wanted on the map: its text, the point it names, that point's radius, font size, class."""

    text: str
    x: float
    y: float
    r: float
    size: int
    cls: str


def label_box(text: str, x: float, y: float, anchor: str, size: float) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) of an SVG text at baseline (x, y), from its length and font size."""
    width = len(text) * CHAR_EM * size
    left = {"start": x, "middle": x - width / 2, "end": x - width}[anchor]
    return left, y - size, left + width, y + 0.3 * size


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def place_labels(wanted: Sequence[MapLabel]) -> list[tuple[MapLabel, float, float, str]]:
    """Greedy placement in the given order: above, below, right or left of the point; a label that
    fits nowhere without overlapping a placed one or leaving the drawing is left out."""
    placed: list[tuple[MapLabel, float, float, str]] = []
    boxes: list[tuple[float, float, float, float]] = []
    for label in wanted:
        gap, drop = label.r + 4, label.size * 0.35
        spots = (
            (label.x, label.y - gap, "middle"),
            (label.x, label.y + gap + label.size, "middle"),
            (label.x + gap, label.y + drop, "start"),
            (label.x - gap, label.y + drop, "end"),
        )
        for x, y, anchor in spots:
            box = label_box(label.text, x, y, anchor, label.size)
            inside = box[0] >= 0 and box[1] >= 0 and box[2] <= MAP_W and box[3] <= MAP_H
            if inside and not any(_overlap(box, other) for other in boxes):
                placed.append((label, x, y, anchor))
                boxes.append(box)
                break
    return placed


def theme_colours(themes: Sequence[Theme]) -> dict[int, str]:
    """A distinct hue per theme (golden-angle steps, largest theme first); grey marks no theme."""
    return {t.theme_id: f"hsl({round(i * 137.508) % 360},62%,46%)" for i, t in enumerate(themes)}


def map_svg(topics: Sequence[Topic], view: str, themes: Sequence[Theme] = ()) -> str:
    """The topics' centroids in the run's view, projected to 2-D, as inline SVG: one circle each,
    coloured by theme, theme names at their topics' weighted centre, labels that never overlap."""
    placed = [t for t in topics if view in t.centroids]
    if not placed:
        return f"<p class=note>No topic has a centroid in the {esc(view)} view to draw.</p>"
    points = _fit_to_box(project_2d(np.stack([np.asarray(t.centroids[view]) for t in placed])))
    largest = max(t.size for t in placed) or 1
    radius = {t.topic_id: 5 + 28 * math.sqrt(t.size / largest) for t in placed}
    where = {t.topic_id: (float(x), float(y)) for t, (x, y) in zip(placed, points, strict=True)}
    colours = theme_colours(themes)
    circles = [
        _map_mark(t, *where[t.topic_id], radius[t.topic_id], colours.get(t.theme_id, "#999"))
        for t in sorted(placed, key=lambda t: -t.size)
    ]
    wanted = [*_theme_labels(placed, themes, where), *_topic_labels(placed, where, radius)]
    texts = [
        f'<text class="{label.cls}" x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" '
        f'font-size="{label.size}">{esc(label.text)}</text>'
        for label, x, y, anchor in place_labels(wanted)
    ]
    return (
        f'<svg class=map viewBox="0 0 {MAP_W} {MAP_H}" width="{MAP_W}" height="{MAP_H}" role="img" '
        f'aria-label="map of topics">{"".join(circles)}{"".join(texts)}</svg>{_legend(themes, colours)}'
    )


def _theme_labels(
    topics: Sequence[Topic], themes: Sequence[Theme], where: dict[int, tuple[float, float]]
) -> list[MapLabel]:
    out = []
    for theme in themes:
        mine = [t for t in topics if t.theme_id == theme.theme_id]
        weight = sum(max(t.size, 1) for t in mine)
        if not mine:
            continue
        x = sum(where[t.topic_id][0] * max(t.size, 1) for t in mine) / weight
        y = sum(where[t.topic_id][1] * max(t.size, 1) for t in mine) / weight
        out.append(
            MapLabel(f"T{theme.theme_id} {short(label_of(theme), 24)}", x, y, 0.0, THEME_FONT, "theme")
        )
    return out


def _topic_labels(
    topics: Sequence[Topic], where: dict[int, tuple[float, float]], radius: dict[int, float]
) -> list[MapLabel]:
    largest = sorted(topics, key=lambda t: -t.size)[:N_MAP_LABELS]
    return [
        MapLabel(
            f"{t.topic_id} {short(label_of(t), 28)}",
            *where[t.topic_id],
            radius[t.topic_id],
            TOPIC_FONT,
            "topic",
        )
        for t in largest
    ]


def _map_mark(topic: Topic, x: float, y: float, r: float, colour: str) -> str:
    name = label_of(topic)
    theme = "" if topic.theme_id is None else f", theme T{topic.theme_id}"
    tooltip = f"topic {topic.topic_id}: {name} ({topic.size} items, {change_text(topic)}{theme})"
    return (
        f'<a href="#topic-{topic.topic_id}"><g class="mark {topic.status}">'
        f"<title>{esc(tooltip)}</title>"
        f'<circle data-topic="{topic.topic_id}" cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" '
        f'style="fill:{colour};stroke:{colour}"/></g></a>'
    )


def _legend(themes: Sequence[Theme], colours: dict[int, str]) -> str:
    if not themes:
        return ""
    keys = "".join(
        f'<a class=key href="#theme-{t.theme_id}"><span class=swatch '
        f'style="background:{colours[t.theme_id]}"></span>T{t.theme_id} {esc(short(label_of(t), 40))}</a>'
        for t in themes
    )
    return f"<p class=legend>{keys}</p>"
