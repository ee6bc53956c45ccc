"""Topic words: class-based TF-IDF over each topic's captions, accumulated batch by batch.

Each topic is one "class document": the concatenation of its members' captions, each caption
counting a term once. A term scores high for a topic when it is frequent there (L1-normalised term
frequency) and rare across topics (``log(1 + A / f_t)``, A the average number of terms per class,
f_t the term's count over all classes). Outliers (topic -1) take part in the idf, so words common
among outliers are damped, but they get no words of their own. Which of the best-scored terms are
shown, and the label, is `topics.represent.word_choice`'s business.

Captions are untrusted: markup and URLs are stripped and each caption is capped in length before
tokenising, so a megabyte caption costs no more than a short one.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, CountVectorizer

from topics.ids import OUTLIER
from topics.represent.word_choice import Candidate, Scored, choose_words, distinct_terms, label_from_words

__all__ = ["WordCounter", "clean_caption", "distinct_terms", "label_from_words", "load_word_list"]

_MERGE_EVERY = 16  # batches of counts kept apart before summing them into one matrix
_CANDIDATES = 10  # terms ranked per shown term: room for the repeats dropped

_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_TAG = re.compile(r"<[^>]{0,200}>")
# Words of two or more characters, a leading '#' kept so hashtags stay tokens of their own.
_TOKEN = re.compile(r"(?u)#?\b\w\w+\b")


def load_word_list(path: Path) -> list[str]:
    """One term a line; blank lines and lines starting with '#' followed by a space are ignored."""
    terms = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        term = line.strip().lower()
        if term and not term.startswith("# "):
            terms.append(term)
    return terms


def clean_caption(text: str | None, max_chars: int) -> str:
    """Caption text fit for counting: bounded, without URLs, markup or HTML entities."""
    if not text:
        return ""
    text = text[: max_chars * 4]  # bound the regex work before cleaning
    if "://" in text or "www." in text.lower():
        text = _URL.sub(" ", text)
    if "&" in text:
        text = html.unescape(text)
    if "<" in text:
        text = _TAG.sub(" ", text)
    return text[:max_chars]


def _tokenise(text: str) -> list[str]:
    # Pure numbers ("2024", "#1") say little about a topic.
    return [tok for tok in _TOKEN.findall(text) if not tok.lstrip("#").isdigit()]


class WordCounter:
    """Accumulates per-topic term counts over batches of captions; ranks terms by c-TF-IDF.

    >>> counter = WordCounter(min_df=1)
    >>> counter.add([0, 0, 1], ["red tractor", "tractor protest", "blue sea"])
    >>> counter.top_words(n=1)[0][0][0]
    'tractor'
    """

    def __init__(
        self,
        *,
        stop_words: Iterable[str] = (),
        ngram_max: int = 2,
        min_df: int = 2,
        max_caption_chars: int = 2000,
        max_terms: int = 1_000_000,
    ) -> None:
        self.min_df = min_df
        self.max_terms = max_terms
        self.max_caption_chars = max_caption_chars
        stop = sorted(set(ENGLISH_STOP_WORDS) | {w.lower() for w in stop_words})
        vectorizer = CountVectorizer(
            tokenizer=_tokenise, token_pattern=None, stop_words=stop, ngram_range=(1, ngram_max)
        )
        self._analyse = vectorizer.build_analyzer()
        self._term_index: dict[str, int] = {}
        self._doc_freq = np.zeros(0, dtype=np.int64)
        self._topic_row: dict[int, int] = {}
        self._counts: list[sparse.csr_matrix] = []

    def terms(self, captions: Sequence[str | None]) -> list[list[str]]:
        """Each caption's terms as this counter counts them (none for a missing caption)."""
        return [self._analyse(clean_caption(c, self.max_caption_chars)) if c else [] for c in captions]

    def add(
        self,
        topic_ids: Sequence[int] | np.ndarray,
        captions: Sequence[str | None],
        *,
        terms: Sequence[Sequence[str]] | None = None,
    ) -> None:
        """Count the terms of one batch of captions under their topics (missing captions are skipped);
        `terms`: the captions' `terms`, when already analysed (by a counter with the same settings)."""
        if len(topic_ids) != len(captions):
            raise ValueError(f"{len(topic_ids)} topic ids but {len(captions)} captions")
        if terms is None:
            terms = self.terms(captions)
        elif len(terms) != len(captions):
            raise ValueError(f"{len(captions)} captions but {len(terms)} term lists")
        index_of = self._term_index.setdefault  # the default, len(), is the next free index
        cols: list[int] = []
        indptr = [0]
        topic_rows: list[int] = []
        for topic, caption_terms in zip(topic_ids, terms, strict=True):
            if caption_terms:
                cols.extend([index_of(term, len(self._term_index)) for term in caption_terms])
                indptr.append(len(cols))
                topic_rows.append(self._topic_row.setdefault(int(topic), len(self._topic_row)))
        if topic_rows:
            self._count_batch(np.asarray(topic_rows), np.asarray(indptr), np.asarray(cols))

    def _count_batch(self, topic_rows: np.ndarray, indptr: np.ndarray, cols: np.ndarray) -> None:
        n_terms = len(self._term_index)
        by_caption = sparse.csr_matrix(
            (np.ones(len(cols), dtype=np.int64), cols, indptr), shape=(len(topic_rows), n_terms)
        )
        by_caption.sum_duplicates()
        by_caption.data[:] = 1  # a caption counts a term once: repeating a word buys it nothing
        self._doc_freq = np.pad(self._doc_freq, (0, n_terms - len(self._doc_freq)))
        self._doc_freq += np.bincount(by_caption.indices, minlength=n_terms)
        to_topic = sparse.csr_matrix(
            (np.ones(len(topic_rows), dtype=np.int64), (topic_rows, np.arange(len(topic_rows)))),
            shape=(len(self._topic_row), len(topic_rows)),
        )
        self._counts.append((to_topic @ by_caption).tocsr())
        if len(self._counts) >= _MERGE_EVERY:
            self._merge()
        if n_terms > self.max_terms:
            self._forget_rare_terms()

    def _forget_rare_terms(self) -> None:
        # Bounds memory on a huge, varied corpus: terms seen in fewer than `min_df` captions so far
        # are dropped (they would be pruned anyway unless they recur; if they do, they count anew).
        keep = np.flatnonzero(self._doc_freq >= max(self.min_df, 2))
        terms = list(self._term_index)
        self._counts = [self._merge()[:, keep].tocsr()]
        self._doc_freq = self._doc_freq[keep]
        self._term_index = {terms[i]: new for new, i in enumerate(keep)}

    def topics(self) -> list[int]:
        """Topics (outliers included) that have at least one counted term."""
        return list(self._topic_row)

    def frequent_terms(self, limit: int) -> list[str]:
        """Corpus terms seen in at least `min_df` captions, most frequent first (the keyword vocabulary)."""
        doc_freq = self._doc_freq
        kept = np.flatnonzero(doc_freq >= self.min_df)
        order = kept[np.argsort(-doc_freq[kept], kind="stable")][:limit]
        terms = list(self._term_index)
        return [terms[i] for i in order]

    def top_words(
        self, n: int = 10, typical: Mapping[int, Sequence[str | None]] | None = None
    ) -> dict[int, list[Scored]]:
        """The `n` best terms of every topic but the outliers, with c-TF-IDF scores, best first.

        `typical`: some of each topic's most typical captions; with them, terms that occur together
        there are preferred (see `topics.represent.word_choice`, which also keeps words distinct
        within a topic and across topics).
        """
        counts, terms = self._pruned_counts()
        if counts.shape[1] == 0:
            return {}
        scores = _ctfidf(counts)
        ranked = {
            topic: _ranked(scores.getrow(row), counts.getrow(row), terms, n * _CANDIDATES)
            for topic, row in self._topic_row.items()
            if topic != OUTLIER
        }
        term_sets = {  # a caption posted twice is no more evidence than once
            topic: [self.caption_terms(c) for c in dict.fromkeys(captions)]
            for topic, captions in (typical or {}).items()
        }
        return choose_words(ranked, term_sets, n)

    def caption_terms(self, caption: str | None) -> set[str]:
        """The terms one caption contributes, as counted (for matching words against captions)."""
        return set(self._analyse(clean_caption(caption, self.max_caption_chars))) if caption else set()

    def _merge(self) -> sparse.csr_matrix:
        shape = (len(self._topic_row), len(self._term_index))
        total = sparse.csr_matrix(shape, dtype=np.int64)
        for part in self._counts:
            part.resize(shape)  # earlier batches saw fewer topics and terms
            total = total + part
        self._counts = [total]
        return total

    def _pruned_counts(self) -> tuple[sparse.csr_matrix, np.ndarray]:
        total = self._merge()
        keep = np.flatnonzero(self._doc_freq >= self.min_df)
        terms = np.array(list(self._term_index), dtype=object)
        return total[:, keep].tocsr(), terms[keep]


def _ctfidf(counts: sparse.csr_matrix) -> sparse.csr_matrix:
    counts = counts.astype(np.float64)
    row_sums = np.asarray(counts.sum(axis=1)).ravel()
    tf = sparse.diags(1.0 / np.maximum(row_sums, 1.0)) @ counts
    term_freq = np.asarray(counts.sum(axis=0)).ravel()
    avg_words = counts.sum() / max(counts.shape[0], 1)
    idf = np.log1p(avg_words / np.maximum(term_freq, 1.0))
    return (tf @ sparse.diags(idf)).tocsr()


def _ranked(
    scores: sparse.csr_matrix, counts: sparse.csr_matrix, terms: np.ndarray, limit: int
) -> list[Candidate]:
    """(term, score, count) of one topic's best `limit` terms, best first; ties by term."""
    if scores.nnz == 0:
        return []
    names = terms[scores.indices]
    order = np.lexsort((names, -np.round(scores.data, 12)))[:limit]  # same whatever the batch order
    count_of = dict(zip(counts.indices.tolist(), counts.data.tolist(), strict=True))
    return [(str(names[i]), float(scores.data[i]), count_of[scores.indices[i]]) for i in order]
