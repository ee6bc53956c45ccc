"""Synthetic corpora on the unit sphere, for tests and benchmarks of clustering and topic identity.

A corpus is a mixture of K clusters on the d-sphere (d = 512 by default, CLIP's width). Each cluster
has a centre, a size and a spread; points are ``normalise(centre + noise)``. ``noise`` is the expected
norm of the noise vector relative to the unit centre, so the mean cosine of a member to its centre is
about ``1 / sqrt(1 + noise²)`` whatever the dimension (0.3 → 0.96, 0.8 → 0.78).

Easy mixtures (random centres, which are near-orthogonal in 512-d, equal sizes, isotropic noise)
are separable by any method. The *hard* mixture (:func:`hard_mixture`) adds what real embeddings
have: sibling clusters whose centres have cosine 0.95–0.97, sizes that differ 100× between the
largest and the smallest cluster, anisotropic spread (a few elongated directions per cluster) and
background noise points (truth label -1).

The *two-level* mixture (:func:`two_level_mixture`) is for themes and topics: groups of 2–4 sibling
topics (siblings at cosine 0.95–0.97, groups near-orthogonal), with the hard mixture's unequal sizes,
anisotropy and background noise; its corpus carries the group of each item beside its topic.

Drift scenarios (:func:`drift_scenario`) give the same items over successive runs: ``steady``
(a few new items from the same clusters), ``emerge`` (a new cluster arrives), ``vanish`` (a cluster's
items are deleted), ``split`` (one cluster's items drift apart into two groups) and ``merge`` (two
clusters' items drift together). Items keep their ids across runs, and a drifted item keeps its id
with a new vector, as after re-embedding; identity is judged by membership, so this is the signal
the identity matcher must follow. Each scenario states the lineage events it should produce, in
truth labels. :func:`store_corpus` writes a corpus into an `items` collection and keeps each stored
item's payload (its assignment history) when only its vectors drift.

Everything is deterministic given the seed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from indexer.store.base import Backend, CollectionSchema, Point, VectorStore
from topics import catalog

DIM = 512
ScenarioName = Literal["steady", "emerge", "vanish", "split", "merge"]
SCENARIOS: tuple[ScenarioName, ...] = ("steady", "emerge", "vanish", "split", "merge")
_ID_NAMESPACE = uuid.UUID("0b5f3a0e-61d4-5b39-8f0e-4c1a9d3e7b21")


def item_id(index: int, namespace: str = "synthetic") -> str:
    """A stable UUID for synthetic item number `index` (the same across runs and calls)."""
    return str(uuid.uuid5(_ID_NAMESPACE, f"{namespace}:{index}"))


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero)."""
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.where(norms == 0, 1.0, norms)


@dataclass(frozen=True)
class Cluster:
    """One mixture component: unit centre, member count, isotropic noise and elongated directions."""

    centre: np.ndarray
    size: int
    noise: float = 0.5
    elongation: float = 1.0  # noise scale factor along `axes` (1 = isotropic)
    axes: np.ndarray | None = None  # (r, d) orthonormal directions of elongation


@dataclass(frozen=True)
class Corpus:
    """Items of one run: ids, unit vectors (float32) and truth labels (-1 = background noise)."""

    ids: list[str]
    vectors: np.ndarray
    labels: np.ndarray
    groups: np.ndarray | None = None  # coarse truth (two-level mixtures): the group of each item's label

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class ExpectedEvent:
    """A lineage event a scenario should produce, in truth labels."""

    kind: str
    before: tuple[int, ...]
    after: tuple[int, ...]


@dataclass(frozen=True)
class DriftScenario:
    """Successive corpora of the same items and the events expected between consecutive runs."""

    name: str
    runs: list[Corpus]
    expected: list[list[ExpectedEvent]] = field(default_factory=list)  # expected[i]: run i -> run i+1


