"""Turn a page's bytes into the text that is counted: the second step for every page.

Word rules 1 and 2 of the contract: decode by the HTTP charset, else the document's
<meta charset>, else UTF-8 with replacement characters; count only the visible text of
HTML (not head, script, style, noscript, template, svg, math), joining text nodes with a
single space; keep the <title> as the page title.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field
from urllib.parse import urljoin

from bs4 import BeautifulSoup
from bs4.dammit import EncodingDetector

from .errors import DecodeError
from .fetch import Response

HTML_MEDIA_TYPES = ("text/html", "application/xhtml+xml")
NOT_COUNTED_TAGS = ("head", "script", "style", "noscript", "template", "svg", "math", "title")
WIDE_ENCODINGS = ("utf-16", "utf-32")  # these legitimately contain NUL bytes


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
    """Decode a body: HTTP charset, else <meta charset> (HTML), else UTF-8 with replacement."""
    encoding = _known_encoding(http_charset)
    if encoding is None and is_html:
        encoding = _known_encoding(EncodingDetector.find_declared_encoding(body, is_html=True))
    encoding = encoding or "utf-8"
    if b"\x00" in body and not encoding.startswith(WIDE_ENCODINGS):
        raise DecodeError("the body contains NUL bytes: it is binary data, not text")
    if encoding == "utf-8":
        encoding = "utf-8-sig"  # a byte order mark is not text
    return body.decode(encoding, errors="replace")


def _known_encoding(label: str | None) -> str | None:
    """Return Python's name for a charset label, or None when it is missing or unknown."""
    if not label:
        return None
    try:
        return codecs.lookup(label.strip()).name
    except LookupError:
        return None


def parse_html(html: str, url: str) -> Document:
    """Extract title, links and visible text from an HTML document."""
    soup = BeautifulSoup(html, "lxml")
    title_tag = soup.title
    title = " ".join(title_tag.get_text().split()) if title_tag else None
    base = soup.find("base", href=True)
    base_url = urljoin(url, base["href"].strip()) if base else url
    links = [a["href"] for a in soup.find_all("a", href=True)]
    for tag in soup.find_all(NOT_COUNTED_TAGS):
        if not tag.decomposed:  # a <title> inside <head> went with its parent
            tag.decompose()
    return Document(text=soup.get_text(" "), title=title or None, base_url=base_url, links=links)
