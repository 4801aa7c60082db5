"""Turn a page's bytes into the text that is counted: the second step for every page.

Word rules 1 and 2 (docs/how-it-works.md, "How words are counted"): decode by the HTTP
charset, else the document's <meta charset>, else UTF-8 with replacement characters; count
only the visible text of HTML (not head, script, style, noscript, template, svg, math),
joining text nodes with a single space; keep the <title> as the page title, its spaces
collapsed and cut to 200 characters (a title is shown in lists; a longer one would only fill
the database).
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field
from urllib.parse import urljoin

from bs4.dammit import EncodingDetector
from lxml import etree
from lxml.etree import LxmlError

from ..fetching.fetch import Response
from ..page_errors import DecodeError

HTML_MEDIA_TYPES = ("text/html", "application/xhtml+xml")
NOT_COUNTED_TAGS = frozenset(
    ("head", "script", "style", "noscript", "template", "svg", "math", "title")
)
# A <title> inside these (an icon's, a template's) is not the page's title.
NOT_THE_PAGES_TITLE = frozenset(("svg", "math", "template"))
WIDE_ENCODINGS = ("utf-16", "utf-32")  # these legitimately contain NUL bytes
# UTF-7 ("+2AA-") and Python's escape codecs can decode to lone surrogates, which are no
# characters: UTF-8 (and so PostgreSQL) cannot hold them.
LONE_SURROGATE = re.compile("[\ud800-\udfff]")
MAX_TITLE_LENGTH = 200  # characters of a page's title that are kept


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
    # lxml's HTML parser (libxml2, the parser BeautifulSoup's "lxml" mode drives) calls
    # _Collector for each tag and text as it reads: no tree is built, and nothing recurses,
    # however deep the tags nest. The same events as BeautifulSoup's, a tenth of the time.
    collector = _Collector()
    parser = etree.HTMLParser(target=collector, recover=True)
    try:
        parser.feed(html[1:] if html.startswith("\ufeff") else html)
        parser.close()
    except (LxmlError, UnicodeError, RecursionError) as err:
        raise DecodeError(f"the HTML cannot be parsed: {err}") from err
    base_url = urljoin(url, collector.base_href.strip()) if collector.base_href is not None else url
    return Document(
        text=" ".join(collector.texts),
        title=" ".join((collector.title or "").split())[:MAX_TITLE_LENGTH].rstrip() or None,
        base_url=base_url,
        links=collector.links,
    )


class _Collector:
    """An lxml parser target: collects the counted text nodes, the title, links and base.

    A text node is the text between two tags; nodes are joined with a space (rule 2).
    Everything inside a NOT_COUNTED_TAGS element is left out; comments, processing
    instructions and the doctype are not text.
    """

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.links: list[str] = []  # href of every <a>, hidden or not, as written
        self.base_href: str | None = None  # of the first <base href>
        self.title: str | None = None  # of the first <title> not in NOT_THE_PAGES_TITLE
        self._chunks: list[str] = []  # the text node being read, in the pieces lxml gives
        self._hidden = 0  # depth inside uncounted elements
        self._inside_other = 0  # depth inside NOT_THE_PAGES_TITLE elements
        self._in_title = False

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        self._end_text()
        if tag == "a" and "href" in attrib:
            self.links.append(attrib["href"])
        elif tag == "base" and self.base_href is None and "href" in attrib:
            self.base_href = attrib["href"]
        elif tag == "title" and self.title is None and not self._inside_other:
            self.title = ""
            self._in_title = True
        if tag in NOT_THE_PAGES_TITLE:
            self._inside_other += 1
        if self._hidden or tag in NOT_COUNTED_TAGS:
            self._hidden += 1

    def end(self, tag: str) -> None:
        self._end_text()
        if tag == "title":
            self._in_title = False
        if tag in NOT_THE_PAGES_TITLE and self._inside_other:
            self._inside_other -= 1
        if self._hidden:
            self._hidden -= 1

    def data(self, text: str) -> None:
        self._chunks.append(text)

    def comment(self, text: str) -> None:
        self._end_text()

    def pi(self, target: str, data: str | None = None) -> None:
        self._end_text()

    def doctype(self, *args: object) -> None:
        self._end_text()

    def close(self) -> None:
        self._end_text()

    def _end_text(self) -> None:
        if not self._chunks:
            return
        text = "".join(self._chunks)
        self._chunks.clear()
        if self._in_title:
            self.title += text
        elif not self._hidden:
            self.texts.append(text)