def random_centres(k: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """K random unit vectors (near-orthogonal when dim is large)."""
    return normalise(rng.standard_normal((k, dim))).astype(np.float64)


def sibling_centres(parent: np.ndarray, n: int, cosine: float, rng: np.random.Generator) -> np.ndarray:
    """`n` unit vectors whose pairwise cosine is exactly `cosine`, all near `parent`.

    c_i = sqrt(cos)·p + sqrt(1-cos)·u_i with u_i orthonormal and orthogonal to p.
    """
    if not 0.0 < cosine < 1.0:
        raise ValueError(f"cosine must be in (0, 1), got {cosine}")
    dim = parent.shape[0]
    basis = np.linalg.qr(np.column_stack([parent, rng.standard_normal((dim, n))]))[0]
    directions = basis[:, 1 : n + 1].T  # orthonormal, orthogonal to parent
    unit_parent = parent / np.linalg.norm(parent)
    return np.sqrt(cosine) * unit_parent + np.sqrt(1.0 - cosine) * directions


def sample_cluster(cluster: Cluster, rng: np.random.Generator, n: int | None = None) -> np.ndarray:
    """Points of one cluster on the sphere (float32)."""
    count = cluster.size if n is None else n
    dim = cluster.centre.shape[0]
    sigma = cluster.noise / np.sqrt(dim)
    noise = rng.standard_normal((count, dim)) * sigma
    if cluster.axes is not None and cluster.elongation != 1.0:
        along = noise @ cluster.axes.T  # (count, r) component along the elongated axes
        noise += (cluster.elongation - 1.0) * along @ cluster.axes
    return normalise(cluster.centre + noise).astype(np.float32)


def sample_mixture(
    clusters: list[Cluster], rng: np.random.Generator, *, background: int = 0, start: int = 0
) -> Corpus:
    """Draw every cluster's members, plus `background` uniform points on the sphere, shuffled."""
    dim = clusters[0].centre.shape[0]
    parts = [sample_cluster(c, rng) for c in clusters]
    labels = [np.full(c.size, k, dtype=np.int64) for k, c in enumerate(clusters)]
    if background:
        parts.append(normalise(rng.standard_normal((background, dim))).astype(np.float32))
        labels.append(np.full(background, -1, dtype=np.int64))
    vectors = np.concatenate(parts)
    truth = np.concatenate(labels)
    order = rng.permutation(len(truth))
    ids = [item_id(start + i) for i in range(len(truth))]
    return Corpus(ids=ids, vectors=vectors[order], labels=truth[order])


def easy_mixture(k: int = 10, n: int = 2_000, *, dim: int = DIM, noise: float = 0.5, seed: int = 0) -> Corpus:
    """K random centres, equal sizes, isotropic noise: the baseline every method should solve."""
    rng = np.random.default_rng(seed)
    centres = random_centres(k, dim, rng)
    sizes = _split_evenly(n, k)
    return sample_mixture([Cluster(c, s, noise) for c, s in zip(centres, sizes, strict=True)], rng)


def hard_clusters(
    k: int = 20,
    n: int = 10_000,
    *,
    dim: int = DIM,
    noise: float = 0.5,
    sibling_cosine: tuple[float, float] = (0.95, 0.97),
    size_ratio: float = 100.0,
    elongation: float = 3.0,
    seed: int = 0,
) -> list[Cluster]:
    """The hard mixture's components: sibling pairs, 100× size range, anisotropic spread.

    Half the clusters come in sibling pairs (cosine drawn from `sibling_cosine`); sizes fall
    geometrically from the largest to the smallest by `size_ratio`; each cluster is elongated by
    `elongation` along 4 random directions.
    """
    rng = np.random.default_rng(seed)
    n_pairs = k // 4
    parents = random_centres(k - n_pairs, dim, rng)
    centres = []
    for p in parents[:n_pairs]:
        centres.extend(sibling_centres(p, 2, float(rng.uniform(*sibling_cosine)), rng))
    centres.extend(parents[n_pairs:])
    sizes = _geometric_sizes(n, k, size_ratio)
    rng.shuffle(sizes)
    clusters = []
    for centre, size in zip(centres, sizes, strict=True):
        axes = np.linalg.qr(rng.standard_normal((dim, 4)))[0].T
        clusters.append(Cluster(np.asarray(centre), int(size), noise, elongation, axes))
    return clusters


def hard_mixture(k: int = 20, n: int = 10_000, *, background: float = 0.05, seed: int = 0, **kw) -> Corpus:
    """The hard scenario: siblings at cosine 0.95–0.97, 100× sizes, anisotropy, noise points.

    `n` counts cluster members; `background` adds that share of `n` as uniform noise (label -1).
    """
    clusters = hard_clusters(k, n, seed=seed, **kw)
    rng = np.random.default_rng(seed + 1)
    return sample_mixture(clusters, rng, background=int(background * n))


def two_level_mixture(
    groups: int = 8,
    n: int = 10_000,
    *,
    siblings: tuple[int, int] = (2, 4),
    sibling_cosine: tuple[float, float] = (0.95, 0.97),
    dim: int = DIM,
    noise: float = 0.5,
    size_ratio: float = 30.0,
    elongation: float = 3.0,
    background: float = 0.05,
    seed: int = 0,
) -> Corpus:
    """Groups of sibling topics: `labels` are the topics, `groups` the group of each (-1: noise).

    Each group has a random (near-orthogonal) parent and 2–4 children at one pairwise cosine drawn
    from `sibling_cosine`; topic sizes fall geometrically by `size_ratio`, shuffled; each topic is
    elongated along 4 random directions; `background` adds that share of `n` as uniform noise.
    """
    rng = np.random.default_rng(seed)
    counts = rng.integers(siblings[0], siblings[1] + 1, size=groups)
    centres, parent_of = [], []
    for group, parent in enumerate(random_centres(groups, dim, rng)):
        centres.extend(sibling_centres(parent, int(counts[group]), float(rng.uniform(*sibling_cosine)), rng))
        parent_of += [group] * int(counts[group])
    sizes = _geometric_sizes(n, len(centres), size_ratio)
    rng.shuffle(sizes)
    clusters = []
    for centre, size in zip(centres, sizes, strict=True):
        axes = np.linalg.qr(rng.standard_normal((dim, 4)))[0].T
        clusters.append(Cluster(np.asarray(centre), int(size), noise, elongation, axes))
    corpus = sample_mixture(clusters, rng, background=int(background * n))
    group_of = np.append(np.asarray(parent_of, np.int64), -1)  # index -1: background stays -1
    return replace(corpus, groups=group_of[corpus.labels])


def stream_mixture(
    clusters: list[Cluster], n: int, *, seed: int = 0, batch: int = 50_000, background: float = 0.0
) -> Iterator[Corpus]:
    """`n` items drawn from the mixture (weights ∝ sizes) in batches, for corpora too big for memory."""
    rng = np.random.default_rng(seed)
    weights = np.array([c.size for c in clusters], dtype=np.float64)
    weights = np.append(weights / weights.sum() * (1.0 - background), background)
    dim = clusters[0].centre.shape[0]
    for start in range(0, n, batch):
        count = min(batch, n - start)
        labels = rng.choice(len(weights), size=count, p=weights) if background else None
        if labels is None:
            labels = rng.choice(len(clusters), size=count, p=weights[:-1] / weights[:-1].sum())
        vectors = np.empty((count, dim), dtype=np.float32)
        for k in np.unique(labels):
            rows = labels == k
            if k == len(clusters):
                vectors[rows] = normalise(rng.standard_normal((int(rows.sum()), dim)))
            else:
                vectors[rows] = sample_cluster(clusters[k], rng, int(rows.sum()))
        truth = np.where(labels == len(clusters), -1, labels).astype(np.int64)
        yield Corpus([item_id(start + i) for i in range(count)], vectors, truth)


def drift_scenario(
    name: ScenarioName,
    *,
    k: int = 6,
    size: int = 150,
    dim: int = DIM,
    noise: float = 0.4,
    seed: int = 0,
) -> DriftScenario:
    """Two runs of the same items under one kind of drift, with the events expected between them.

    Truth labels: clusters 0..k-1 in run 0; a cluster born in run 1 (emerge, or the second half of
    a split) is labelled k. In a merge, cluster 1's items join cluster 0.
    """
    rng = np.random.default_rng(seed)
    centres = random_centres(k + 1, dim, rng)  # one spare centre for emerge/split
    clusters = [Cluster(c, size, noise) for c in centres[:k]]
    first = sample_mixture(clusters, rng)
    builders = {
        "steady": _steady,
        "emerge": _emerge,
        "vanish": _vanish,
        "split": _split,
        "merge": _merge,
    }
    second, expected = builders[name](first, clusters, Cluster(centres[k], size, noise), rng)
    return DriftScenario(name, [first, second], [expected])


def _steady(first: Corpus, clusters, spare, rng) -> tuple[Corpus, list[ExpectedEvent]]:
    extra = sample_mixture([Cluster(c.centre, max(1, c.size // 20), c.noise) for c in clusters], rng)
    grown = extend_corpus(first, extra)
    return grown, [ExpectedEvent("survived", (k,), (k,)) for k in range(len(clusters))]


def _emerge(first: Corpus, clusters, spare, rng) -> tuple[Corpus, list[ExpectedEvent]]:
    newcomers = sample_mixture([spare], rng)
    newcomers = Corpus(newcomers.ids, newcomers.vectors, np.full(len(newcomers), len(clusters)))
    return extend_corpus(first, newcomers), [ExpectedEvent("emerged", (), (len(clusters),))]


def _vanish(first: Corpus, clusters, spare, rng) -> tuple[Corpus, list[ExpectedEvent]]:
    keep = first.labels != 0
    kept = Corpus(
        [i for i, k in zip(first.ids, keep, strict=True) if k], first.vectors[keep], first.labels[keep]
    )
    return kept, [ExpectedEvent("vanished", (0,), ())]


def _split(first: Corpus, clusters, spare, rng) -> tuple[Corpus, list[ExpectedEvent]]:
    """Cluster 0's items: a (larger) 60% stays, 40% drifts to a new centre and becomes cluster k."""
    members = np.flatnonzero(first.labels == 0)
    moved = rng.choice(members, size=int(0.4 * len(members)), replace=False)
    vectors = first.vectors.copy()
    vectors[moved] = sample_cluster(spare, rng, len(moved))
    labels = first.labels.copy()
    labels[moved] = len(clusters)
    return Corpus(first.ids, vectors, labels), [ExpectedEvent("split", (0,), (0, len(clusters)))]


def _merge(first: Corpus, clusters, spare, rng) -> tuple[Corpus, list[ExpectedEvent]]:
    """Cluster 1's items drift onto cluster 0's centre; 0 keeps its id, 1 is merged into it."""
    moved = np.flatnonzero(first.labels == 1)
    vectors = first.vectors.copy()
    vectors[moved] = sample_cluster(clusters[0], rng, len(moved))
    labels = first.labels.copy()
    labels[moved] = 0
    return Corpus(first.ids, vectors, labels), [ExpectedEvent("merged", (0, 1), (0,))]


def churn_corpus(
    run: int, *, live: int = 6, turnover: int = 1, size: int = 40, dim: int = 64, noise: float = 0.4
) -> Corpus:
    """The items of run `run` of a stream where `turnover` topics end and as many begin every run.

    Clusters ``run * turnover`` to ``run * turnover + live - 1`` are alive; cluster c has its own
    centre and item ids (seeded by c), so a cluster that lives on keeps its items from run to run.
    """
    first = run * turnover
    ids: list[str] = []
    parts, labels = [], []
    for c in range(first, first + live):
        rng = np.random.default_rng(c)
        centre = random_centres(1, dim, rng)[0]
        parts.append(sample_cluster(Cluster(centre, size, noise), rng))
        ids.extend(item_id(i, f"churn-{c}") for i in range(size))
        labels.append(np.full(size, c, np.int64))
    return Corpus(ids, np.concatenate(parts), np.concatenate(labels))


def extend_corpus(first: Corpus, extra: Corpus) -> Corpus:
    """`first` followed by `extra`, whose items get the next free ids."""
    start = len(first)
    ids = first.ids + [item_id(start + i) for i in range(len(extra))]
    return Corpus(
        ids, np.concatenate([first.vectors, extra.vectors]), np.concatenate([first.labels, extra.labels])
    )


def _split_evenly(n: int, k: int) -> list[int]:
    return [n // k + (1 if i < n % k else 0) for i in range(k)]


def _geometric_sizes(n: int, k: int, ratio: float) -> np.ndarray:
    """K sizes summing to about n, falling geometrically so that largest / smallest ≈ ratio."""
    weights = ratio ** (-np.arange(k) / max(k - 1, 1))
    sizes = np.maximum(1, np.round(weights / weights.sum() * n)).astype(np.int64)
    return sizes


def ensure_items(items: VectorStore, dim: int = DIM) -> None:
    """Create an `items` collection for synthetic corpora (CLIP-like `image` and `text` views)."""
    identity = {"synthetic": True, "dim": dim}
    items.ensure(CollectionSchema(vectors={"image": dim, "text": dim}, identity=identity))


def store_corpus(
    items: VectorStore,
    corpus: Corpus,
    *,
    prune: bool = False,
    text_noise: float = 0.0,
    seed: int = 0,
    batch: int = 1024,
) -> None:
    """Write a corpus as items with `image` and `text` vectors; keep stored items' payloads.

    `text` is the vector plus `text_noise` (relative norm), so the fused view is a little noisier than
    either. New items are marked `pending`. `prune` deletes stored items that the corpus lacks.
    """
    ensure_items(items, corpus.vectors.shape[1])
    rng = np.random.default_rng(seed)
    check_existing = items.count() > 0
    for start in range(0, len(corpus), batch):
        ids = corpus.ids[start : start + batch]
        image = corpus.vectors[start : start + batch]
        noise = rng.standard_normal(image.shape) * (text_noise / np.sqrt(image.shape[1]))
        text = normalise(image + noise).astype(np.float32)
        known = {p.id: p.payload for p in items.retrieve(ids)} if check_existing else {}
        items.upsert(
            [
                Point(i, {"image": image[j], "text": text[j]}, known.get(i) or {"pending": 1, "n": start + j})
                for j, i in enumerate(ids)
            ]
        )
    if prune:
        wanted = set(corpus.ids)
        stale = [p.id for points in items.scroll(payload=False) for p in points if p.id not in wanted]
        items.delete(stale)
    items.flush()


def assigned_topics(backend: Backend) -> dict[str, int | None]:
    """Each stored item's public topic under the current run (None where it has none yet), by id."""
    run = catalog.current_run(backend)
    topic_of: dict[str, int | None] = {}
    for batch in backend.collection("items").scroll():
        for p in batch:
            found = catalog.read_assignment(p.payload, run)
            topic_of[p.id] = None if found is None else found.topic
    return topic_of
