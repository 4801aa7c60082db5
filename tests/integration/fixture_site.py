"""A small web site on loopback with one path per way a page can fail (and succeed).

The integration tests crawl it with real workers and check the error code each path
produces. It counts the requests it receives, so tests can see what workers fetched.
"""

from __future__ import annotations

import contextlib
import gzip
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

MAX_BYTES = 100_000  # the response-size limit the test workers run with

OK_HTML = (
    "<!doctype html><html><head><title>Fixture &lt;OK&gt; page</title>"
    "<style>p { color: red }</style></head>"
    "<body><h1>The quick brown fox</h1><p>jumps over the lazy dog. The dog sleeps.</p>"
    "<script>ignored words here</script></body></html>"
)
OK_COUNTS = {
    "the": 3,
    "quick": 1,
    "brown": 1,
    "fox": 1,
    "jumps": 1,
    "over": 1,
    "lazy": 1,
    "dog": 2,
    "sleeps": 1,
}
HOSTILE_TITLE = "<script>alert('owned')</script>"
ROBOTS_TXT = "User-agent: *\nDisallow: /secret/\n"


class FixtureHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FixtureSite

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        self.server.count(path)
        route = ROUTES.get(path)
        if route is None and path.startswith("/secret/"):
            route = ok_page
        if route is None:
            self.send_body(404, "text/html", b"<h1>not here</h1>")
            return
        # The crawler may hang up on purpose (too large, too slow): not an error here.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            route(self)

    def send_body(
        self, status: int, content_type: str, body: bytes, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def ok_page(h: FixtureHandler) -> None:
    h.send_body(200, "text/html; charset=utf-8", OK_HTML.encode())


def big_declared(h: FixtureHandler) -> None:
    h.send_response(200)
    h.send_header("Content-Type", "text/html")
    h.send_header("Content-Length", str(MAX_BYTES * 50))
    h.end_headers()
    h.wfile.write(b"<p>" + b"word " * 1000)  # the crawler must stop at the header


def big_chunked(h: FixtureHandler) -> None:
    h.send_response(200)
    h.send_header("Content-Type", "text/html")
    h.send_header("Transfer-Encoding", "chunked")
    h.end_headers()
    chunk = b"<p>" + b"word " * 2000 + b"</p>"
    for _ in range(3 * MAX_BYTES // len(chunk)):
        h.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    h.wfile.write(b"0\r\n\r\n")


def delayed(h: FixtureHandler) -> None:
    """/delay?ms=N: the OK page after N milliseconds (keeps workers busy for a while).

    The site records how many of these it was serving at once, at most.
    """
    query = parse_qs(urlsplit(h.path).query)
    with h.server.serving():
        time.sleep(int(query.get("ms", ["0"])[0]) / 1000)
        ok_page(h)


def link_list(h: FixtureHandler) -> None:
    """/links?n=N&ms=M: a page linking to N pages of /delay?ms=M (a crawl to cancel)."""
    query = parse_qs(urlsplit(h.path).query)
    count, ms = int(query.get("n", ["10"])[0]), int(query.get("ms", ["0"])[0])
    links = "".join(f'<a href="/delay?ms={ms}&amp;n={i}">page {i}</a> ' for i in range(count))
    h.send_body(200, "text/html", f"<title>Links</title><p>{links}</p>".encode())


def slow(h: FixtureHandler) -> None:
    time.sleep(3)  # longer than the test workers' read timeout
    ok_page(h)


ROUTES = {
    "/robots.txt": lambda h: h.send_body(200, "text/plain", ROBOTS_TXT.encode()),
    "/ok": ok_page,
    "/plain": lambda h: h.send_body(
        200, "text/plain; charset=utf-8", b"Plain text, plain words: text."
    ),
    "/latin1": lambda h: h.send_body(
        200, "text/html; charset=iso-8859-1", b"<title>Caf\xe9</title><p>caf\xe9 cr\xe8me</p>"
    ),
    "/hostile-title": lambda h: h.send_body(
        200,
        "text/html; charset=utf-8",
        f"<title>{HOSTILE_TITLE.replace('<', '&lt;')}</title><p>harmless words</p>".encode(),
    ),
    "/gzip": lambda h: h.send_body(
        200, "text/html", gzip.compress(OK_HTML.encode()), {"Content-Encoding": "gzip"}
    ),
    "/missing": lambda h: h.send_body(404, "text/html", b"<h1>gone</h1>"),
    "/error": lambda h: h.send_body(500, "text/html", b"<h1>boom</h1>"),
    "/unavailable": lambda h: h.send_body(503, "text/html", b"busy", {"Retry-After": "1"}),
    "/image": lambda h: h.send_body(200, "image/png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64),
    "/binary": lambda h: h.send_body(200, "text/html", b"\x00\x01\x02binary\x00" * 20),
    "/big-declared": big_declared,
    "/big-chunked": big_chunked,
    "/loop": lambda h: h.redirect("/loop"),
    "/redirect": lambda h: h.redirect("/ok"),
    "/to-loopback": lambda h: h.redirect(f"http://127.0.0.2:{h.server.server_port}/ok"),
    "/slow": slow,
    "/delay": delayed,
    "/links": link_list,
    "/bad-redirect": lambda h: h.redirect("http://[::1/broken"),
}


class FixtureSite(ThreadingHTTPServer):
    """The fixture site, served from a background thread on 127.0.0.1."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), FixtureHandler)
        self.hits: Counter[str] = Counter()
        self.in_flight = 0
        self.most_in_flight = 0  # the most /delay requests served at once
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    def count(self, path: str) -> None:
        with self._lock:
            self.hits[path] += 1

    @contextlib.contextmanager
    def serving(self) -> Iterator[None]:
        with self._lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            yield
        finally:
            with self._lock:
                self.in_flight -= 1

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_port}{path}"

    def start(self) -> FixtureSite:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
