"""Topic words by c-TF-IDF on small corpora whose content is known."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from evaluation.words import topic_diversity
from topics.represent import Representer, RepresentOptions
from topics.represent.word_choice import shares_word
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
CONGO = [
    "the flag of congo",
    "flag of congo at the parade",
    "congo flag on a pole",
    "a flag of congo in kinshasa",
    "kinshasa by the river",
    "river boats at kinshasa",
]
CITY = ["new york skyline", "new york at night", "taxi in new york", "new york subway", "snow in new york"]
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


def test_hashtags_and_stop_words() -> None:
    words = terms(counter_for(FARM, SEA).top_words(n=30)[0])
    assert "#tractorprotest" in words
    assert not {"the", "on", "a", "at", "to"} & set(words)


def test_no_word_is_shown_twice_in_a_topic() -> None:
    # Before: "tractor, farm, ..., tractor protest, ..., protest": the bigram repeated shown words.
    for words in counter_for(FARM, SEA, CONGO, min_df=1).top_words(n=30).values():
        parts = [part for term in terms(words) for part in term.split()]
        assert len(parts) == len(set(parts)), terms(words)
    congo = terms(counter_for(FARM, SEA, CONGO).top_words(n=10)[2])
    assert set(congo[:2]) == {"flag", "congo"} and "flag congo" not in congo


def test_a_phrase_replaces_its_word_where_it_is_the_words_main_use() -> None:
    words = terms(counter_for(CITY, SEA).top_words(n=10)[0])
    assert words[0] == "new york"  # "york" occurs only inside it
    assert not {"new", "york"} & set(words)
    farm = terms(counter_for(FARM, SEA).top_words(n=30)[0])
    assert "tractor" in farm and "tractor protest" not in farm  # 2 of tractor's 5 uses: the word stays


def test_a_word_topping_many_topics_stays_where_it_scores_highest_or_defines_the_topic() -> None:
    counter = WordCounter(min_df=1)
    for topic in range(10):  # a defining word k<topic> in every caption, then one-off words
        captions = [f"k{topic} s{topic}x{2 * i} s{topic}x{2 * i + 1}" for i in range(12)]
        share = 8 if topic == 0 else 6 if topic < 6 else 0  # "photo" in half the captions of six topics
        counter.add([topic] * 12, [c + " photo" * (i < share) for i, c in enumerate(captions)])
    words = {topic: terms(w) for topic, w in counter.top_words(n=10).items()}
    assert all(words[t][0] == f"k{t}" for t in range(10))
    assert "photo" in words[0]  # where it is most frequent (and its defining word k0 stays first)
    assert not any("photo" in words[t] for t in range(1, 6))  # before: second in all six
    assert topic_diversity(words.values()) == 1.0


TRACTOR = ["tractor farm", "red tractor farm", "old tractor farm", "tractor", "blue tractor", "new tractor"]
MIXED = [*TRACTOR, "garage", "garage door", "garage sale", "old garage", "big garage"]


def test_words_that_occur_together_in_typical_captions_are_preferred() -> None:
    counter = counter_for(MIXED, SEA, min_df=1)
    assert terms(counter.top_words(n=2)[0]) == ["tractor", "garage"]  # by score alone
    # "garage" never shares a caption with "tractor"; "farm" does, in half of tractor's captions
    assert terms(counter.top_words(n=2, typical={0: MIXED})[0]) == ["tractor", "farm"]
    assert terms(counter.top_words(n=2, typical={0: MIXED[:1]})[0]) == ["tractor", "garage"]  # too few
    reposted = ["garage sale tractor"] * 20  # one caption posted many times is one piece of evidence
    assert terms(counter.top_words(n=2, typical={0: MIXED + reposted})[0]) == ["tractor", "farm"]


def test_the_representer_chooses_words_over_its_typical_captions() -> None:
    rng = np.random.default_rng(0)
    centroids = {0: np.eye(4)[0], 1: np.eye(4)[1]}
    vectors = np.repeat(np.eye(4)[:2], [len(MIXED), len(SEA)], axis=0) + rng.normal(0, 0.01, (16, 4))
    topics = [0] * len(MIXED) + [1] * len(SEA)
    representer = Representer(centroids, RepresentOptions(n_words=2, min_df=1))
    representer.add_batch(topics, [f"i{i}" for i in range(16)], vectors, captions=MIXED + SEA)
    assert terms(representer.finish()[0].words) == ["tractor", "farm"]


def test_forms_of_one_word_are_shown_once() -> None:
    law = ["law and rules", "laws of the land", "the rule of law", "rules of law", "a law", "music laws"]
    words = terms(counter_for(law, SEA, min_df=1).top_words(n=10)[0])
    assert words[0] == "law" and "laws" not in words
    assert len([w for w in words if w in {"rule", "rules"}]) == 1
    assert shares_word("principle", "principles") and shares_word("music", "musical")
    assert not shares_word("art", "arm") and not shares_word("biology", "biological")


def test_label_names_what_typical_captions_share_not_the_first_words() -> None:
    words = [("flag", 0.9), ("congo", 0.8), ("kinshasa", 0.7), ("river", 0.6)]
    captions = [{"flag", "congo"}, {"flag", "congo"}, {"kinshasa", "river"}, {"river"}]
    assert label_from_words(words, captions=captions) == "flag, river, congo"
    counter = counter_for(FARM, SEA, CONGO)
    congo = counter.top_words(n=10)[2]
    typical = [counter.caption_terms(c) for c in CONGO]
    label = label_from_words(congo, captions=typical)
    assert label != ", ".join(terms(congo)[:3])
    assert set(label.split(", ")) <= set(terms(congo)) and "kinshasa" in label


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
    assert label_from_words(scored) == "tractor, farm, protest"  # the better-ranked form of a word wins
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
