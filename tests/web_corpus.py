"""A small corpus for the web interface's tests: three colour families of pictures whose captions carry
markup payloads, a picture with a hostile file name, an SVG drawing, a caption-only item and a 4CAT
manifest row (its own `id`, a URL, a created time). Each test module makes it and reclusters once."""

from __future__ import annotations

import json
import random
from html.parser import HTMLParser
from pathlib import Path

from PIL import Image, ImageDraw

PWNED = "pwned"
MARKUP = (  # markup that would run or restyle if it were not escaped (the report's tests use these too)
    "<script>document.title='pwned'</script>",
    "<img src=x onerror=\"document.title='pwned'\">",
    '"><svg onload="document.title=\'pwned\'">',
    "'><iframe src=\"javascript:document.title='pwned'\"></iframe>",
    "</td></tr></table><style>body{display:none}</style><b onmouseover=alert(1)>x</b>",
)
BEACON = '<img src="http://203.0.113.9/beacon.png">'  # a request to an outside address, if it loaded
PAYLOADS = (*MARKUP[:4], BEACON, MARKUP[4])
GROUPS = (
    ((200, 30, 30), "red tractor protest farmers road"),
    ((30, 30, 200), "blue ocean sailing boat harbour"),
    ((30, 180, 30), "green forest hiking trail trees"),
)
PER_GROUP = 14
HOSTILE_NAME = '"><img src=x onerror=alert(1)>.jpg'
FOURCAT_ID = "1712345678901234567"
FOURCAT_URL = "https://pictures.invalid/never-fetched.jpg"  # fails fast: a failure with a reason


def picture(path: Path, colour: tuple[int, int, int], seed: int) -> Path:
    draw_shade(path, colour, random.Random(seed))
    return path


def draw_shade(path: Path, colour: tuple[int, int, int], rng: random.Random) -> None:
    """A JPEG: a shade of `colour` (drawn from `rng`) with a white patch."""
    shade = tuple(max(0, min(255, c + rng.randrange(-20, 20))) for c in colour)
    image = Image.new("RGB", (64, 48), shade)
    x, y = rng.randrange(40), rng.randrange(30)
    ImageDraw.Draw(image).rectangle((x, y, x + 10, y + 8), fill=(255, 255, 255))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, "JPEG")


def make_corpus(folder: Path) -> Path:
    """The folder of pictures and captions (and `manifest.jsonl` beside it, outside the folder)."""
    for g, (colour, words) in enumerate(GROUPS):
        for i in range(PER_GROUP):
            picture(folder / f"g{g}_{i}.jpg", colour, seed=g * 100 + i)
            terms = words.split()
            random.Random(g * 100 + i).shuffle(terms)
            caption = f"{' '.join(terms[:4])} photo {i} {PAYLOADS[(g + i) % len(PAYLOADS)]}"
            (folder / f"g{g}_{i}.txt").write_text(caption, encoding="utf-8")
    picture(folder / HOSTILE_NAME, (200, 30, 30), seed=999)
    (folder / "drawing.svg").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" width="40" height="40">'
        '<rect width="40" height="40" fill="#c00"/><image href="http://203.0.113.9/x.png"/>'
        "<script>alert(1)</script></svg>",
        encoding="utf-8",
    )
    (folder / "words-only.txt").write_text(f"only words, no picture {PAYLOADS[0]}", encoding="utf-8")
    return folder


def make_manifest(path: Path) -> Path:
    """A 4CAT-like JSONL: one row with its own id and a picture beside it, and a row naming a URL."""
    picture_file = picture(path.parent / "post.jpg", (200, 30, 30), seed=4)
    rows = [
        {"id": FOURCAT_ID, "image": picture_file.name, "body": "red tractor farmers 4cat row",
         "timestamp": "2024-03-01T10:00:00"},
        {"id": "77", "image_url": FOURCAT_URL, "body": f"a remote picture {PAYLOADS[1]}",
         "timestamp": "2024-03-02T10:00:00"},
    ]  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, dict(attrs)))


def assert_inert(markup: str) -> None:
    """A served page carries no markup of its own data: no handler attributes, no script but the
    page's own file, no frames or styles, and nothing that loads from another origin."""
    parser = _Elements()
    parser.feed(markup)
    for tag, attrs in parser.found:
        assert tag not in {"iframe", "style", "object", "embed", "svg", "b"}, (tag, attrs)
        assert not [a for a in attrs if a.startswith("on")], (tag, attrs)
        if tag == "script":
            assert attrs.get("src") == "/static/app.js" and set(attrs) <= {"src", "defer"}, attrs
        for name in ("src", "href", "action"):
            value = (attrs.get(name) or "").strip().lower()
            assert not value.startswith(("http:", "https:", "//", "javascript:")), (tag, attrs)
