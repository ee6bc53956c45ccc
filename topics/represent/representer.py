"""The `Representer`: a run's items streamed in batches, every topic's representation at the end."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from indexer.items import ItemId
from topics.fit.geometry import group_rows
from topics.ids import OUTLIER
from topics.represent.captioner import ImageCaptioner
from topics.represent.exemplars import Exemplar, ExemplarPicker, typicality
from topics.represent.keywords import EmbedderUnavailable, TextEmbedder, Vocabulary
from topics.represent.representation import Representation, RepresentOptions, Scored
from topics.represent.tiles import build_tile, tile_fingerprint, tile_is_current
from topics.represent.words import WordCounter, label_from_words, load_word_list

log = logging.getLogger(__name__)


@dataclass
class _TopicTally:
    images: int = 0
    captions: int = 0
    image_sum: np.ndarray | None = None  # for the CLIP-space centroid keywords need


class Representer:
    """Streams a run's items and computes every topic's representation at the end.

    Loading the caption model happens here, so a bad setting fails before the long scroll.
    `embedder` (CLIP, the model that made `image_vectors`) enables keywords; without it there are none.
    """

    def __init__(
        self,
        centroids: Mapping[int, np.ndarray],
        options: RepresentOptions | None = None,
        *,
        embedder: TextEmbedder | None = None,
        captioner: ImageCaptioner | None = None,
        on_step: Callable[[str], None] | None = None,
    ) -> None:
        self.options = options = options or RepresentOptions()
        self._on_step = on_step or (lambda step: None)
        self._centroids = {
            int(t): np.asarray(c, np.float32) for t, c in centroids.items() if int(t) != OUTLIER
        }
        self._embedder = embedder
        self._captioner = captioner
        if captioner is None and options.captioner_model:
            self._captioner = ImageCaptioner(options.captioner_model, device=options.device)
        stop_words = list(options.stop_words)
        for path in options.stop_word_files:
            stop_words += load_word_list(path)
        self._words = WordCounter(
            stop_words=stop_words, min_df=options.min_df, max_caption_chars=options.max_caption_chars
        )
        picker = {"k": options.n_exemplars, "diversity": options.diversity, "pool_size": options.pool_size}
        self._images = ExemplarPicker(**picker)
        self._texts = ExemplarPicker(**picker)
        self._tally: dict[int, _TopicTally] = {}

    def add_batch(
        self,
        topic_ids: Sequence[int] | np.ndarray,
        item_ids: Sequence[ItemId],
        vectors: np.ndarray,
        *,
        image_vectors: np.ndarray | None = None,
        text_vectors: np.ndarray | None = None,
        captions: Sequence[str | None] | None = None,
        image_paths: Sequence[str | None] | None = None,
        caption_terms: Sequence[Sequence[str]] | None = None,
    ) -> None:
        """Feed one scrolled batch: topics, ids, clustering-space vectors, and what each item has;
        `caption_terms`: the captions' `terms`, when another representer has analysed them."""
        topic_ids = np.asarray(topic_ids, dtype=np.int64)
        n = len(topic_ids)
        _check_lengths(
            n,
            item_ids=item_ids,
            vectors=vectors,
            image_vectors=image_vectors,
            text_vectors=text_vectors,
            captions=captions,
            image_paths=image_paths,
        )
        if captions is not None:
            self._words.add(topic_ids, captions, terms=caption_terms)
        scores = typicality(vectors, topic_ids, self._centroids)
        has_image = _nonzero_rows(image_vectors, n)
        has_caption = _nonzero_rows(text_vectors, n) if text_vectors is not None else _present(captions, n)
        self._tally_batch(topic_ids, image_vectors, has_image, has_caption)
        if image_vectors is not None:
            self._images.add(
                topic_ids, item_ids, np.where(has_image, scores, np.nan), image_vectors, image_paths
            )
        if captions is not None:
            shown = [(c or "")[:500] for c in captions]
            text = text_vectors if text_vectors is not None else vectors
            self._texts.add(topic_ids, item_ids, np.where(has_caption, scores, np.nan), text, shown)

    def terms(self, captions: Sequence[str | None]) -> list[list[str]]:
        """The captions' terms as this representer counts them (`WordCounter.terms`)."""
        return self._words.terms(captions)

    def _tally_batch(
        self,
        topic_ids: np.ndarray,
        image_vectors: np.ndarray | None,
        has_image: np.ndarray,
        has_caption: np.ndarray,
    ) -> None:
        for topic, rows in group_rows(topic_ids):
            if topic not in self._centroids:
                continue
            tally = self._tally.setdefault(topic, _TopicTally())
            with_image = rows[has_image[rows]]
            tally.images += len(with_image)
            tally.captions += int(has_caption[rows].sum())
            if image_vectors is not None and len(with_image):
                total = image_vectors[with_image].sum(axis=0, dtype=np.float64)
                tally.image_sum = total if tally.image_sum is None else tally.image_sum + total

    def finish(self) -> dict[int, Representation]:
        """Every topic with a centroid gets a representation; call once, after the last batch."""
        images = self._images.pick()
        texts = self._texts.pick()
        generated = self._generate_captions(images)
        words = self._words.top_words(self.options.n_words, typical=self._texts.pooled())
        keywords = self._keywords(words)
        self._on_step("tiles")
        tiles = self._tiles(images)
        return {
            topic: self._represent(
                topic,
                images.get(topic, []),
                texts.get(topic, []),
                words.get(topic, []),
                keywords.get(topic, []),
                generated.get(topic, []),
                tiles.get(topic, (None, None)),
            )
            for topic in sorted(self._centroids)
        }

    def _image_only(self, topic: int) -> bool:
        tally = self._tally.get(topic)
        return tally is not None and tally.images > 0 and tally.captions == 0

    def _generate_captions(self, images: Mapping[int, list[Exemplar]]) -> dict[int, list[str]]:
        if self._captioner is None:
            return {}
        generated = {}
        for topic, picked in images.items():
            if self._image_only(topic):
                texts = self._captioner.caption_paths([e.shown for e in picked])
                generated[topic] = [t for t in texts if t]
                self._words.add([topic] * len(generated[topic]), generated[topic])
        return generated

    def _keywords(self, words: Mapping[int, list[Scored]]) -> dict[int, list[Scored]]:
        """Vocabulary terms nearest each topic's image centroid. Terms in priority order: the user's
        file, each topic's own top words, then the corpus's most frequent terms."""
        with_images = [t for t, tally in self._tally.items() if tally.image_sum is not None]
        if self._embedder is None or not with_images:
            return {}
        terms = load_word_list(self.options.vocabulary_file) if self.options.vocabulary_file else []
        terms += [w for scored in words.values() for w, _ in scored]
        terms += self._words.frequent_terms(self.options.max_vocabulary)
        self._on_step("keywords")
        try:
            vocabulary = Vocabulary.build(
                terms,
                self._embedder,
                cache_dir=self.options.cache_dir,
                budget=self.options.vocabulary_budget,
                on_batch=lambda done, todo: self._on_step(f"keywords: embedded {done}/{todo} new terms"),
            )
        except EmbedderUnavailable as error:
            log.warning("no keywords this run: %s", error)
            return {}
        centroids = np.stack([self._tally[t].image_sum for t in with_images]).astype(np.float32)
        return dict(
            zip(with_images, vocabulary.keywords_many(centroids, self.options.n_keywords), strict=True)
        )

    def _represent(
        self,
        topic: int,
        images: list[Exemplar],
        texts: list[Exemplar],
        words: list[Scored],
        keywords: list[Scored],
        generated: list[str],
        tile: tuple[str | None, str | None],
    ) -> Representation:
        return Representation(
            topic_id=topic,
            label=self._label(topic, words, keywords, texts),
            words=tuple(words),
            keywords=tuple(keywords),
            exemplars=tuple(e.item_id for e in images),
            captions=tuple(e.shown or "" for e in texts),
            caption_items=tuple(e.item_id for e in texts),
            generated_captions=tuple(generated),
            tile=tile[0],
            tile_fingerprint=tile[1],
        )

    def _label(self, topic: int, words: list[Scored], keywords: list[Scored], texts: list[Exemplar]) -> str:
        """Words that name the topic's typical captions; keywords for a topic without captions."""
        captions = [self._words.caption_terms(e.shown) for e in texts]
        return label_from_words(words, captions=captions) or label_from_words(keywords) or f"topic {topic}"

    def _tiles(self, images: Mapping[int, list[Exemplar]]) -> dict[int, tuple[str | None, str | None]]:
        if self.options.tiles_dir is None:
            return {}
        work = [(topic, picked) for topic, picked in images.items() if picked]
        # Decoding and resampling release the GIL: threads overlap them across topics.
        with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
            built = pool.map(lambda job: self._tile(*job), work)
            return {topic: tile for (topic, _), tile in zip(work, built, strict=True)}

    def _tile(self, topic: int, images: list[Exemplar]) -> tuple[str | None, str | None]:
        paths = [e.shown for e in images]
        cell = self.options.tile_cell
        fingerprint = tile_fingerprint([e.item_id for e in images], paths, cell=cell, grid=3)
        out_path = Path(self.options.tiles_dir) / f"{self.options.tile_prefix}-{topic}.jpg"
        if not tile_is_current(out_path, fingerprint):
            build_tile(paths, out_path, cell=cell, grid=3, fingerprint=fingerprint)
        return str(out_path), fingerprint


def _nonzero_rows(vectors: np.ndarray | None, n: int) -> np.ndarray:
    if vectors is None:
        return np.zeros(n, dtype=bool)
    return np.any(vectors != 0, axis=1)


def _present(captions: Sequence[str | None] | None, n: int) -> np.ndarray:
    if captions is None:
        return np.zeros(n, dtype=bool)
    return np.array([bool(c and c.strip()) for c in captions], dtype=bool)


def _check_lengths(n: int, **arrays: Any) -> None:
    for name, value in arrays.items():
        if value is not None and len(value) != n:
            raise ValueError(f"{name} has {len(value)} rows but topic_ids has {n}")
