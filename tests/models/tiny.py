"""A tiny randomly initialised open_clip model: real code paths, builds in well under a second.

In Python: ``from models.tiny import tiny_clip`` (pytest puts tests/ on sys.path via conftest.py).
From the environment (CLI end-to-end tests): ``monkeypatch.setenv`` each item of `TINY_CLIP_ENV`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from indexer.embed.clip import ClipEmbedder

TINY_CLIP_CONFIG = Path(__file__).parent / "tiny-clip.json"
TINY_CLIP_ARCH = TINY_CLIP_CONFIG.stem  # open_clip names a config after its file
TINY_CLIP_DIM = 64
TINY_CLIP_IMAGE_SIZE = 32
TINY_CLIP_ENV = {
    "TOPICS_MODEL__CONFIG_FILE": str(TINY_CLIP_CONFIG),
    "TOPICS_MODEL__ARCH": TINY_CLIP_ARCH,
    "TOPICS_MODEL__PRETRAINED": "none",
}


def tiny_clip(seed: int = 0, **kwargs: Any) -> ClipEmbedder:
    """A random-weights tiny CLIP on the CPU; the same seed gives the same weights."""
    import torch

    from indexer.embed.clip import ClipEmbedder

    options: dict[str, Any] = {"pretrained": "none", "device": "cpu", "batch_size": 8, **kwargs}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ClipEmbedder(arch=TINY_CLIP_ARCH, config_file=TINY_CLIP_CONFIG, **options)
