"""Embedders: CLIP for images and texts, an optional sentence model for captions.

Importing this package is cheap: torch, open_clip and sentence-transformers load only when a
builder (or `ClipEmbedder` / `SentenceEmbedder`) is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from indexer.embed.base import Embedder, ImageEmbedder, ModelUnavailable, l2_normalise

if TYPE_CHECKING:
    from indexer.config import Settings
    from indexer.embed.clip import ClipEmbedder
    from indexer.embed.sentence import SentenceEmbedder

__all__ = [
    "ClipEmbedder",
    "Embedder",
    "ImageEmbedder",
    "ModelUnavailable",
    "SentenceEmbedder",
    "build_caption_embedder",
    "build_clip",
    "l2_normalise",
]


def build_clip(settings: Settings, *, text_only: bool = False) -> ClipEmbedder:
    """The CLIP embedder the settings describe (weights, device, batch size); `text_only`: without
    the image tower."""
    from indexer.embed.clip import ClipEmbedder

    model = settings.model
    return ClipEmbedder(
        arch=model.arch,
        pretrained=model.pretrained,
        checkpoint=model.checkpoint,
        config_file=model.config_file,
        cache_dir=model.cache_dir,
        device=settings.device,
        batch_size=settings.ingest.batch_size,
        load_timeout_s=model.load_timeout_s,
        text_only=text_only,
        precision=model.precision,
    )


def build_caption_embedder(settings: Settings) -> SentenceEmbedder | None:
    """The caption model, or None when the `caption` view is not ingested."""
    if "caption" not in settings.ingest.views:
        return None
    from indexer.embed.sentence import SentenceEmbedder, default_caption_model

    model = settings.model
    return SentenceEmbedder(
        model=model.sentence_model or default_caption_model(),
        device=settings.device,
        batch_size=settings.ingest.batch_size,
        cache_dir=model.cache_dir,
        load_timeout_s=model.load_timeout_s,
    )


def __getattr__(name: str) -> Any:
    # Lazy re-exports: `from indexer.embed import ClipEmbedder` without paying for torch up front.
    if name == "ClipEmbedder":
        from indexer.embed.clip import ClipEmbedder

        return ClipEmbedder
    if name == "SentenceEmbedder":
        from indexer.embed.sentence import SentenceEmbedder

        return SentenceEmbedder
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
