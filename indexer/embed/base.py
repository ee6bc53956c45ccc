"""The `Embedder` protocol: turns images and texts into L2-normalised float32 vectors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
from PIL import Image

from indexer.errors import TopicsError


class ModelUnavailable(TopicsError, RuntimeError):
    """Weights could not be loaded; the message names the setting that fixes it."""


@runtime_checkable
class Embedder(Protocol):
    model_id: str  # e.g. "open_clip:ViT-B-32/laion2b_s34b_b79k"
    dim: int
    modalities: frozenset[str]  # subset of {"image", "text"}

    def identity(self) -> dict[str, object]:
        """What the store records to refuse mixing models: name, weights tag, dim."""

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim) float32, rows L2-normalised."""


@runtime_checkable
class ImageEmbedder(Embedder, Protocol):
    def preprocess(self, image: Image.Image) -> np.ndarray:
        """One decoded RGB image to the model's input array (runs in decode threads)."""

    def embed_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """A stacked batch from `preprocess` to (n, dim) float32, rows L2-normalised."""

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Convenience: preprocess + embed_pixels."""


def l2_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, 1e-12)
