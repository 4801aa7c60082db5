"""Turn a page's bytes into the text that is counted: the second step for every page.

Word rules 1 and 2 of the contract: decode by the HTTP charset, else the document's
<meta charset>, else UTF-8 with replacement characters; count only the visible text of
HTML (not head, script, style, noscript, template, svg, math), joining text nodes with a
single space; keep the <title> as the page title.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field
from urllib.parse import urljoin

from bs4 import BeautifulSoup
from bs4.builder import ParserRejectedMarkup
from bs4.dammit import EncodingDetector
from lxml.etree import LxmlError

from .errors import DecodeError
from .fetch import Response

HTML_MEDIA_TYPES = ("text/html", "application/xhtml+xml")
NOT_COUNTED_TAGS = ("head", "script", "style", "noscript", "template", "svg", "math", "title")
WIDE_ENCODINGS = ("utf-16", "utf-32")  # these legitimately contain NUL bytes
# UTF-7 ("+2AA-") and Python's escape codecs can decode to lone surrogates, which are no
# characters: UTF-8 (and so PostgreSQL) cannot hold them.
LONE_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class Document:
    """The countable content of a page."""

    text: str
    title: str | None = None
    base_url: str = ""  # where relative links resolve: the page URL or its <base href>
    links: list[str] = field(default_factory=list)  # href values of <a> elements, as written


def extract(response: Response) -> Document:
    """Return the text to count (and the title and links) of a fetched page."""
    is_html = response.media_type in HTML_MEDIA_TYPES
    text = decode(response.body, response.charset, is_html)
    if not is_html:
        return Document(text=text, base_url=response.url)
    return parse_html(text, response.url)


def decode(body: bytes, http_charset: str | None, is_html: bool) -> str:
    """Decode a body: HTTP charset, else <meta charset> (HTML), else UTF-8 with replacement.

    A byte order mark, when the server names no charset, is as good as a declaration.
    """
    encoding = _known_encoding(http_charset) or _bom_encoding(body)
    if encoding is None and is_html:
        declared = _known_encoding(EncodingDetector.find_declared_encoding(body, is_html=True))
        # A <meta> that could be read as ASCII cannot be UTF-16: browsers take UTF-8 then.
        encoding = "utf-8" if declared and declared.startswith(WIDE_ENCODINGS) else declared
    encoding = encoding or "utf-8"
    if b"\x00" in body and not encoding.startswith(WIDE_ENCODINGS):
        raise DecodeError("the body contains NUL bytes: it is binary data, not text")
    if encoding == "utf-8":
        encoding = "utf-8-sig"  # a byte order mark is not text
    return LONE_SURROGATE.sub("\ufffd", body.decode(encoding, errors="replace"))


def _known_encoding(label: str | None) -> str | None:
    """Return Python's codec for a charset label, or None when it is missing or unusable."""
    if not label:
        return None
    try:
        name = codecs.lookup(label.strip()).name
        # Python also has codecs that are not text encodings (base64, zip) or that cannot
        # replace what they cannot decode (idna, punycode): a page naming one names none.
        b"\xff<".decode(name, errors="replace")
    except (LookupError, UnicodeError):
        return None
    # As in browsers (WHATWG Encoding): pages labelled Latin-1 or ASCII are windows-1252.
    return "cp1252" if name in ("iso8859-1", "latin-1", "ascii") else name


def _bom_encoding(body: bytes) -> str | None:
    if body.startswith(codecs.BOM_UTF8):
        return "utf-8"
    if body.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    return None


def parse_html(html: str, url: str) -> Document:
    """Extract title, links and visible text from an HTML document."""
    try:
        soup = BeautifulSoup(html, "lxml")
    except (ParserRejectedMarkup, LxmlError, RecursionError) as err:
        raise DecodeError(f"the HTML cannot be parsed: {err}") from err
    # The document's <title>, not the <title> of an inline <svg> icon.
    title_tag = next(
        (t for t in soup.find_all("title") if not t.find_parent(["svg", "math"])), None
    )
    title = " ".join(title_tag.get_text().split()) if title_tag else None
    base = soup.find("base", href=True)
    base_url = urljoin(url, base["href"].strip()) if base else url
    links = [a["href"] for a in soup.find_all("a", href=True)]
    for tag in soup.find_all(NOT_COUNTED_TAGS):
        if not tag.decomposed:  # a <title> inside <head> went with its parent
            tag.decompose()
    return Document(text=soup.get_text(" "), title=title or None, base_url=base_url, links=links)
