"""Topic representation cost: time and peak memory to represent 200 topics over 100k items.

    python bench/represent.py [--items 100000] [--topics 200] [--themes 20] [--dim 512] [--batch 1000]

Synthetic corpus, streamed in batches the way the recluster job scrolls the store (never all in
memory): unequal topic sizes, 5% outliers, a tenth of the topics image-only and a tenth
caption-only; captions mix each topic's own words with shared noise words, hashtags and URLs;
vectors scatter around topic centres. Each topic has a dozen small JPEGs on disk that its items
point to, so tiles load real files (only exemplars are ever opened). Keywords use a lookup-table
text embedder standing in for CLIP's text tower: the real tower's cost depends on the model and is
paid once per new term (vectors are cached per model), so it is reported as a count, not timed.
Target: the whole run (all batches + finish) within 30 s. The recluster represents themes from the
same scroll (each theme from its topics' items: here runs of topics/themes consecutive topics); that
second representer is timed apart and reported as a ratio to the topics' own cost, and the target
counts both.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from indexer.embed.base import l2_normalise
from topics.represent import Representer, RepresentOptions

TARGET_S = 30.0
IMAGES_PER_TOPIC = 12
NOISE_WORDS = [
    "photo",
    "today",
    "love",
    "great",
    "day",
    "new",
    "look",
    "best",
    "time",
    "amazing",
    "nice",
    "world",
    "life",
    "happy",
]
SYLLABLES = [
    "ka",
    "ro",
    "mi",
    "tu",
    "sel",
    "van",
    "dor",
    "pri",
    "el",
    "os",
    "ben",
    "fa",
    "lu",
    "ter",
    "gon",
    "ia",
]


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


class Corpus:
    """Topic centres, words and image files; batches are generated on demand, deterministically."""

    def __init__(self, items: int, topics: int, dim: int, folder: Path, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.items, self.topics, self.dim, self.seed = items, topics, dim, seed
        self.centres = l2_normalise(rng.normal(size=(topics, dim)))
        sizes = rng.pareto(1.2, topics) + 1.0  # unequal sizes: a few big topics, a long tail
        self.weights = sizes / sizes.sum()
        kinds = rng.permutation(np.array(["mixed"] * topics, dtype=object))
        kinds[: topics // 10] = "image-only"
        kinds[topics // 10 : topics // 5] = "caption-only"
        self.kinds = rng.permutation(kinds)
        self.words = [[_word(rng) for _ in range(10)] for _ in range(topics)]
        self.images = [self._images(folder, t, rng) for t in range(topics)]

    def _images(self, folder: Path, topic: int, rng: np.random.Generator) -> list[str]:
        paths = []
        for j in range(IMAGES_PER_TOPIC):
            path = folder / f"t{topic}-{j}.jpg"
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            size = (int(rng.integers(120, 320)), int(rng.integers(120, 320)))
            Image.new("RGB", size, colour).save(path, quality=85)
            paths.append(str(path))
        return paths

    def centroids(self) -> dict[int, np.ndarray]:
        return {t: self.centres[t] for t in range(self.topics)}

    def batches(self, batch: int) -> Iterator[dict[str, object]]:
        rng = np.random.default_rng(self.seed + 1)
        for start in range(0, self.items, batch):
            yield self._batch(rng, start, min(batch, self.items - start))

    def _batch(self, rng: np.random.Generator, start: int, n: int) -> dict[str, object]:
        topics = rng.choice(self.topics, size=n, p=self.weights)
        labels = np.where(rng.random(n) < 0.05, -1, topics)
        base = np.where(
            labels[:, None] >= 0, self.centres[topics], l2_normalise(rng.normal(size=(n, self.dim)))
        )
        image = l2_normalise(base + 0.04 * rng.normal(size=(n, self.dim))).astype(np.float32)
        text = l2_normalise(base + 0.05 * rng.normal(size=(n, self.dim))).astype(np.float32)
        kinds = self.kinds[topics]
        image[kinds == "caption-only"] = 0
        text[kinds == "image-only"] = 0
        captions = [
            None if k == "image-only" else self._caption(rng, t) for t, k in zip(topics, kinds, strict=True)
        ]
        paths = [
            None if k == "caption-only" else self.images[t][rng.integers(IMAGES_PER_TOPIC)]
            for t, k in zip(topics, kinds, strict=True)
        ]
        return {
            "topic_ids": labels,
            "item_ids": [f"item-{start + i}" for i in range(n)],
            "vectors": l2_normalise(image + text),
            "image_vectors": image,
            "text_vectors": text,
            "captions": captions,
            "image_paths": paths,
        }

    def _caption(self, rng: np.random.Generator, topic: int) -> str:
        own, noise = self.words[topic], NOISE_WORDS
        words = [
            own[i] if rng.random() < 0.6 else noise[i % len(noise)]
            for i in rng.integers(0, 10, rng.integers(6, 20))
        ]
        if rng.random() < 0.3:
            words.append(f"#{own[0]}")
        if rng.random() < 0.1:
            words.append("https://example.com/p/123")
        return " ".join(words)


def _word(rng: np.random.Generator) -> str:
    return "".join(rng.choice(SYLLABLES, size=3))


class LookupTextEmbedder:
    """Stand-in for CLIP's text tower: a fixed random vector per word, summed (cheap and deterministic)."""

    model_id = "bench:lookup"

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.terms_embedded = 0
        self._table: dict[str, np.ndarray] = {}
        self._rng = np.random.default_rng(7)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        self.terms_embedded += len(texts)
        rows = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.split():
                if word not in self._table:
                    self._table[word] = self._rng.normal(size=self.dim).astype(np.float32)
                rows[i] += self._table[word]
        return l2_normalise(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--topics", type=int, default=200)
    parser.add_argument("--themes", type=int, default=20)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-represent-") as tmp:
        root = Path(tmp)
        (root / "images").mkdir()
        corpus = Corpus(args.items, args.topics, args.dim, root / "images")
        embedder = LookupTextEmbedder(args.dim)
        options = RepresentOptions(tiles_dir=root / "tiles", cache_dir=root / "cache", device="cpu")
        batches = corpus.batches(args.batch)  # lazy: one batch in memory at a time, like a scroll
        baseline = rss_mib()

        started = time.perf_counter()
        representer = Representer(corpus.centroids(), options, embedder=embedder)
        theme_of, theme_centroids = _themes(corpus.centroids(), args.themes)
        by_theme = Representer(theme_centroids, replace(options, tile_prefix="theme"), embedder=embedder)
        feeding = cpu = theming = 0.0
        for batch in batches:
            fed, cpu_fed = time.perf_counter(), time.process_time()
            representer.add_batch(**batch)
            feeding += time.perf_counter() - fed
            themed = time.perf_counter()
            topic_ids = np.asarray(batch["topic_ids"])
            by_theme.add_batch(**{**batch, "topic_ids": np.where(topic_ids >= 0, theme_of[topic_ids], -1)})
            theming += time.perf_counter() - themed
            cpu += time.process_time() - cpu_fed
        finishing, cpu_finishing = time.perf_counter(), time.process_time()
        result = representer.finish()
        done = time.perf_counter()
        by_theme.finish()
        theming += time.perf_counter() - done
        cpu += time.process_time() - cpu_finishing
        generating = (finishing - started) - feeding - theming  # the synthetic generator's own time

        topics_s = feeding + (done - finishing)
        represent_s = topics_s + theming
        print(
            f"items: {args.items} items, topics: {args.topics} topics, themes: {args.themes}, dim: {args.dim}"
        )
        print(f"represent_total: {represent_s:.2f} s (target <= {TARGET_S:.0f} s; topics and themes)")
        print(f"represent_topics: {topics_s:.2f} s")
        print(
            f"represent_themes_ratio: {theming / topics_s:.2f} x the topics' time (measured in the same run)"
        )
        print(f"represent_cpu: {cpu:.2f} s (all threads; wall exceeds it when the machine is shared)")
        print(f"add_batch_total: {feeding:.2f} s")
        print(f"finish: {done - finishing:.2f} s")
        print(f"corpus_generation_excluded: {generating:.2f} s")
        print(f"peak_rss: {rss_mib():.0f} MiB (baseline before representing {baseline:.0f} MiB)")
        print(f"vocabulary_terms_embedded: {embedder.terms_embedded} terms")
        print(f"tiles_written: {len(list((root / 'tiles').glob('*.jpg')))} tiles")
        _summary(result, corpus)
    return 0


def _themes(centroids: dict[int, np.ndarray], n_themes: int) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Theme of each topic (runs of consecutive topics) and each theme's centroid."""
    ids = sorted(centroids)
    theme_of = np.full(max(ids) + 1, -1, np.int64)
    theme_of[ids] = np.arange(len(ids)) * n_themes // len(ids)
    members = {t: [centroids[k] for k in ids if theme_of[k] == t] for t in range(n_themes)}
    return theme_of, {t: l2_normalise(np.sum(rows, axis=0)) for t, rows in members.items() if rows}


def _summary(result: dict, corpus: Corpus) -> None:
    with_words = [r for r in result.values() if r.words]
    hits = sum(r.words[0][0].lstrip("#") in corpus.words[r.topic_id] for r in with_words)
    print(
        f"topics_with_words: {len(with_words)} topics; top word is the topic's own: {hits}/{len(with_words)}"
    )
    print(f"topics_with_exemplars: {sum(len(r.exemplars) == 9 for r in result.values())} topics with 9")
    sample = result[min(result)]
    keywords = [k for k, _ in sample.keywords[:3]]
    print(f"example: topic {sample.topic_id} label={sample.label!r} keywords={keywords}")


if __name__ == "__main__":
    sys.exit(main())
