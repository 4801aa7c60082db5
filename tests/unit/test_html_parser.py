"""The HTML parser of text.py against BeautifulSoup (lxml), the reference it replaced.

text.py reads HTML with lxml's parser events instead of building a BeautifulSoup tree (a
tenth of the time per page). Both rest on the same libxml2 parser, so for any markup,
however broken, they must agree on the counted words, the title, the links and the base.
"""

from __future__ import annotations

from urllib.parse import urljoin

from bs4 import BeautifulSoup
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from job_tasks.reading.text import MAX_TITLE_LENGTH, NOT_COUNTED_TAGS, parse_html
from job_tasks.reading.words import tokenize
from wordcrawl.demo_site import DemoSite

PAGE_URL = "http://example.com/dir/page.html"


def reference(html: str) -> tuple[list[str], str | None, list[str], str]:
    """What the BeautifulSoup version of parse_html found: words, title, links, base."""
    soup = BeautifulSoup(html, "lxml")
    title_tag = next(
        (t for t in soup.find_all("title") if not t.find_parent(["svg", "math", "template"])), None
    )
    title = " ".join(title_tag.get_text().split()) if title_tag else None
    title = title[:MAX_TITLE_LENGTH].rstrip() if title else None  # the stored length
    base = soup.find("base", href=True)
    base_url = urljoin(PAGE_URL, base["href"].strip()) if base else PAGE_URL
    links = [a["href"] for a in soup.find_all("a", href=True)]
    for tag in soup.find_all(list(NOT_COUNTED_TAGS)):
        if not tag.decomposed:
            tag.decompose()
    return tokenize(soup.get_text(" ")), title or None, links, base_url


def found(html: str) -> tuple[list[str], str | None, list[str], str]:
    document = parse_html(html, PAGE_URL)
    return tokenize(document.text), document.title, document.links, document.base_url


TAGS = [
    "p", "div", "b", "span", "a", "table", "tr", "td", "li", "ul", "br", "img", "form",
    "textarea", "select", "option", "body", "html", "iframe", "pre", "frameset",
    "head", "script", "style", "noscript", "template", "svg", "math", "title", "base",
]  # fmt: skip
WORDS = ["alpha", "Beta", "don't", "caf&eacute;", "&amp;", "x&#39;y", "well-", "-known", "2024"]


def _attributes(tag: str) -> st.SearchStrategy[str]:
    if tag not in ("a", "base"):
        return st.just("")
    return st.sampled_from(["", ' href="/x"', " href=''", " href=' ../y '", ' name="n"', " href"])


@st.composite
def markup(draw) -> str:
    parts = []
    for _ in range(draw(st.integers(0, 40))):
        kind = draw(st.sampled_from(["open", "close", "text", "text", "comment", "odd"]))
        if kind == "open":
            tag = draw(st.sampled_from(TAGS))
            parts.append(f"<{tag}{draw(_attributes(tag))}>")
        elif kind == "close":
            parts.append(f"</{draw(st.sampled_from(TAGS))}>")
        elif kind == "text":
            parts.append(" ".join(draw(st.lists(st.sampled_from(WORDS), max_size=3))))
        elif kind == "comment":
            parts.append("<!-- hidden words -->")
        else:
            parts.append(draw(st.sampled_from(["<!doctype html>", "<?php x ?>", "<", ">", "&"])))
    return draw(st.sampled_from(["", " ", "\n"])).join(parts)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(markup())
def test_any_markup_reads_as_beautifulsoup_reads_it(html):
    assert found(html) == reference(html)


def test_the_demo_sites_pages_read_as_beautifulsoup_reads_them():
    site = DemoSite(pages=30)
    for n in (0, 1, 7, 29):
        html = site.render(n)
        assert found(html) == reference(html)
