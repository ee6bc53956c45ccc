"""Which of a topic's ranked terms are shown: no word twice, words that belong together, and not
the same words for every topic.

Candidates arrive ranked by c-TF-IDF (`topics.represent.words`). Three rules make them readable:

- No word twice in a topic: a term sharing a word (or a form of it: `shares_word`) with a shown one
  is dropped, or takes its place when it is the more informative form ("new york" over "york",
  "tractor" over a rare "tractor protest"): `distinct_terms`.
- Coherent: given the term sets of the topic's typical captions, each next term is chosen by its
  score relative to the topic's best and, with equal weight, its mean NPMI with the terms already
  chosen over those captions, so the words describe one thing rather than several.
- Diverse across topics: a term chosen by several topics stays where it scores highest, and where
  it is the topic's best term (its defining word); the other topics choose again without it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import numpy as np

Scored = tuple[str, float]
Candidate = tuple[str, float, float]  # term, score, count in the topic
COHERENCE = 0.5  # weight of co-occurrence against the c-TF-IDF score when choosing the next term
ROUNDS = 3  # passes handing terms chosen by several topics to the one where each scores highest


class TopicChoice:
    """One topic's candidates, best first, and their co-occurrence over its typical captions."""

    def __init__(self, candidates: Sequence[Candidate], typical: Sequence[Collection[str]] = ()) -> None:
        self.candidates = list(candidates)
        self._npmi = _npmi_matrix(self.candidates, typical) if len(typical) >= 2 else None

    def choose(self, n: int, banned: Collection[str] = ()) -> list[Scored]:
        """Up to `n` distinct terms, best score first; `banned` terms are skipped unless first."""
        candidates = self.candidates
        if not candidates:
            return []
        relevance = np.array([score for _, score, _ in candidates]) / max(candidates[0][1], 1e-12)
        open_ = np.array([i == 0 or term not in banned for i, (term, _, _) in enumerate(candidates)])
        shown: list[int] = []
        while open_.any() and len(shown) < n:
            value = relevance
            if self._npmi is not None and shown:
                value = (1 - COHERENCE) * relevance + COHERENCE * self._npmi[:, shown].mean(axis=1)
            best = int(np.argmax(np.where(open_, value, -np.inf)))  # ties: the better-ranked term
            open_[best] = False
            shown = _admit(shown, best, candidates)
        shown.sort(key=lambda i: (-candidates[i][1], candidates[i][0]))
        return [(candidates[i][0], float(candidates[i][1])) for i in shown]


def choose_words(
    ranked: Mapping[int, Sequence[Candidate]],
    typical: Mapping[int, Sequence[Collection[str]]],
    n: int,
) -> dict[int, list[Scored]]:
    """Every topic's shown words: coherent, distinct, and a term shared by several topics kept
    only where it scores highest or is the topic's best term."""
    choices = {topic: TopicChoice(c, typical.get(topic, ())) for topic, c in ranked.items()}
    words = {topic: choice.choose(n) for topic, choice in choices.items()}
    banned: dict[int, set[str]] = {}
    for _ in range(ROUNDS):
        moved = _away_from_home(words)
        changed = {t for t, terms in moved.items() if not terms <= banned.get(t, set())}
        if not changed:
            break
        for topic in changed:
            banned.setdefault(topic, set()).update(moved[topic])
            words[topic] = choices[topic].choose(n, banned[topic])
    return words


def _away_from_home(words: Mapping[int, list[Scored]]) -> dict[int, set[str]]:
    """Per topic, the terms it shows that score higher in another topic (its best term excepted)."""
    home: dict[str, tuple[float, int]] = {}
    for topic, scored in words.items():
        for term, score in scored:
            home[term] = max(home.get(term, (score, topic)), (score, topic))
    moved: dict[int, set[str]] = {}
    for topic, scored in words.items():
        best = max(scored, key=lambda s: s[1])[0] if scored else None
        away = {term for term, _ in scored if home[term][1] != topic and term != best}
        if away:
            moved[topic] = away
    return moved


def distinct_terms(candidates: Sequence[Candidate], n: int) -> list[Scored]:
    """Up to `n` of (term, score, count in topic), best first, no word shown twice.

    A candidate sharing a word with a shown term is dropped unless it is the more informative form
    of that one term: a phrase holding the shown word that accounts for at least half of the word's
    uses ("new york" over "york"), or a word whose shown phrase is under half of its uses
    ("tractor" over "tractor protest"); then it takes that term's place.

    >>> distinct_terms([("flag", 3.0, 9), ("congo", 2.0, 8), ("flag congo", 1.0, 7), ("map", 0.5, 2)], 3)
    [('flag', 3.0), ('congo', 2.0), ('map', 0.5)]
    """
    return TopicChoice(candidates).choose(n)


