"""How readable a set of topic words is: diversity across topics and NPMI coherence over a corpus.

- Topic diversity (Dieng et al. 2020): the share of unique terms among all topics' top-n terms; 1.0
  when no term is shown for two topics, low when the same words top many topics.
- NPMI coherence (Bouma 2009; Lau et al. 2014): for each pair of a topic's top-n terms, the
  normalised pointwise mutual information of their occurring in the same document of the corpus,
  averaged over the pairs. 1.0: they always occur together; 0: independent; -1: never together.

A document contains a term when it contains each of the term's words (so an n-gram such as
"tractor protest" counts wherever both words occur); words are lower-cased runs of two or more word
characters, a hashtag counting as itself and as its bare word. Both methods being compared are
scored on the same tokens, whatever their own tokenizers kept.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from itertools import combinations

import numpy as np
from scipy import sparse

_WORD = re.compile(r"#?\w\w+")


def topic_diversity(topics: Iterable[Sequence[str]], top_n: int = 10) -> float:
    """Unique terms over all terms in the topics' top `top_n` (each topic's list, best first)."""
    shown = [term for words in topics for term in list(words)[:top_n]]
    if not shown:
        raise ValueError("no topic words to score")
    return len(set(shown)) / len(shown)


def document_words(text: str) -> set[str]:
    """The words of one document as the coherence measure sees them."""
    words = set(_WORD.findall(text.lower()))
    return words | {w[1:] for w in words if w.startswith("#") and len(w) > 2}


class CoOccurrence:
    """Which documents contain which words, for the words the scored topics need."""

    def __init__(self, docs: Sequence[str], words: Iterable[str]) -> None:
        self._column = {w: i for i, w in enumerate(sorted(set(words)))}
        rows, cols = [], []
        for row, text in enumerate(docs):
            for word in document_words(text):
                col = self._column.get(word)
                if col is not None:
                    rows.append(row)
                    cols.append(col)
        shape = (len(docs), len(self._column))
        data = np.ones(len(rows), dtype=np.float64)
        self._present = sparse.csc_matrix((data, (rows, cols)), shape=shape)
        self.n_docs = len(docs)

    def presence(self, terms: Sequence[str]) -> sparse.csc_matrix:
        """(n_docs, len(terms)) 0/1: the document contains every word of the term."""
        columns = [self._term_column(term) for term in terms]
        return sparse.hstack(columns, format="csc") if columns else sparse.csc_matrix((self.n_docs, 0))

    def _term_column(self, term: str) -> sparse.csc_matrix:
        words = term.lower().split()
        if not words or any(w not in self._column for w in words):
            return sparse.csc_matrix((self.n_docs, 1))
        column = self._present[:, self._column[words[0]]]
        for word in words[1:]:
            column = column.multiply(self._present[:, self._column[word]]).tocsc()
        return column


def npmi(p_i: float, p_j: float, p_ij: float) -> float:
    """NPMI of two events from their probabilities; -1 when they never co-occur."""
    if p_ij <= 0.0:
        return -1.0
    if p_ij >= 1.0:
        return 1.0
    return float(np.log(p_ij / (p_i * p_j)) / -np.log(p_ij))


def topic_npmi(terms: Sequence[str], corpus: CoOccurrence) -> float:
    """Mean NPMI over all pairs of `terms` (nan for fewer than two terms)."""
    if len(terms) < 2:
        return float("nan")
    present = corpus.presence(terms)
    joint = (present.T @ present).toarray() / corpus.n_docs
    single = np.diag(joint)
    pairs = combinations(range(len(terms)), 2)
    return float(np.mean([npmi(single[i], single[j], joint[i, j]) for i, j in pairs]))


def mean_npmi(topics: Sequence[Sequence[str]], docs: Sequence[str], top_n: int = 10) -> float:
    """Mean over topics of each topic's top-`top_n` NPMI over `docs` (topics of < 2 terms skipped)."""
    tops = [list(words)[:top_n] for words in topics]
    tops = [t for t in tops if len(t) >= 2]
    if not tops:
        raise ValueError("no topic with two or more words to score")
    corpus = CoOccurrence(docs, (w for t in tops for term in t for w in term.lower().split()))
    return float(np.mean([topic_npmi(t, corpus) for t in tops]))
