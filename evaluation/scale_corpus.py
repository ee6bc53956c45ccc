"""A corpus of any size with a two-level topic structure, written to disk in chunks for `topics ingest`.

Tens of groups, each a random (near-orthogonal) parent with 2–8 fine topics whose centres have one
pairwise cosine drawn from 0.95–0.97; fine topic sizes fall geometrically by 100×, shuffled; each
topic is elongated along 4 random directions; 3 % of the items are uniform background noise (truth
-1). Every item gets an `image` vector, a `text` vector (the image vector plus a little noise: a
caption near its picture) and a short caption of its group's and its topic's words.

`write_corpus` streams the items into what a user would hand to `topics ingest`: a JSONL manifest
(``id``, ``caption``, ``created_at``) and one ``.npy`` side file per view (see
`indexer.sources.vector_files`), plus the truth (``.truth.npz``: fine topic and group per row) for
scoring. Only one chunk of vectors is in memory at a time, so a million rows need ~100 MB of RAM.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evaluation.synthetic import DIM, Cluster, normalise, random_centres, sample_cluster, sibling_centres

CHUNK = 50_000
_SYLLABLES = "ka lo mi ra te su no vi da pe ru zo fa ni go he ta ye bu ko".split()


@dataclass(frozen=True)
class TwoLevelMixture:
    """Fine topics (`clusters`), the group of each, and words for captions."""

    clusters: list[Cluster]
    group_of: np.ndarray  # (k,) group index of each fine topic
    topic_words: list[list[str]]
    group_words: list[list[str]]
    background: float

    @property
    def weights(self) -> np.ndarray:
        """Probability of each fine topic, then of background noise (last)."""
        sizes = np.array([c.size for c in self.clusters], np.float64)
        return np.append(sizes / sizes.sum() * (1.0 - self.background), self.background)


def two_level_mixture(
    groups: int = 60,
    *,
    children: tuple[int, int] = (2, 8),
    sibling_cosine: tuple[float, float] = (0.95, 0.97),
    size_ratio: float = 100.0,
    noise: float = 0.5,
    elongation: float = 3.0,
    background: float = 0.03,
    dim: int = DIM,
    seed: int = 0,
) -> TwoLevelMixture:
    """The mixture: `groups` parents with `children` fine topics each (about 300 topics by default)."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(children[0], children[1] + 1, size=groups)
    centres, group_of = [], []
    for group, parent in enumerate(random_centres(groups, dim, rng)):
        cosine = float(rng.uniform(*sibling_cosine))
        centres.extend(sibling_centres(parent, int(counts[group]), cosine, rng))
        group_of += [group] * int(counts[group])
    k = len(centres)
    sizes = size_ratio ** (-np.arange(k) / max(k - 1, 1))
    rng.shuffle(sizes)
    clusters = []
    for centre, size in zip(centres, sizes, strict=True):
        axes = np.linalg.qr(rng.standard_normal((dim, 4)))[0].T
        clusters.append(Cluster(np.asarray(centre), max(1, int(size * 1e6)), noise, elongation, axes))
    words = _words(rng, 3 * (k + groups))
    return TwoLevelMixture(
        clusters=clusters,
        group_of=np.asarray(group_of, np.int64),
        topic_words=[words[3 * i : 3 * i + 3] for i in range(k)],
        group_words=[words[3 * (k + g) : 3 * (k + g) + 3] for g in range(groups)],
        background=background,
    )


def _words(rng: np.random.Generator, n: int) -> list[str]:
    """`n` distinct made-up words of three syllables."""
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < n:
        word = "".join(rng.choice(_SYLLABLES, size=3))
        if word not in seen:
            seen.add(word)
            out.append(word)
    return out


@dataclass(frozen=True)
class Chunk:
    """Rows `start`..`start + len(labels)` of a corpus: truth, groups, vectors and captions."""

    start: int
    labels: np.ndarray  # fine topic, -1 background
    groups: np.ndarray  # group, -1 background
    image: np.ndarray
    text: np.ndarray
    captions: list[str]