def _admit(shown: list[int], new: int, candidates: Sequence[Candidate]) -> list[int]:
    term = candidates[new][0]
    if len(set(term.split())) < len(term.split()):  # "river river": a name's repeat, not a phrase
        return shown
    overlapping = [i for i in shown if shares_word(term, candidates[i][0])]
    if not overlapping:
        return [*shown, new]
    if len(overlapping) == 1 and _more_informative(candidates[new], candidates[overlapping[0]]):
        return [new if i == overlapping[0] else i for i in shown]
    return shown


def shares_word(a: str, b: str) -> bool:
    """Whether two terms have a word in common, forms of one word counting as one.

    Forms: a plural ("law", "laws"), or words alike but for an ending of at most two letters past a
    shared stem of four or more ("music", "musical"; not "biology", "biological").

    >>> shares_word("flag congo", "congo"), shares_word("principle", "principles"), shares_word("art", "arm")
    (True, True, False)
    """
    return any(_forms_of_one_word(x, y) for x in a.split() for y in b.split())


def _forms_of_one_word(a: str, b: str) -> bool:
    if a == b or a in (b + "s", b + "es") or b in (a + "s", a + "es"):
        return True
    stem = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        stem += 1
    return stem >= 4 and max(len(a), len(b)) - stem <= 2


def _more_informative(candidate: Candidate, shown: Candidate) -> bool:
    new, old = set(candidate[0].split()), set(shown[0].split())
    if new > old:  # a phrase around the shown word(s)
        return 2 * candidate[2] >= shown[2]
    if new < old:  # a word of the shown phrase
        return 2 * shown[2] < candidate[2]
    return False


def _npmi_matrix(candidates: Sequence[Candidate], typical: Sequence[Collection[str]]) -> np.ndarray:
    """(k, k) NPMI of the candidates' co-occurrence in the typical captions: -1 where never together,
    0 where together in one caption only (an anecdote, however rare the words)."""
    column = {term: j for j, (term, _, _) in enumerate(candidates)}
    present = np.zeros((len(typical), len(candidates)))
    for row, terms in enumerate(typical):
        present[row, [column[t] for t in terms if t in column]] = 1.0
    together = present.T @ present
    joint = together / len(typical)
    single = np.diag(joint)
    with np.errstate(divide="ignore", invalid="ignore"):
        npmi = np.log(joint / np.outer(single, single)) / -np.log(joint)
    npmi[joint >= 1] = 1.0
    npmi[together == 1] = 0.0
    npmi[together == 0] = -1.0
    return npmi


def label_from_words(
    words: Sequence[Scored], max_terms: int = 3, captions: Sequence[Collection[str]] = ()
) -> str:
    """A short name for a topic: up to `max_terms` of its ranked terms, no word twice.

    With `captions` (the term sets of the topic's most typical captions), terms are picked for what
    those captions share rather than by rank: each step takes the term found in the most captions,
    a caption counting less each time it is already named, so the label spans the topic instead of
    repeating its first words. Without captions, or past the terms they hold, rank decides.

    >>> label_from_words([("tractor", 0.9), ("protest", 0.8), ("tractor protest", 0.7), ("farm", 0.5)])
    'tractor, protest, farm'
    >>> label_from_words([("flag", 0.9), ("congo", 0.8), ("river", 0.7)], 2, [{"flag", "congo"}, {"river"}])
    'flag, river'
    """
    pool: list[str] = []
    for term, _ in words:  # the better-ranked form of a repeated word wins
        if not any(shares_word(term, p) for p in pool):
            pool.append(term)
    named = [0] * len(captions)
    chosen: list[str] = []
    while pool and len(chosen) < max_terms:
        gains = [sum(1 / (1 + named[i]) for i, c in enumerate(captions) if term in c) for term in pool]
        best = int(np.argmax(gains)) if max(gains) > 0 else 0  # ties and no gain: the better rank
        term = pool.pop(best)
        chosen.append(term)
        named = [k + (term in c) for k, c in zip(named, captions, strict=True)]
    return ", ".join(chosen)
