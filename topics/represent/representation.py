"""What is shown for one topic (`Representation`, stored with its record) and the knobs that make it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from indexer.config import RepresentSettings
from indexer.items import ItemId

Scored = tuple[str, float]
_SETTINGS = RepresentSettings()  # the defaults, as the settings section declares them


@dataclass(frozen=True)
class Representation:
    """Everything shown for one topic; stored in the topic's payload (see `to_payload`)."""

    topic_id: int
    label: str
    words: tuple[Scored, ...] = ()
    keywords: tuple[Scored, ...] = ()
    exemplars: tuple[ItemId, ...] = ()  # images: most typical first, diverse
    captions: tuple[str, ...] = ()  # representative captions, same picking
    caption_items: tuple[ItemId, ...] = ()  # the items those captions belong to
    generated_captions: tuple[str, ...] = ()  # from the caption model, for image-only topics
    tile: str | None = None  # path of the grid JPEG
    tile_fingerprint: str | None = None

    def to_payload(self) -> dict[str, Any]:
        """A JSON-ready dict (lists, not tuples) for the store."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> Representation:
        """Inverse of `to_payload`; unknown keys are ignored so older readers survive newer payloads."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in payload.items() if k in known}
        for name in ("words", "keywords"):
            values[name] = tuple((str(t), float(s)) for t, s in values.get(name, ()))
        for name in ("exemplars", "captions", "caption_items", "generated_captions"):
            values[name] = tuple(values.get(name, ()))
        return cls(**values)


@dataclass(frozen=True)
class RepresentOptions:
    """Knobs of topic representation. Those a user sets are declared once, in
    `indexer.config.RepresentSettings`, whose defaults these are; the rest (paths under the data dir,
    the tile prefix, the caption length read) are the process's, not settings."""

    n_words: int = _SETTINGS.n_words
    n_exemplars: int = _SETTINGS.n_exemplars
    n_keywords: int = _SETTINGS.n_keywords
    diversity: float = _SETTINGS.diversity
    pool_size: int = _SETTINGS.pool_size  # candidates kept per topic for MMR
    min_df: int = _SETTINGS.min_df  # a term must occur in this many captions to count
    max_caption_chars: int = 2000
    stop_words: tuple[str, ...] = _SETTINGS.stop_words
    stop_word_files: tuple[Path, ...] = _SETTINGS.stop_word_files
    vocabulary_file: Path | None = _SETTINGS.vocabulary_file  # extra keyword terms, one a line
    max_vocabulary: int = _SETTINGS.max_vocabulary  # corpus terms embedded for keywords, most frequent first
    vocabulary_budget: int = _SETTINGS.vocabulary_budget  # new terms embedded per run
    captioner_model: str | None = _SETTINGS.captioner_model  # hub id or local path; None: none generated
    tiles_dir: Path | None = None  # None: no tiles
    tile_prefix: str = "topic"  # tiles are <tiles_dir>/<prefix>-<id>.jpg ("theme" for themes)
    tile_cell: int = _SETTINGS.tile_cell
    cache_dir: Path | None = None  # vocabulary vectors per model
    device: str = "auto"

    @classmethod
    def from_settings(cls, settings: Any) -> RepresentOptions:
        """Options from the process `Settings`: its `represent` section if any; paths under data_dir."""
        section = getattr(settings, "represent", None)
        given = (
            section.model_dump() if hasattr(section, "model_dump") else dict(vars(section)) if section else {}
        )
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in given.items() if k in known and v is not None}
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        values.setdefault("tiles_dir", settings.data_dir / "tiles")
        values.setdefault("cache_dir", settings.data_dir / "cache")
        values.setdefault("device", getattr(settings, "device", "auto"))
        return cls(**values)


def _jsonable(value: Any) -> Any:
    return [_jsonable(v) for v in value] if isinstance(value, tuple) else value
