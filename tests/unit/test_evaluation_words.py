"""Topic diversity and NPMI coherence (evaluation.words) against values worked out by hand."""

from __future__ import annotations

import math

import pytest

from evaluation.words import CoOccurrence, document_words, mean_npmi, npmi, topic_diversity, topic_npmi

# Four documents. "tractor" in 0, 1, 2; "farm" in 0, 1; "boat" in 2, 3; "sea" in 3.
DOCS = [
    "Tractor on the farm",
    "the farm tractor",
    "a tractor on a boat",
    "boat at sea",
]


def test_diversity_is_the_share_of_unique_terms() -> None:
    assert topic_diversity([["a", "b"], ["c", "d"]]) == 1.0
    assert topic_diversity([["a", "b"], ["a", "c"]]) == 3 / 4
    assert topic_diversity([["a", "b", "c"], ["a", "b", "d"]], top_n=2) == 2 / 4  # only the top 2 count
    assert topic_diversity([["flag", "flag congo"], ["congo"]]) == 1.0  # terms, not their parts
    with pytest.raises(ValueError, match="no topic words"):
        topic_diversity([[], []])


def test_npmi_of_two_events() -> None:
    # p(x)=3/4, p(y)=1/2, p(x,y)=1/2: log((1/2)/(3/8)) / -log(1/2) = log(4/3) / log(2)
    assert npmi(0.75, 0.5, 0.5) == pytest.approx(math.log(4 / 3) / math.log(2))
    assert npmi(0.5, 0.5, 0.25) == pytest.approx(0.0)  # independent
    assert npmi(0.25, 0.25, 0.25) == pytest.approx(1.0)  # always together
    assert npmi(0.5, 0.5, 0.0) == -1.0  # never together


def test_topic_npmi_over_document_co_occurrence() -> None:
    corpus = CoOccurrence(DOCS, ["tractor", "farm", "boat", "sea"])
    tractor_farm = math.log((2 / 4) / ((3 / 4) * (2 / 4))) / -math.log(2 / 4)
    assert topic_npmi(["tractor", "farm"], corpus) == pytest.approx(tractor_farm)
    # tractor-boat: p=3/4, 1/2, joint 1/4 -> log((1/4)/(3/8)) / log(4); farm-boat never together: -1
    tractor_boat = math.log((1 / 4) / (3 / 8)) / math.log(4)
    expected = (tractor_farm + tractor_boat - 1.0) / 3
    assert topic_npmi(["tractor", "farm", "boat"], corpus) == pytest.approx(expected)
    assert math.isnan(topic_npmi(["tractor"], corpus))


def test_an_ngram_occurs_where_all_its_words_do() -> None:
    corpus = CoOccurrence(DOCS, ["farm", "tractor", "boat", "sea"])
    # "farm tractor" in docs 0, 1 (p=1/2); "boat" in 2, 3 (p=1/2): never together
    assert topic_npmi(["farm tractor", "boat"], corpus) == -1.0
    # "boat sea" only in doc 3 (p=1/4), "boat" p=1/2, joint 1/4: log(2) / log(4) = 0.5
    assert topic_npmi(["boat sea", "boat"], corpus) == pytest.approx(0.5)
    assert topic_npmi(["unseen", "boat"], corpus) == -1.0


def test_mean_npmi_averages_topics_and_skips_one_word_topics() -> None:
    tractor_farm = math.log((2 / 4) / ((3 / 4) * (2 / 4))) / -math.log(2 / 4)
    boat_sea = math.log((1 / 4) / ((2 / 4) * (1 / 4))) / -math.log(1 / 4)
    got = mean_npmi([["tractor", "farm"], ["Boat", "sea"], ["alone"]], DOCS)
    assert got == pytest.approx((tractor_farm + boat_sea) / 2)
    with pytest.raises(ValueError, match="two or more words"):
        mean_npmi([["alone"]], DOCS)


def test_document_words_lowercase_and_hashtags() -> None:
    assert document_words("Tractor #FarmLife a 42") == {"tractor", "#farmlife", "farmlife", "42"}
