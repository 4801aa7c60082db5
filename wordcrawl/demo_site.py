"""Serve a site of generated, linked pages: demos, tests and benchmarks with no internet.

`wordcrawl demo-site` runs it. Page n is the same on every run (its words come from a
random generator seeded with n), so a test can know exactly which words a crawl must
count: `visible_words(n)` is the truth the page is rendered from. Pages form a tree
(page n links to its `fanout` children, its parent and the next page), deep enough for
depth-3 crawls, with the traps a real site has: a #fragment link, a link to another host,
a mailto: link, and a robots.txt that disallows /private/.
"""

from __future__ import annotations

import html
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_VOCABULARY_TEXT = """
queue worker broker task result page word count crawl link job redis postgres celery
flask python network latency throughput scale process thread message retry database
table index query student teacher class lesson notebook chart bar progress status server
client request response header body html text token tokenizer parser soup café naïve
résumé don't it's well-known mp3 x-ray e-mail co-op river mountain forest ocean desert
island valley city village bridge road garden apple orange banana cherry lemon grape
melon peach plum berry red green blue yellow purple silver golden bright dark quiet loud
fast slow the a an and of to in is it that for on with as was at by this from or be are
"""
VOCABULARY = tuple(_VOCABULARY_TEXT.split())
NAV_WORDS = {"home": "home", "parent": "up", "next": "next", "child": "child"}
ROBOTS_TXT = "User-agent: *\nDisallow: /private/\n"
# Pages rendered once, when the server starts, and then served from memory: a benchmark's
# site shares the CPUs with the crawl it measures, and rendering a page (2,000 random
# words, escaped) is not free. Pages past this many render per request.
PRERENDERED_PAGES = 20_000


@dataclass(frozen=True)
class DemoSite:
    """The shape of the generated site."""

    pages: int = 100
    fanout: int = 4
    words_per_page: int = 2000  # about 16 KB of HTML, like the benchmark yardstick
    latency_ms: int = 0

    def children(self, n: int) -> list[int]:
        """Return the pages page n links to as its children."""
        first = n * self.fanout + 1
        return [c for c in range(first, first + self.fanout) if c < self.pages]

    def links(self, n: int) -> list[tuple[str, str]]:
        """Return (href, link text) of every link on page n, in page order."""
        links = [("/", NAV_WORDS["home"]), (f"{_path(n)}#top", "top")]
        if n > 0:
            links.append((_path((n - 1) // self.fanout), NAV_WORDS["parent"]))
        if n + 1 < self.pages:
            links.append((_path(n + 1), NAV_WORDS["next"]))
        links += [(_path(c), NAV_WORDS["child"]) for c in self.children(n)]
        if n == 0:
            links += [
                ("/private/report", "private"),
                ("https://example.com/", "elsewhere"),
                ("mailto:teacher@example.com", "mail"),
            ]
        return links

    def visible_words(self, n: int) -> list[str]:
        """Return the words a crawler must count on page n, in order, case-folded."""
        body = random.Random(n).choices(VOCABULARY, k=self.words_per_page)
        return ["demo", "page", *(text for _, text in self.links(n)), *body]

    def expected_counts(self, n: int) -> Counter[str]:
        """Return the word counts of page n by the word rules (docs/how-it-works.md)."""
        return Counter(self.visible_words(n))

    def render(self, n: int) -> str:
        """Render page n as HTML; only `visible_words(n)` are outside uncounted elements."""
        body = self.visible_words(n)[2 + len(self.links(n)) :]
        sentences = [" ".join(body[i : i + 12]) for i in range(0, len(body), 12)]
        paragraphs = "\n".join(f"<p>{html.escape(s[:1].upper() + s[1:])}.</p>" for s in sentences)
        nav = " ".join(
            f'<a href="{html.escape(href)}">{html.escape(text)}</a>' for href, text in self.links(n)
        )
        return (
            '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>Demo page {n}</title>"
            "<style>body { font-family: sans-serif } /* not counted */</style></head>\n"
            f'<body id="top"><h1>Demo <em>page</em></h1>\n<nav>{nav}</nav>\n{paragraphs}\n'
            "<script>var notCounted = 'script words';</script>"
            "<noscript>noscript words</noscript></body></html>\n"
        )

    def page_number(self, path: str) -> int | None:
        """Return the page a path shows, or None."""
        if path == "/":
            return 0
        prefix, _, number = path.rpartition("/")
        if prefix == "/page" and number.isascii() and number.isdigit():
            n = int(number)
            return n if n < self.pages else None
        return None


def _path(n: int) -> str:
    return "/" if n == 0 else f"/page/{n}"


def make_handler(site: DemoSite) -> type[BaseHTTPRequestHandler]:
    """Build a request handler class serving `site`, its first pages rendered once."""
    rendered = {
        n: site.render(n).encode("utf-8") for n in range(min(site.pages, PRERENDERED_PAGES))
    }

    class DemoHandler(BaseHTTPRequestHandler):
        server_version = "wordcrawl-demo/1.0"
        # HTTP/1.1 keeps a connection open for the next request, as real sites do: a
        # crawler then connects once per thread, not once per page (every response says
        # its Content-Length, which keep-alive needs).
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            if site.latency_ms:
                time.sleep(site.latency_ms / 1000)
            path = self.path.split("?", 1)[0]
            if path == "/robots.txt":
                self._send(200, "text/plain; charset=utf-8", ROBOTS_TXT)
                return
            n = site.page_number(path)
            if n is None:
                self._send(404, "text/html; charset=utf-8", "<h1>Not found</h1>")
                return
            body = rendered.get(n) or site.render(n).encode("utf-8")
            self._send(200, "text/html; charset=utf-8", body)

        def _send(self, status: int, content_type: str, text: str | bytes) -> None:
            body = text if isinstance(text, bytes) else text.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # a crawl makes thousands of requests; the crawler's own logs tell the story

    return DemoHandler


class DemoServer(ThreadingHTTPServer):
    """A threaded HTTP server for a DemoSite; one thread per request, as latency needs."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, site: DemoSite, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__((host, port), make_handler(site))
        self.site = site

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"

    def start_in_thread(self) -> threading.Thread:
        """Serve in a background thread (for tests); stop with shutdown()."""
        thread = threading.Thread(target=self.serve_forever, name="demo-site", daemon=True)
        thread.start()
        return thread
