"""`ClipEmbedder`: open_clip image and text towers behind the `ImageEmbedder` protocol.

Weights come from the hub cache (a pretrained tag), a local checkpoint file, or nowhere
(``pretrained="none"``: random weights, for smoke tests). Anything that needs the network runs
under a deadline, so a machine without a hub fails within ``load_timeout_s`` with a
`ModelUnavailable` that names the setting to change.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch
from PIL import Image

from indexer.embed.base import ModelUnavailable, l2_normalise
from indexer.embed.device import DTYPES, resolve_device, resolve_precision
from indexer.embed.hub import DeadlineExceeded, call_with_deadline, hub_unavailable_reason
from indexer.errors import InvalidInput

log = logging.getLogger(__name__)

RANDOM_WEIGHTS = "none"
FIX_HINT = (
    "Set TOPICS_MODEL__CHECKPOINT=/path/to/open_clip_model.safetensors to load a local file, "
    "or TOPICS_MODEL__PRETRAINED=none for random weights (smoke tests only; embeddings are meaningless)."
)
_PREPROCESS_KEYS = ("mean", "std", "interpolation", "resize_mode", "fill_color")
_REGISTRY_LOCK = threading.Lock()  # open_clip's config registry is a module global


@dataclass(frozen=True)
class WeightsSource:
    """Where the weights of one model come from; `path` None means random initialisation."""

    path: Path | None
    tag: str | None
    preprocess: dict[str, Any] = field(default_factory=dict)  # the tag's own mean/std/interpolation
    quick_gelu: bool = False


def register_model_config(config_file: Path, arch: str) -> None:
    """Make a JSON architecture config known to open_clip under its file stem, which must be `arch`."""
    config_file = Path(config_file)
    if not config_file.is_file():
        raise InvalidInput(f"TOPICS_MODEL__CONFIG_FILE={config_file} does not exist")
    if config_file.stem != arch:
        raise InvalidInput(
            f"{config_file} defines the architecture {config_file.stem!r}; "
            f"set TOPICS_MODEL__ARCH={config_file.stem} to use it (got {arch!r})"
        )
    wanted = json.loads(config_file.read_text(encoding="utf-8"))
    if not all(key in wanted for key in ("embed_dim", "vision_cfg", "text_cfg")):
        raise InvalidInput(
            f"{config_file} is not an open_clip model config (needs embed_dim, vision_cfg, text_cfg)"
        )
    with _REGISTRY_LOCK:
        if open_clip.get_model_config(arch) != wanted:
            open_clip.add_model_config(config_file)


def _cached_tag_file(cfg: dict[str, Any], cache_dir: Path | None) -> Path | None:
    """The tag's weights file if it is already on disk; never touches the network."""
    if cfg.get("file"):
        return Path(cfg["file"])
    if cfg.get("hf_hub"):
        from huggingface_hub import try_to_load_from_cache

        repo_id, filename = os.path.split(cfg["hf_hub"])
        names = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        if filename.endswith((".bin", ".pth")):
            names.insert(0, filename[:-4] + ".safetensors")
        for name in names:
            found = try_to_load_from_cache(repo_id, name, cache_dir=str(cache_dir) if cache_dir else None)
            if isinstance(found, str):
                return Path(found)
    if cfg.get("url"):
        candidate = Path(cache_dir or Path("~/.cache/clip").expanduser()) / os.path.basename(cfg["url"])
        if candidate.is_file():
            return candidate
    return None


def _download_tag_file(cfg: dict[str, Any], cache_dir: Path | None, timeout_s: float, what: str) -> Path:
    """Fetch the tag's weights from the hub, giving up after `timeout_s` (the network may be a black hole)."""
    why_not = hub_unavailable_reason(timeout_s)
    if why_not:
        raise ModelUnavailable(
            f"Cannot load {what}: not in the local cache and {why_not}. "
            f"Put the weights in the hub cache (or TOPICS_MODEL__CACHE_DIR), or: {FIX_HINT}"
        )
    try:
        found = call_with_deadline(
            lambda: open_clip.download_pretrained(cfg, cache_dir=str(cache_dir) if cache_dir else None),
            timeout_s,
            name=f"download {what}",
        )
    except DeadlineExceeded as exc:
        raise ModelUnavailable(
            f"Cannot load {what}: the model hub did not answer in {timeout_s:g} s. {FIX_HINT}"
        ) from exc
    except Exception as exc:
        raise ModelUnavailable(f"Cannot load {what}: {exc}. {FIX_HINT}") from exc
    if not found:
        raise ModelUnavailable(f"Cannot load {what}: open_clip gave no weights file. {FIX_HINT}")
    return Path(found)


