"""Topic words by c-TF-IDF on small corpora whose content is known."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from topics.represent.words import WordCounter, clean_caption, label_from_words, load_word_list

FARM = [
    "red tractor on the farm at dawn",
    "farmers drive a tractor to the protest #tractorprotest",
    "tractor protest blocks the road #tractorprotest",
    "farm tractor in the field",
    "old tractor rusting on a farm",
]
SEA = [
    "sailing boat on a calm sea",
    "a boat in the harbour at sunset",
    "sea waves crash on the boat",
    "fishing boat at sea https://example.com/boat.jpg",
    "harbour boats and the blue sea",
]
NOISE = ["photo of the day", "nice photo", "my photo", "the best photo ever", "photo dump"]


def counter_for(*groups: list[str], **options: object) -> WordCounter:
    counter = WordCounter(**options)
    for topic, captions in enumerate(groups):
        counter.add([topic] * len(captions), captions)
    return counter


def terms(scored: list[tuple[str, float]]) -> list[str]:
    return [term for term, _ in scored]


def test_each_topic_gets_its_own_words_ranked_with_scores() -> None:
    words = counter_for(FARM, SEA).top_words(n=10)
    assert terms(words[0])[0] == "tractor"
    assert terms(words[1])[0] == "boat"
    assert "sea" in terms(words[1])[:3]
    assert not set(terms(words[0])) & {"boat", "sea", "harbour"}
    scores = [s for _, s in words[0]]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0
    assert len(words[0]) <= 10


def test_hashtags_bigrams_and_stop_words() -> None:
    words = terms(counter_for(FARM, SEA).top_words(n=30)[0])
    assert "#tractorprotest" in words
    assert "tractor protest" in words  # a bigram
    assert not {"the", "on", "a", "at", "to"} & set(words)


def test_configured_stop_words_are_dropped(tmp_path: Path) -> None:
    stop_file = tmp_path / "stop.txt"
    stop_file.write_text("Tractor\n\n# a comment line\n", encoding="utf-8")
    counter = counter_for(FARM, SEA, stop_words=load_word_list(stop_file))
    words = terms(counter.top_words(n=30)[0])
    assert "tractor" not in words and "tractor protest" not in words
    assert "farm" in words
    assert load_word_list(stop_file) == ["tractor"]


def test_outliers_damp_shared_words_but_get_none() -> None:
    counter = WordCounter(min_df=1)
    counter.add([0] * 5, [f"{c} photo" for c in FARM])
    counter.add([-1] * len(NOISE), NOISE)
    counter.add([1] * 5, SEA)
    words = counter.top_words(n=10)
    assert -1 not in words
    farm = dict(words[0])
    assert farm["tractor"] > farm["photo"]


def test_rare_terms_are_pruned_by_min_df() -> None:
    words = counter_for(FARM, SEA, min_df=2).top_words(n=50)
    assert "dawn" not in terms(words[0])  # occurs in one caption only
    assert "dawn" in terms(counter_for(FARM, SEA, min_df=1).top_words(n=50)[0])


def test_batches_give_the_same_words_as_one_pass() -> None:
    topics = [0] * 5 + [1] * 5 + [2] * 5
    captions = FARM + SEA + NOISE
    whole = WordCounter()
    whole.add(topics, captions)
    streamed = WordCounter()
    order = np.random.default_rng(0).permutation(len(captions))
    for chunk in np.array_split(order, 5):
        streamed.add([topics[i] for i in chunk], [captions[i] for i in chunk])
    expected, got = whole.top_words(), streamed.top_words()
    assert {t: terms(w) for t, w in got.items()} == {t: terms(w) for t, w in expected.items()}
    for topic, words in expected.items():
        assert [s for _, s in got[topic]] == pytest.approx([s for _, s in words])


def test_untrusted_captions_urls_markup_and_size() -> None:
    assert "example" not in clean_caption("look https://example.com/x?y=1 here", 100)
    assert clean_caption("<b>bold</b> &amp; <script>x</script>", 100).split() == ["bold", "&", "x"]
    huge = "tractor " * 500_000  # 4 MB
    assert len(clean_caption(huge, 2000)) == 2000
    counter = WordCounter(min_df=1, max_caption_chars=2000)
    counter.add([0, 1, 1], [huge, "boat sea", None])
    assert counter.top_words()[0][0][0] == "tractor"
    words = terms(counter_for(SEA, FARM).top_words(n=50)[0])
    assert not {"https", "example", "com", "jpg"} & set(words)


def test_numbers_and_empty_captions_count_for_nothing() -> None:
    counter = WordCounter(min_df=1)
    counter.add([0, 0, 0], ["2024 2024", "", "   "])
    assert counter.top_words() == {}
    assert counter.topics() == []


def test_frequent_terms_for_the_keyword_vocabulary() -> None:
    counter = counter_for(FARM, SEA, min_df=2)
    vocabulary = counter.frequent_terms(limit=3)
    assert vocabulary[0] in {"tractor", "boat"}
    assert len(vocabulary) == 3
    assert "dawn" not in counter.frequent_terms(limit=1000)


def test_label_prefers_distinct_terms() -> None:
    assert label_from_words([]) == ""
    scored = [("tractor", 1.0), ("tractor protest", 0.9), ("farm", 0.8), ("protest", 0.7), ("road", 0.6)]
    assert label_from_words(scored) == "tractor protest, farm, road"
    assert label_from_words(counter_for(FARM, SEA).top_words()[1]).startswith("boat")


def test_mismatched_batch_is_refused() -> None:
    with pytest.raises(ValueError, match="2 topic ids but 1 captions"):
        WordCounter().add([0, 1], ["one caption"])


def test_a_huge_varied_vocabulary_forgets_rare_terms_but_keeps_frequent_ones() -> None:
    counter = WordCounter(min_df=2, max_terms=50, ngram_max=1)
    for batch in range(20):
        rare = [f"tractor unique{batch}x{i}" for i in range(10)]  # 10 new one-off terms per batch
        counter.add([0] * 10, rare)
        counter.add([1] * 5, SEA)
        assert len(counter._term_index) <= 50 + 15
    words = counter.top_words()
    assert terms(words[0]) == ["tractor"]
    assert terms(words[1])[0] == "boat"
    assert counter.frequent_terms(limit=100)[0] in {"tractor", "boat"}
