"""Keywords: vocabulary terms nearest a topic's image centroid in CLIP's shared text/image space.

This names topics whose members have no captions. The vocabulary is the corpus's own caption terms
plus an optional user file (one term a line). Term vectors are cached on disk per model, term by
term, so a growing corpus embeds only its new terms on the next run. Embedding is what costs (the
CLIP text tower, on the CPU often): a run embeds at most `budget` new terms, in the caller's priority
order, and uses the cached rest, so a first run stays bounded and the vocabulary completes over runs.
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from indexer.atomic import atomic_file
from indexer.embed.base import l2_normalise
from indexer.health import quarantine
from topics.errors import TopicsError

Scored = tuple[str, float]
DEFAULT_TEMPLATE = "a photo of {}"  # CLIP ranks bare words worse than short captions containing them


class EmbedderUnavailable(TopicsError, RuntimeError):
    """The text model could not be loaded: no keywords this run (words and exemplars still are made)."""


class TextEmbedder(Protocol):
    model_id: str

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(n, d) float32, rows L2-normalised."""


class Vocabulary:
    """Terms and their unit text vectors; `keywords` ranks terms by cosine to a centroid."""

    def __init__(self, terms: Sequence[str], vectors: np.ndarray) -> None:
        if len(terms) != len(vectors):
            raise ValueError(f"{len(terms)} terms but {len(vectors)} vectors")
        self.terms = list(terms)
        self.vectors = l2_normalise(vectors) if len(terms) else np.zeros((0, 0), np.float32)

    def __len__(self) -> int:
        return len(self.terms)

    @classmethod
    def build(
        cls,
        terms: Iterable[str],
        embedder: TextEmbedder,
        *,
        cache_dir: Path | None = None,
        template: str = DEFAULT_TEMPLATE,
        batch_size: int = 256,
        budget: int | None = None,
        on_batch: Callable[[int, int], None] | None = None,
    ) -> Vocabulary:
        """Embed `terms` (deduplicated, order kept), reusing and extending the per-model disk cache.

        At most `budget` terms missing from the cache are embedded (the first ones: put the most
        wanted first); the others are left out of this vocabulary. `on_batch(done, todo)` reports.
        """
        unique = list(dict.fromkeys(t.strip() for t in terms if t and t.strip()))
        cache = _VectorCache(cache_dir, embedder.model_id, template) if cache_dir else None
        known = cache.load() if cache else {}
        missing = [t for t in unique if t not in known][:budget]
        for start in range(0, len(missing), batch_size):
            chunk = missing[start : start + batch_size]
            vectors = np.asarray(embedder.embed_texts([template.format(t) for t in chunk]), np.float32)
            known.update(zip(chunk, vectors, strict=True))
            if on_batch is not None:
                on_batch(start + len(chunk), len(missing))
        if cache and missing:
            cache.save(known)
        unique = [t for t in unique if t in known]
        vectors = np.stack([known[t] for t in unique]) if unique else np.zeros((0, 0), np.float32)
        return cls(unique, vectors)

    def keywords(self, centroid: np.ndarray, k: int = 10) -> list[Scored]:
        """The `k` terms nearest `centroid` (any scale; it is normalised), nearest first."""
        return self.keywords_many(np.asarray(centroid)[None, :], k)[0]

    def keywords_many(self, centroids: np.ndarray, k: int = 10) -> list[list[Scored]]:
        """`keywords` for each row of `centroids`, in one matrix product."""
        if not self.terms:
            return [[] for _ in range(len(centroids))]
        if centroids.shape[1] != self.vectors.shape[1]:
            raise ValueError(
                f"centroid dim {centroids.shape[1]} differs from vocabulary dim {self.vectors.shape[1]}: "
                "keywords need centroids in the text embedder's space"
            )
        sims = l2_normalise(centroids) @ self.vectors.T
        k = min(k, len(self.terms))
        result = []
        for row in sims:
            top = np.argpartition(-row, k - 1)[:k]
            top = top[np.argsort(-row[top], kind="stable")]
            result.append([(self.terms[i], float(row[i])) for i in top])
        return result


class _VectorCache:
    """term -> vector for one model and prompt template, in one npz file written atomically."""

    def __init__(self, cache_dir: Path, model_id: str, template: str) -> None:
        key = hashlib.sha256(f"{model_id}|{template}".encode()).hexdigest()[:16]
        self.path = Path(cache_dir) / f"vocabulary-{key}.npz"
        self.model_id = model_id

    def load(self) -> dict[str, np.ndarray]:
        """The cached vectors; none when there is no cache yet, or it is another model's or damaged."""
        try:
            with np.load(self.path, allow_pickle=False) as data:
                if str(data["model_id"]) != self.model_id:
                    return {}
                terms, vectors = data["terms"].tolist(), data["vectors"]
            if vectors.ndim != 2 or not np.isfinite(vectors).all():
                raise ValueError(f"vectors of shape {vectors.shape}, or not finite")
            return dict(zip(terms, vectors, strict=True))
        except FileNotFoundError:
            return {}
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as error:
            quarantine(self.path, f"{type(error).__name__}: {error}", "its terms are embedded again")
            return {}

    def save(self, vectors: dict[str, np.ndarray]) -> None:
        with atomic_file(self.path) as handle:
            np.savez(
                handle,
                model_id=np.array(self.model_id),
                terms=np.array(list(vectors), dtype=str),
                vectors=np.stack(list(vectors.values())).astype(np.float32),
            )