def chunks(
    mixture: TwoLevelMixture, n: int, *, seed: int = 1, text_noise: float = 0.3, chunk: int = CHUNK
) -> Iterator[Chunk]:
    """`n` items drawn from the mixture, `chunk` at a time."""
    rng = np.random.default_rng(seed)
    weights = mixture.weights
    k = len(mixture.clusters)
    dim = mixture.clusters[0].centre.shape[0]
    for start in range(0, n, chunk):
        count = min(chunk, n - start)
        drawn = rng.choice(k + 1, size=count, p=weights)
        image = np.empty((count, dim), np.float32)
        for topic in np.unique(drawn):
            rows = drawn == topic
            if topic == k:
                image[rows] = normalise(rng.standard_normal((int(rows.sum()), dim)))
            else:
                image[rows] = sample_cluster(mixture.clusters[topic], rng, int(rows.sum()))
        jitter = rng.standard_normal(image.shape).astype(np.float32) * (text_noise / np.sqrt(dim))
        labels = np.where(drawn == k, -1, drawn).astype(np.int64)
        groups = np.where(labels >= 0, mixture.group_of[np.maximum(labels, 0)], -1)
        yield Chunk(
            start=start,
            labels=labels,
            groups=groups,
            image=image,
            text=normalise(image + jitter).astype(np.float32),
            captions=[_caption(mixture, int(t), rng) for t in labels],
        )


def _caption(mixture: TwoLevelMixture, topic: int, rng: np.random.Generator) -> str:
    if topic < 0:
        pool = mixture.topic_words[int(rng.integers(len(mixture.topic_words)))]
        return " ".join(rng.choice(pool, size=3))
    group = mixture.group_words[int(mixture.group_of[topic])]
    return " ".join([*rng.choice(group, size=2), *rng.choice(mixture.topic_words[topic], size=3)])


def write_corpus(
    stem: Path,
    mixture: TwoLevelMixture,
    n: int,
    *,
    model_id: str,
    seed: int = 1,
    first_id: int = 0,
    created_at: str = "2026-11-01T00:00:00+00:00",
) -> dict[str, Path]:
    """`stem`.jsonl, `stem`.image.npy, `stem`.text.npy, `stem`.vectors.json and `stem`.truth.npz.

    Row ids are ``first_id``, ``first_id + 1``, ...: a second corpus with another `first_id` and seed
    is a later day of the same stream.
    """
    stem.parent.mkdir(parents=True, exist_ok=True)
    dim = mixture.clusters[0].centre.shape[0]
    paths = {view: stem.with_name(f"{stem.name}.{view}.npy") for view in ("image", "text")}
    arrays = {
        view: np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, dim))
        for view, path in paths.items()
    }
    labels = np.empty(n, np.int64)
    groups = np.empty(n, np.int64)
    manifest = stem.with_name(f"{stem.name}.jsonl")
    with manifest.open("w", encoding="utf-8") as out:
        for part in chunks(mixture, n, seed=seed):
            rows = slice(part.start, part.start + len(part.labels))
            arrays["image"][rows], arrays["text"][rows] = part.image, part.text
            labels[rows], groups[rows] = part.labels, part.groups
            out.writelines(
                json.dumps({"id": str(first_id + part.start + i), "caption": c, "created_at": created_at})
                + "\n"
                for i, c in enumerate(part.captions)
            )
    for array in arrays.values():
        array.flush()
    del arrays
    side = stem.with_name(f"{stem.name}.vectors.json")
    side.write_text(json.dumps({"model": model_id}), encoding="utf-8")
    truth = stem.with_name(f"{stem.name}.truth.npz")
    np.savez(truth, labels=labels, groups=groups)
    return {"manifest": manifest, **paths, "vectors_json": side, "truth": truth}