def resolve_weights(
    arch: str, pretrained: str, checkpoint: Path | None, cache_dir: Path | None, timeout_s: float
) -> WeightsSource:
    """Decide which weights file to load, failing fast (and helpfully) when there is none."""
    if checkpoint is not None:
        checkpoint = Path(checkpoint).expanduser()
        if not checkpoint.is_file():
            raise ModelUnavailable(
                f"Checkpoint file {checkpoint} does not exist. Fix TOPICS_MODEL__CHECKPOINT=/path/to/"
                "open_clip_model.safetensors, or set TOPICS_MODEL__PRETRAINED=none for random weights."
            )
        return WeightsSource(path=checkpoint, tag=None)
    if pretrained.lower() == RANDOM_WEIGHTS:
        return WeightsSource(path=None, tag=None)
    cfg = open_clip.get_pretrained_cfg(arch, pretrained)
    what = f"open_clip weights {arch}/{pretrained}"
    if not cfg:
        known = ", ".join(open_clip.list_pretrained_tags_by_model(arch)) or "none"
        raise ModelUnavailable(
            f"Unknown pretrained tag for {arch}: {pretrained!r} (known: {known}). {FIX_HINT}"
        )
    found = _cached_tag_file(cfg, cache_dir) or _download_tag_file(cfg, cache_dir, timeout_s, what)
    preprocess = {key: cfg[key] for key in _PREPROCESS_KEYS if key in cfg}
    return WeightsSource(
        path=found, tag=pretrained, preprocess=preprocess, quick_gelu=bool(cfg.get("quick_gelu"))
    )


