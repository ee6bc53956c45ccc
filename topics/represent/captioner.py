"""Generated captions: a transformers image-to-text model describes exemplars of image-only topics.

Those captions feed the topic's words, so a topic of uncaptioned photos still gets a readable label.
Any model `AutoModelForImageTextToText` loads works (a VisionEncoderDecoder such as ViT+GPT-2, or
BLIP), from a hub id or a local directory. Loading happens once, up front, and fails within seconds
with a message naming the setting, never in the middle of a recluster.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from indexer.embed.base import ModelUnavailable
from indexer.embed.hub import hub_offline

SETTING = "TOPICS_REPRESENT__CAPTION_MODEL"


class CaptionModelUnavailable(ModelUnavailable):
    """The caption model could not be loaded; the message says which setting to change."""


class ImageCaptioner:
    """Captions images with one image-to-text model, in batches, greedily (deterministic)."""

    def __init__(
        self, model: str, *, device: str = "auto", max_new_tokens: int = 24, batch_size: int = 8
    ) -> None:
        self.model_name = model
        from indexer.embed.device import resolve_device  # torch: imported when a captioner is made

        self.device = resolve_device(device)
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self._model, self._image_processor, self._tokenizer = _load(model, self.device)

    def caption(self, images: Sequence[Image.Image]) -> list[str]:
        """One caption per image (possibly empty for a model with nothing to say)."""
        import torch

        captions: list[str] = []
        for start in range(0, len(images), self.batch_size):
            batch = [image.convert("RGB") for image in images[start : start + self.batch_size]]
            pixels = self._image_processor(images=batch, return_tensors="pt").pixel_values
            with torch.inference_mode():
                tokens = self._model.generate(
                    pixel_values=pixels.to(self.device, self._model.dtype),
                    max_new_tokens=self.max_new_tokens,
                    do_sample=False,
                )
            captions.extend(t.strip() for t in self._tokenizer.batch_decode(tokens, skip_special_tokens=True))
        return captions

    def caption_paths(self, paths: Sequence[str | Path | None]) -> list[str | None]:
        """Captions for image files; None where a file is missing, remote or unreadable."""
        images: list[Image.Image] = []
        where: list[int] = []
        for index, path in enumerate(paths):
            image = _open_local(path)
            if image is not None:
                images.append(image)
                where.append(index)
        result: list[str | None] = [None] * len(paths)
        for index, text in zip(where, self.caption(images), strict=True):
            result[index] = text or None
        return result


def _open_local(path: str | Path | None) -> Image.Image | None:
    if path is None or "://" in str(path):
        return None
    try:
        with Image.open(path) as image:
            image.draft("RGB", (512, 512))
            return image.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def _load(model: str, device: str) -> tuple[object, object, object]:
    from transformers import AutoImageProcessor, AutoModelForImageTextToText, AutoTokenizer

    local = Path(model).expanduser()
    source = str(local) if local.exists() else model
    # Offline, ask only the local cache: a hub id then fails at once instead of retrying the network.
    only_local = local.exists() or hub_offline()
    try:
        loaded = AutoModelForImageTextToText.from_pretrained(source, local_files_only=only_local)
        processor = AutoImageProcessor.from_pretrained(source, local_files_only=only_local)
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=only_local)
    except (OSError, ValueError, KeyError, ImportError) as exc:
        raise CaptionModelUnavailable(_explain(model, local, exc)) from exc
    return loaded.to(device).eval(), processor, tokenizer


def _explain(model: str, local: Path, exc: BaseException) -> str:
    if local.exists():
        why = f"the directory {local} does not hold a loadable image-to-text model"
    elif hub_offline():
        why = "it is not a local path and the hub is offline (HF_HUB_OFFLINE=1) with no cached copy"
    else:
        why = "it is neither a local path nor a hub model that could be downloaded"
    return (
        f"cannot load caption model {model!r}: {why} ({type(exc).__name__}: {str(exc)[:300]}). "
        f"Set {SETTING} to a local model directory, or leave it unset to skip generated captions."
    )
