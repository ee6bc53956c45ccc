"""Feed documents (a JSON array, JSON Feed, RSS 2.0/1.0, Atom) turned into plain records.

Each record is a dict with the keys :func:`indexer.sources.feed.parse_record` understands (``id``,
``title``, ``summary``, ``image``, ``date_published``, ``link``), so every kind of feed reaches an
`Item` through the same code. XML is parsed with the standard library: Expat (2.4 and later) refuses
entity-expansion bombs, ElementTree never fetches external entities, and the fetcher caps the size.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from html.parser import HTMLParser
from typing import Any

from indexer.errors import InvalidInput

ATOM = "{http://www.w3.org/2005/Atom}"
MEDIA = "{http://search.yahoo.com/mrss/}"
CONTENT = "{http://purl.org/rss/1.0/modules/content/}"
DC = "{http://purl.org/dc/elements/1.1/}"
RSS1 = "{http://purl.org/rss/1.0/}"
RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
LIST_KEYS = ("items", "entries", "data", "posts", "records")


class FeedFormatError(InvalidInput):
    """The document is no feed this module can read."""


def parse_document(body: bytes, content_type: str = "") -> list[Any]:
    """The records of a feed document, in document order (each a dict, or whatever a JSON array held)."""
    head = body.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if head in (b"[", b"{") or "json" in content_type:
        return _json_records(body)
    if head == b"<" or "xml" in content_type:
        return _xml_records(body)
    raise FeedFormatError(f"neither JSON nor XML (content-type {content_type or 'none'!r})")


def _json_records(body: bytes) -> list[Any]:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as error:
        raise FeedFormatError(f"malformed JSON: {error}") from error
    if isinstance(document, list):
        return document
    if isinstance(document, dict):
        for key in LIST_KEYS:
            if isinstance(document.get(key), list):
                return document[key]
        raise FeedFormatError(f"a JSON object without a list under any of {', '.join(LIST_KEYS)}")
    raise FeedFormatError(f"a JSON {type(document).__name__} is no feed")


def _xml_records(body: bytes) -> list[dict[str, Any]]:
    try:
        root = ET.fromstring(body)
    except (ET.ParseError, RecursionError, LookupError, ValueError) as error:  # also unknown encodings
        raise FeedFormatError(f"malformed XML: {error}") from error
    if root.tag == "rss":
        return [_rss_item(item) for item in root.iter("item")]
    if root.tag == f"{RDF}RDF":
        return [_rss_item(item, ns=RSS1) for item in root.iter(f"{RSS1}item")]
    if root.tag == f"{ATOM}feed":
        return [_atom_entry(entry) for entry in root.iter(f"{ATOM}entry")]
    raise FeedFormatError(f"an XML document with root <{root.tag}> is no RSS or Atom feed")


def _rss_item(item: ET.Element, ns: str = "") -> dict[str, Any]:
    link = _text(item.find(f"{ns}link"))
    description = _text(item.find(f"{CONTENT}encoded")) or _text(item.find(f"{ns}description"))
    images = [e.get("url") for e in item.iter("enclosure") if _is_image(e.get("type"))]
    return _record(
        id=_text(item.find("guid")) or link,
        title=_text(item.find(f"{ns}title")),
        summary=html_to_text(description) if description else None,
        image=next(filter(None, [*images, *_media_images(item)]), None),
        date_published=_text(item.find("pubDate")) or _text(item.find(f"{DC}date")),
        link=link,
        author=_text(item.find("author")) or _text(item.find(f"{DC}creator")),
    )


def _atom_entry(entry: ET.Element) -> dict[str, Any]:
    links = entry.findall(f"{ATOM}link")
    page = next((e.get("href") for e in links if e.get("rel", "alternate") == "alternate"), None)
    enclosures = [e.get("href") for e in links if e.get("rel") == "enclosure" and _is_image(e.get("type"))]
    content = entry.find(f"{ATOM}content")
    summary = _text(entry.find(f"{ATOM}summary")) or _text(content)
    return _record(
        id=_text(entry.find(f"{ATOM}id")) or page,
        title=_text(entry.find(f"{ATOM}title")),
        summary=html_to_text(summary) if summary else None,
        image=next(filter(None, [*enclosures, *_media_images(entry)]), None),
        date_published=_text(entry.find(f"{ATOM}published")) or _text(entry.find(f"{ATOM}updated")),
        link=page,
        author=_text(entry.find(f"{ATOM}author/{ATOM}name")),
    )


def _media_images(element: ET.Element) -> list[str | None]:
    """Media RSS: <media:content medium="image"> (also inside <media:group>), then thumbnails."""
    contents = [
        e.get("url")
        for e in element.iter(f"{MEDIA}content")
        if e.get("medium") == "image" or _is_image(e.get("type"))
    ]
    thumbnails = [e.get("url") for e in element.iter(f"{MEDIA}thumbnail")]
    return contents + thumbnails


def _is_image(mime: str | None) -> bool:
    return bool(mime) and mime.lower().startswith("image/")


def _text(element: ET.Element | None) -> str | None:
    if element is None:
        return None
    text = "".join(element.itertext()).strip()
    return text or None


def _record(**fields: Any) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if value is not None}


class _TextExtractor(HTMLParser):
    """Visible text of an HTML fragment: tags dropped, entities decoded, scripts and styles skipped."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: Iterable[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._hidden += 1
        elif tag in ("br", "p", "div", "li"):
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._hidden:
            self._hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data)

    def parse_marked_section(self, i: int, report: int = 1) -> int:
        """``<![`` that opens no CDATA or MS Office section (``<![x``) is a bogus comment to a browser,
        hidden up to the next ``>``; CPython before 3.13 raises AssertionError on it instead."""
        try:
            return super().parse_marked_section(i, report)
        except AssertionError:
            return self.parse_bogus_comment(i, report=0)


def html_to_text(fragment: str) -> str:
    """Plain text from the HTML that feeds put in descriptions and `content_html`."""
    if "<" not in fragment and "&" not in fragment:
        return fragment.strip()
    extractor = _TextExtractor()
    extractor.feed(fragment)
    extractor.close()
    lines = (" ".join(line.split()) for line in "".join(extractor.parts).splitlines())
    return "\n".join(line for line in lines if line)
