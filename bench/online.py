"""Online updates between reclusters: agreement, time to flag a new story, throughput.

A corpus from a hard synthetic mixture (sibling topics at cosine 0.95-0.97, 100x sizes, anisotropic
spread, plus background noise) is stored and reclustered with the real job (`topics.recluster.recluster`).
Then a stream arrives in chunks ("seconds"), each ingested as pending and assigned with
`topics.online.pending.assign_pending`: items of the known topics, background noise, and a new topic
injected at 1% of the traffic. Finally the nightly recluster runs again on everything. Printed:

- agreement of the online assignment with that next recluster, over the stream items the recluster
  puts in a topic of the previous run (target >= 0.95);
- how many items of the new topic had arrived when it was flagged, counted to the end of the chunk in
  which it was born (an upper bound; target <= 2x the run's minimum topic size);
- assignment throughput of the online assigner (one matrix product per batch; target >= 5,000/s),
  and, for reference, the whole online step (with emerging detection and drift) and the store path.

Usage: python bench/online.py [--base 6000] [--stream 16000] [--chunk 500] [--scenario hard|easy]
Exits non-zero only if it could not run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evaluation import synthetic as syn
from indexer.config import load_settings
from indexer.store import open_backend
from indexer.store.base import Backend
from topics import catalog
from topics.online import OnlineState
from topics.online.pending import assign_pending, emerging_params, fresh_state
from topics.recluster import recluster

NEW_SHARE = 0.01
BACKGROUND_SHARE = 0.03


@dataclass(frozen=True)
class World:
    base: syn.Corpus
    stream: syn.Corpus  # label k = the new topic, -1 = background


def build_world(scenario: str, n_base: int, n_stream: int, seed: int) -> World:
    """The run's corpus and a later stream from the same mixture, with a new topic at 1%."""
    k = 20
    if scenario == "hard":
        clusters = syn.hard_clusters(k, n_base, seed=seed)
    else:
        rng = np.random.default_rng(seed)
        clusters = [syn.Cluster(c, n_base // k, 0.5) for c in syn.random_centres(k, syn.DIM, rng)]
    rng = np.random.default_rng(seed + 1)
    base = syn.sample_mixture(clusters, rng, background=int(BACKGROUND_SHARE * n_base))
    newcomer = syn.Cluster(syn.random_centres(1, syn.DIM, rng)[0], 1, clusters[0].noise)
    weights = np.array([c.size for c in clusters], np.float64)
    shares = np.append(
        weights / weights.sum() * (1 - NEW_SHARE - BACKGROUND_SHARE), [NEW_SHARE, BACKGROUND_SHARE]
    )
    labels = rng.choice(k + 2, size=n_stream, p=shares)
    vectors = np.empty((n_stream, syn.DIM), np.float32)
    for label, cluster in enumerate([*clusters, newcomer]):
        rows = labels == label
        vectors[rows] = syn.sample_cluster(cluster, rng, int(rows.sum()))
    rows = labels == k + 1
    vectors[rows] = syn.normalise(rng.standard_normal((int(rows.sum()), syn.DIM)))
    labels = np.where(labels == k + 1, -1, labels)
    ids = [syn.item_id(i, "stream") for i in range(n_stream)]
    return World(base, syn.Corpus(ids, vectors, labels))


def topics_of(backend: Backend, ids: Sequence[str]) -> dict[str, int]:
    run = catalog.current_run(backend)
    out = {}
    for start in range(0, len(ids), 1024):
        for point in backend.collection("items").retrieve(ids[start : start + 1024]):
            found = catalog.read_assignment(point.payload, run)
            out[point.id] = found.topic if found is not None else -2
    return out


def stream_online(backend: Backend, settings, world: World, chunk: int) -> tuple[int | None, float, int]:
    """Ingest the stream chunk by chunk, assigning after each; (arrivals of the new topic when flagged,
    seconds spent in assign_pending, items assigned)."""
    items = backend.collection("items")
    new_label = int(world.stream.labels.max())
    flagged_at, seconds, assigned = None, 0.0, 0
    for start in range(0, len(world.stream), chunk):
        part = slice(start, start + chunk)
        syn.store_corpus(
            items, syn.Corpus(world.stream.ids[part], world.stream.vectors[part], world.stream.labels[part])
        )
        began = time.perf_counter()
        report = assign_pending(backend, settings)
        seconds += time.perf_counter() - began
        assigned += report.assigned + report.outliers
        if report.emerged and flagged_at is None:
            flagged_at = int((world.stream.labels[: start + chunk] == new_label).sum())
    return flagged_at, seconds, assigned


def agreement(online: dict[str, int], later: dict[str, int], existing: set[int]) -> tuple[float, float, int]:
    """Over items the recluster puts in an existing topic: share the online assignment agrees with;
    and over items online put in an existing topic: share the recluster agrees with."""
    ids = list(online)
    a = np.array([online[i] for i in ids])
    b = np.array([later[i] for i in ids])
    in_b = np.isin(b, list(existing))
    in_a = np.isin(a, list(existing))
    return float((a[in_b] == b[in_b]).mean()), float((a[in_a] == b[in_a]).mean()), int(in_b.sum())


def disagreements(
    online: dict[str, int], later: dict[str, int], existing: set[int], stream: syn.Corpus
) -> str:
    """Where the online assignment and the recluster differ, by what the item truly is."""
    kinds = {"background": 0, "known topic, online outlier": 0, "known topic, other topic": 0, "new topic": 0}
    new_label = int(stream.labels.max())
    for item_id, label in zip(stream.ids, stream.labels, strict=True):
        if later[item_id] not in existing or online[item_id] == later[item_id]:
            continue
        if label == -1:
            kinds["background"] += 1
        elif label == new_label:
            kinds["new topic"] += 1
        elif online[item_id] == -1:
            kinds["known topic, online outlier"] += 1
        else:
            kinds["known topic, other topic"] += 1
    return ", ".join(f"{k}: {v}" for k, v in kinds.items())


def throughput(state: OnlineState, vectors: np.ndarray, batch: int = 1024) -> tuple[float, float]:
    """Items/s of assignment alone, and of the whole online step (assign + emerging + drift)."""
    began = time.perf_counter()
    for start in range(0, len(vectors), batch):
        state.assigner.assign(vectors[start : start + batch])
    assign_rate = len(vectors) / (time.perf_counter() - began)
    ids = [f"t{i}" for i in range(len(vectors))]
    began = time.perf_counter()
    for start in range(0, len(vectors), batch):
        state.process(ids[start : start + batch], vectors[start : start + batch])
    return assign_rate, len(vectors) / (time.perf_counter() - began)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", type=int, default=6_000)
    parser.add_argument("--stream", type=int, default=16_000)
    parser.add_argument("--chunk", type=int, default=500)
    parser.add_argument("--scenario", choices=["hard", "easy"], default="hard")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    world = build_world(args.scenario, args.base, args.stream, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(data_dir=Path(tmp), store={"backend": "memory"})
        backend = open_backend(settings)
        try:
            for line in measure(backend, settings, world, args):
                print(line, flush=True)
        finally:
            backend.close()
    return 0


def measure(backend: Backend, settings, world: World, args: argparse.Namespace) -> Iterator[str]:
    syn.store_corpus(backend.collection("items"), world.base)
    began = time.perf_counter()
    first = recluster(settings, backend)
    run = catalog.current_run(backend)
    existing = {t.topic_id for t in catalog.list_topics(backend)}
    min_size = emerging_params(settings, run, [0.5]).min_size
    yield (
        f"scenario: {args.scenario}, {len(world.base)} items in the run, {first.n_topics} topics, "
        f"{first.n_outliers} outliers, recluster {time.perf_counter() - began:.1f} s; stream "
        f"{len(world.stream)} items in chunks of {args.chunk}, new topic at {NEW_SHARE:.0%}"
    )
    flagged_at, seconds, assigned = stream_online(backend, settings, world, args.chunk)
    online = topics_of(backend, world.stream.ids)
    state = fresh_state(backend, settings, run)
    second = recluster(settings, backend)
    later = topics_of(backend, world.stream.ids)
    recall, precision, n_existing = agreement(online, later, existing)
    born = {t for t in online.values() if t not in existing and t >= 0}
    kept = born & set(second.topic_ids.values())
    newcomer = world.stream.labels == int(world.stream.labels.max())
    in_born = np.isin(np.array([online[i] for i in world.stream.ids])[newcomer], list(born)).mean()
    flagged = "never" if flagged_at is None else str(flagged_at)
    assign_rate, step_rate = throughput(state, world.stream.vectors)
    yield (
        f"agreement_with_next_recluster: {recall:.4f} ratio (target >= 0.95) "
        f"over {n_existing} stream items the recluster puts in existing topics"
    )
    yield f"agreement_of_online_topics: {precision:.4f} ratio (info: items online put in existing topics)"
    yield f"disagreements: {disagreements(online, later, existing, world.stream)} (info)"
    yield f"new_topic_items_before_flag: {flagged} items (target <= {2 * min_size}: 2 x min topic size)"
    yield f"emerging_topics_born_online: {len(born)} topics (info: {len(kept)} kept their id next run)"
    yield f"new_topic_items_in_emerging_topic: {in_born:.3f} ratio (info)"
    yield f"assignment_throughput: {assign_rate:,.0f} items/s (target >= 5,000; {len(state.assigner)} topics)"
    yield f"online_step_throughput: {step_rate:,.0f} items/s (info: assign + emerging detection + drift)"
    yield f"store_path_throughput: {assigned / seconds:,.0f} items/s (info: assign_pending, memory store)"


if __name__ == "__main__":
    sys.exit(main())
