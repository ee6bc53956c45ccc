"""Topic words on real corpora: ours against BERTopic's, by topic diversity and NPMI coherence.

For every corpus `bench/corpora.py` offers, both methods cluster the same precomputed embeddings with
their defaults (ours: `fit_clusters` with default `ClusterParams`, the words `Representer` stores; theirs:
`BERTopic().fit(docs, vectors)`, words from `get_topic`). Each topic's top 10 is scored over the whole
corpus (evaluation.words): diversity is the share of unique terms over all topics' top 10, NPMI the
mean over topics of the mean NPMI of their top-10 pairs (document co-occurrence); label=words is the
share of topics whose label is just their first words (BERTopic's names always are). Prints one row per
corpus and method, then `name: value unit (target ...)` lines. BERTopic is the dev extra:
`pip install bertopic umap-learn`.

    .venv/bin/python bench/words.py                  # every corpus, 3 seeds
    .venv/bin/python bench/words.py --only fortunes --seeds 1
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.corpora import LOADERS, embedded_corpora, has_bertopic
from evaluation.words import mean_npmi, topic_diversity
from topics.fit.clustering import fit_clusters
from topics.fit.params import ClusterParams
from topics.represent import Representer, RepresentOptions

TOP_N = 10
TopicWords = list[tuple[list[str], list[str]]]  # per topic: its label's terms, its words best first


@dataclass(frozen=True)
class Scores:
    n_topics: int
    diversity: float
    npmi: float
    label_copies: float  # share of topics whose label is just their first words


def ours(docs: list[str], vectors: np.ndarray, seed: int) -> TopicWords:
    """Our default clustering, and the labels and words our Representer stores for each topic."""
    fitted = fit_clusters(vectors, ClusterParams(seed=seed))
    representer = Representer(dict(enumerate(fitted.centroids)), RepresentOptions(n_words=TOP_N))
    representer.add_batch(fitted.labels, [str(i) for i in range(len(docs))], vectors, captions=docs)
    shown = [r for r in representer.finish().values() if r.words]
    return [(r.label.split(", "), [term for term, _ in r.words]) for r in shown]


def bertopic(docs: list[str], vectors: np.ndarray, seed: int) -> TopicWords:
    """BERTopic's defaults on the same embeddings, its own words and topic names (unseeded UMAP)."""
    from bertopic import BERTopic

    model = BERTopic().fit(docs, vectors)
    topics = [t for t in model.get_topics() if t != -1]
    shown = [(model.topic_labels_[t].split("_")[1:], [w for w, _ in model.get_topic(t) if w]) for t in topics]
    return [(label, words) for label, words in shown if words]  # it pads short topics with ""


def score(shown: TopicWords, docs: list[str]) -> Scores:
    words = [w for _, w in shown]
    copies = float(np.mean([label == w[: len(label)] for label, w in shown]))
    return Scores(len(words), topic_diversity(words, TOP_N), mean_npmi(words, docs, TOP_N), copies)


def mean_scores(runs: list[Scores]) -> Scores:
    fields = ("n_topics", "diversity", "npmi", "label_copies")
    return Scores(*(float(np.mean([getattr(r, f) for r in runs])) for f in fields))


def row(name: str, method: str, s: Scores) -> str:
    return (
        f"{name:10s} {method:9s} {s.n_topics:7.1f} {s.diversity:10.3f} {s.npmi:7.3f} {s.label_copies:12.3f}"
    )


def targets(name: str, mine: Scores, theirs: Scores | None) -> list[str]:
    d = n = c = "not run"
    if theirs is not None:
        d, n, c = (f"{x:.3f}" for x in (theirs.diversity, theirs.npmi, theirs.label_copies))
    return [
        f"{name}.words.diversity: {mine.diversity:.3f} share (target >= bertopic's {d})",
        f"{name}.words.npmi: {mine.npmi:.3f} npmi (target >= bertopic's {n})",
        f"{name}.words.label_is_first_words: {mine.label_copies:.3f} share of topics (bertopic's {c})",
    ]


def run(method: Callable[[list[str], np.ndarray, int], TopicWords], docs, vectors, seeds: int) -> Scores:
    return mean_scores([score(method(docs, vectors, seed), docs) for seed in range(seeds)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--only", nargs="*", help=f"corpus names ({' '.join(LOADERS)})")
    parser.add_argument("--no-bertopic", action="store_true")
    args = parser.parse_args()
    with_bertopic = not args.no_bertopic and has_bertopic()
    print(f"{'corpus':10s} {'method':9s} {'topics':>7s} {'diversity':>10s} {'NPMI':>7s} {'label=words':>12s}")
    lines: list[str] = []
    for name, corpus, vectors in embedded_corpora(args.only):
        docs = list(corpus.texts)
        mine = run(ours, docs, vectors, args.seeds)
        print(row(name, "ours", mine), flush=True)
        theirs = run(bertopic, docs, vectors, args.seeds) if with_bertopic else None
        if theirs:
            print(row(name, "bertopic", theirs), flush=True)
        lines += targets(name, mine, theirs)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