def _fast_transform_supported(cfg: dict[str, Any]) -> bool:
    """True when `preprocess` can use Pillow + NumPy: a square shortest-side resize and center crop."""
    size = cfg.get("size", 224)
    square = isinstance(size, int) or (len(size) == 2 and size[0] == size[1])
    shortest = cfg.get("resize_mode", "shortest") == "shortest"
    # open_clip resolves "random" interpolation to bicubic at inference.
    return square and shortest and cfg.get("interpolation", "bicubic") in {"bicubic", "bilinear", "random"}


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB for any Pillow mode; transparent pixels go on white, as a viewer would show them."""
    if image.mode == "RGB":
        return image
    if image.mode in {"RGBA", "LA", "PA"} or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, (255, 255, 255))
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    if image.mode in {"I", "I;16", "I;16B", "I;16L", "F"}:
        # 16-bit and float greyscale: rescale to 8 bits by the image's own range, not by clipping.
        values = np.asarray(image, dtype=np.float32)
        low, high = float(values.min()), float(values.max())
        scaled = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
        return Image.fromarray(scaled.round().astype(np.uint8)).convert("RGB")
    return image.convert("RGB")


def clip_model_id(identity: dict[str, object]) -> str:
    """`ClipEmbedder.model_id` from its `identity()`, or from the one a store recorded without loading
    the model: the weights' tag, else the checkpoint's file name, else `RANDOM_WEIGHTS`."""
    return f"open_clip:{identity['arch']}/{identity.get('pretrained') or identity.get('checkpoint')}"


class ClipEmbedder:
    """An open_clip model: images and texts into one L2-normalised space."""

    modalities: frozenset[str] = frozenset({"image", "text"})

    def __init__(
        self,
        arch: str = "ViT-B-32",
        pretrained: str = "laion2b_s34b_b79k",
        checkpoint: Path | str | None = None,
        config_file: Path | str | None = None,
        cache_dir: Path | str | None = None,
        device: str = "auto",
        batch_size: int = 32,
        load_timeout_s: float = 15.0,
        text_only: bool = False,
        precision: str = "auto",
    ) -> None:
        """`text_only` drops the image tower once loaded (ViT-B-32: 88M of its 151M parameters), for a
        process that only embeds texts, such as the recluster's keyword vocabulary. `precision`: the
        number format of the forward (`indexer.embed.device.resolve_precision`)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.arch = arch
        self.batch_size = batch_size
        if config_file is not None:
            register_model_config(Path(config_file), arch)
        config = open_clip.get_model_config(arch)
        if config is None:
            raise InvalidInput(
                f"Unknown open_clip architecture {arch!r}: set TOPICS_MODEL__ARCH to one of "
                f"{', '.join(open_clip.list_models()[:8])}, ... or give TOPICS_MODEL__CONFIG_FILE"
            )
        cache = Path(cache_dir).expanduser() if cache_dir else None
        ckpt = Path(checkpoint) if checkpoint else None
        self._weights = resolve_weights(arch, pretrained, ckpt, cache, load_timeout_s)
        self.random_weights = self._weights.path is None
        if self.random_weights:
            log.warning(
                "open_clip %s has RANDOM weights (TOPICS_MODEL__PRETRAINED=none): embeddings are "
                "meaningless; use this for smoke tests only",
                arch,
            )
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self._input_dtype = DTYPES[self.precision]
        self._model = self._create_model(cache)
        self._tokenizer = self._create_tokenizer(cache, load_timeout_s)
        self.dim = int(config["embed_dim"])
        self.context_length = int(self._tokenizer.context_length)
        self._preprocess_cfg = dict(open_clip.get_model_preprocess_cfg(self._model))
        size = self._preprocess_cfg.get("size", 224)
        self.image_size = int(size) if isinstance(size, int) else int(max(size))
        self._init_transform()
        self.model_id = clip_model_id(self.identity())
        if text_only:
            self._model.visual = None  # its parameters are freed here; encode_text never reads them
            self.modalities = frozenset({"text"})

    # ---- loading -------------------------------------------------------------------------------

    def _create_model(self, cache: Path | None) -> torch.nn.Module:
        weights = self._weights
        try:
            model = open_clip.create_model(
                self.arch,
                pretrained=str(weights.path) if weights.path else None,
                precision=self.precision,
                device=self.device,
                force_quick_gelu=weights.quick_gelu,
                force_preprocess_cfg=weights.preprocess or None,
                pretrained_image=False,
                pretrained_text=False,  # random init must not fetch tower weights from the hub
                cache_dir=str(cache) if cache else None,
            )
        except RuntimeError as exc:
            raise ModelUnavailable(
                f"Cannot load {weights.path or 'random weights'} into open_clip {self.arch}: {exc}. "
                "Check TOPICS_MODEL__ARCH matches the checkpoint, or set TOPICS_MODEL__CHECKPOINT / "
                "TOPICS_MODEL__PRETRAINED=none."
            ) from exc
        model.eval()
        return model

    def _create_tokenizer(self, cache: Path | None, timeout_s: float) -> Any:
        # Hub-backed tokenizers (HF text towers) download their files: same deadline as weights.
        try:
            return call_with_deadline(
                lambda: open_clip.get_tokenizer(self.arch, cache_dir=str(cache) if cache else None),
                timeout_s,
                name=f"tokenizer {self.arch}",
            )
        except DeadlineExceeded as exc:
            raise ModelUnavailable(
                f"The tokenizer of {self.arch} did not load in {timeout_s:g} s. {FIX_HINT}"
            ) from exc
        except OSError as exc:
            raise ModelUnavailable(f"Cannot load the tokenizer of {self.arch}: {exc}. {FIX_HINT}") from exc

    def _init_transform(self) -> None:
        cfg = self._preprocess_cfg
        self._fast_transform = _fast_transform_supported(cfg)
        mean = np.asarray(cfg.get("mean", open_clip.OPENAI_DATASET_MEAN), dtype=np.float32)
        std = np.asarray(cfg.get("std", open_clip.OPENAI_DATASET_STD), dtype=np.float32)
        # One fused multiply-add per pixel: x/255 - mean, / std  ==  x * scale - offset.
        self._scale = (1.0 / (255.0 * std)).reshape(1, 1, 3)
        self._offset = (mean / std).reshape(1, 1, 3)
        bilinear = cfg.get("interpolation") == "bilinear"
        self._resample = Image.Resampling.BILINEAR if bilinear else Image.Resampling.BICUBIC
        self._reference_transform = open_clip.image_transform(
            cfg.get("size", 224),
            is_train=False,
            mean=tuple(mean.tolist()),
            std=tuple(std.tolist()),
            resize_mode=cfg.get("resize_mode"),
            interpolation=cfg.get("interpolation"),
            fill_color=cfg.get("fill_color", 0),
        )

    # ---- protocol ------------------------------------------------------------------------------

    def identity(self) -> dict[str, object]:
        """What the store records so vectors of different models are never mixed."""
        path = self._weights.path
        from_checkpoint = path is not None and self._weights.tag is None
        return {
            "family": "open_clip",
            "arch": self.arch,
            "pretrained": self._weights.tag or (None if from_checkpoint else RANDOM_WEIGHTS),
            "checkpoint": path.name if from_checkpoint else None,
            "checkpoint_bytes": path.stat().st_size if from_checkpoint else None,
            "dim": self.dim,
            "random_weights": self.random_weights,
        }

    def preprocess(self, image: Image.Image) -> np.ndarray:
        """The model's own resize, center crop and normalisation: (3, S, S) float32.

        Pure Pillow + NumPy for the usual shortest-side config: both release the GIL, so decode
        threads run it in parallel without touching torch's thread pool.
        """
        rgb = to_rgb(image)
        if not self._fast_transform:
            return self._reference_transform(rgb).numpy().astype(np.float32, copy=False)
        side = self.image_size
        width, height = rgb.size
        if width <= height:
            new_w, new_h = side, int(side * height / width)
        else:
            new_w, new_h = int(side * width / height), side
        if (new_w, new_h) != (width, height):
            rgb = rgb.resize((new_w, new_h), self._resample)
        top = round((new_h - side) / 2.0)
        left = round((new_w - side) / 2.0)
        if (new_w, new_h) != (side, side):
            rgb = rgb.crop((left, top, left + side, top + side))
        pixels = np.asarray(rgb, dtype=np.float32) * self._scale - self._offset
        return np.ascontiguousarray(pixels.transpose(2, 0, 1))

    def embed_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """A stacked batch from `preprocess` to (n, dim) float32, rows L2-normalised."""
        pixels = np.asarray(pixels)
        expected = (3, self.image_size, self.image_size)
        if pixels.ndim != 4 or pixels.shape[1:] != expected:
            raise ValueError(f"embed_pixels wants (n, {', '.join(map(str, expected))}), got {pixels.shape}")
        out = np.empty((len(pixels), self.dim), dtype=np.float32)
        for start in range(0, len(pixels), self.batch_size):
            chunk = pixels[start : start + self.batch_size]
            out[start : start + len(chunk)] = self._encode_image_chunk(chunk)
        return l2_normalise(out)

    def _encode_image_chunk(self, chunk: np.ndarray) -> np.ndarray:
        if "image" not in self.modalities:
            raise RuntimeError(f"this {self.model_id} was loaded for texts only (text_only=True)")
        tensor = torch.from_numpy(np.ascontiguousarray(chunk, dtype=np.float32))
        with torch.inference_mode():
            tensor = self._to_device(tensor).to(self._input_dtype)
            features = self._model.encode_image(tensor)
            return features.float().cpu().numpy()

    def _to_device(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.device.type == "cuda":
            # Pinned memory lets the copy overlap with the previous chunk's compute.
            return tensor.pin_memory().to(self.device, non_blocking=True)
        return tensor.to(self.device)

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Convenience for callers without decode threads: preprocess, then embed_pixels."""
        if not images:
            return np.empty((0, self.dim), dtype=np.float32)
        return self.embed_pixels(np.stack([self.preprocess(image) for image in images]))

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim) float32, rows L2-normalised; text beyond the context length is cut by the tokenizer."""
        if isinstance(texts, str):
            raise TypeError("embed_texts wants a sequence of strings, not one string")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            chunk = [self._bounded(text) for text in texts[start : start + self.batch_size]]
            with torch.inference_mode():
                tokens = self._to_device(self._tokenizer(chunk))
                out[start : start + len(chunk)] = self._encode_text(tokens).float().cpu().numpy()
        return l2_normalise(out)

    def _encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """`encode_text` over the positions up to the batch's last end-of-text token only.

        The text tower is causal and pools at end-of-text, so padding after it never reaches the
        output: cutting it gives the same vectors, and a short prompt ("a photo of tractor", the
        keyword vocabulary's) costs ~8 positions instead of 77. Towers of another kind run whole.
        """
        model = self._model
        if not _trimmable(model, self._tokenizer):
            return model.encode_text(tokens)
        length = int((tokens != 0).sum(dim=1).max())  # open_clip's tokenizer pads with 0
        tokens = tokens[:, :length]
        cast = model.transformer.get_cast_dtype()
        x = model.token_embedding(tokens).to(cast) + model.positional_embedding[:length].to(cast)
        x = model.ln_final(model.transformer(x, attn_mask=model.attn_mask[:length, :length]))
        x = open_clip.transformer.text_global_pool(x, tokens, model.text_pool_type)
        projection = model.text_projection
        return projection(x) if isinstance(projection, torch.nn.Linear) else x @ projection

    def _bounded(self, text: str) -> str:
        """Cut huge captions before BPE: only the first `context_length` tokens are used anyway.

        No token spans more than a few dozen characters, so 400 characters per token is a prefix
        that always holds every token the model will see, and tokenising 1 MB of text is avoided.
        """
        if not isinstance(text, str):
            raise TypeError(f"captions must be str, got {type(text).__name__}")
        limit = self.context_length * 400
        if len(text) <= limit:
            return text
        return " ".join(text.split())[:limit]


def _trimmable(model: Any, tokenizer: Any) -> bool:
    """Whether `model` has the causal, end-of-text-pooled text tower `_encode_text` may cut short."""
    return (
        type(model) is open_clip.model.CLIP
        and isinstance(tokenizer, open_clip.tokenizer.SimpleTokenizer)
        and getattr(model, "text_pool_type", None) == "argmax"
        and getattr(model, "attn_mask", None) is not None
    )
