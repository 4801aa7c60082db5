"""A small web site on loopback with one path per way a page can fail (and succeed).

The integration tests crawl it with real workers and check the error code each path
produces. It counts the requests it receives, so tests can see what workers fetched.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import random
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


def flaky(h: FixtureHandler) -> None:
    """/flaky?key=K&fail=N&ms=M: 503 (Retry-After: 0) the first N times key K is asked
    for, then the OK page after M milliseconds (a dead letter that a retry brings back)."""
    query = parse_qs(urlsplit(h.path).query)
    times = h.server.count(f"/flaky?key={query['key'][0]}")
    if times <= int(query.get("fail", ["1"])[0]):
        h.send_body(503, "text/html", b"<h1>not now</h1>", {"Retry-After": "0"})
        return
    time.sleep(int(query.get("ms", ["0"])[0]) / 1000)
    ok_page(h)


def slow(h: FixtureHandler) -> None:
    time.sleep(3)  # longer than the test workers' read timeout
    ok_page(h)


# Hostile pages (tests/integration/test_hostile_pages.py): answers built to exhaust a
# worker's memory, CPU or time. Each must end its page with the right error, in time.

BOMB_BYTES = 200 * MAX_BYTES  # what a gzip bomb inflates to: far beyond the limit
DRIP_SECONDS = 0.3  # one byte this often: below the read timeout, so only the deadline helps
DEEP_NESTING = 12_000  # nested elements (7 bytes each, so the page stays under the limit)


@functools.cache
def gzip_bomb(layers: int = 1) -> bytes:
    """Return a few kilobytes that inflate to BOMB_BYTES of HTML (gzip'ed `layers` times)."""
    body = b"<html><body><p>" + b"a" * BOMB_BYTES
    for _ in range(layers):
        body = gzip.compress(body, compresslevel=9)
    return body


def send_head(h: FixtureHandler, content_type: str, headers: dict[str, str]) -> None:
    """Send a 200 status and headers, and no Content-Length: the body follows as it may."""
    h.send_response(200)
    h.send_header("Content-Type", content_type)
    for name, value in headers.items():
        h.send_header(name, value)
    h.end_headers()
    h.close_connection = True  # the hostile answers below never leave a usable connection
    h.wfile.flush()


def send_chunk(h: FixtureHandler, data: bytes) -> None:
    h.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
    h.wfile.flush()


def gzip_bomb_page(h: FixtureHandler) -> None:
    """A gzip bomb with its (small, honest) Content-Length: only the inflated size is big."""
    h.send_body(200, "text/html", gzip_bomb(), {"Content-Encoding": "gzip"})


def gzip_bomb_chunked(h: FixtureHandler) -> None:
    """The same bomb sent in chunks, with no Content-Length at all."""
    send_head(h, "text/html", {"Content-Encoding": "gzip", "Transfer-Encoding": "chunked"})
    body = gzip_bomb()
    for start in range(0, len(body), 4096):
        send_chunk(h, body[start : start + 4096])
    send_chunk(h, b"")


def endless_chunked(h: FixtureHandler) -> None:
    """Chunks of HTML for ever (until the crawler hangs up)."""
    send_head(h, "text/html", {"Transfer-Encoding": "chunked"})
    chunk = b"<p>" + b"endless " * 1000 + b"</p>"
    while True:
        send_chunk(h, chunk)


def endless_stream(h: FixtureHandler) -> None:
    """HTML for ever, with neither Content-Length nor chunks: the body ends at close."""
    send_head(h, "text/html", {"Connection": "close"})
    chunk = b"<p>" + b"endless " * 1000 + b"</p>"
    while True:
        h.wfile.write(chunk)


def drip_body(h: FixtureHandler) -> None:
    """Headers at once, then one byte of body every DRIP_SECONDS, for ever."""
    send_head(h, "text/html", {"Connection": "close"})
    h.wfile.write(b"<p>")
    while True:
        h.wfile.write(b"a")
        h.wfile.flush()
        time.sleep(DRIP_SECONDS)


def drip_chunked(h: FixtureHandler) -> None:
    """A chunked body of one-byte chunks, one every DRIP_SECONDS, for ever."""
    send_head(h, "text/html", {"Transfer-Encoding": "chunked"})
    while True:
        send_chunk(h, b"a")
        time.sleep(DRIP_SECONDS)


def drip_headers(h: FixtureHandler) -> None:
    """A status line, then a header that never ends: one byte every DRIP_SECONDS."""
    h.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nX-Drip: ")
    h.close_connection = True
    while True:
        h.wfile.write(b"a")
        h.wfile.flush()
        time.sleep(DRIP_SECONDS)


def drip_gzip_name(h: FixtureHandler) -> None:
    """A gzip header whose file name never ends: bytes arrive, but no text ever comes out."""
    send_head(h, "text/html", {"Content-Encoding": "gzip", "Connection": "close"})
    # Magic, deflate, FNAME flag, mtime, xfl, os; then the NUL-terminated name, never ended.
    h.wfile.write(b"\x1f\x8b\x08\x08\x00\x00\x00\x00\x00\xff")
    while True:
        h.wfile.write(b"a")
        h.wfile.flush()
        time.sleep(DRIP_SECONDS)


def binary_noise(h: FixtureHandler) -> None:
    """50 KB of random bytes (NULs included) labelled as HTML."""
    h.send_body(200, "text/html; charset=utf-8", random.Random(4).randbytes(50_000))


def bad_content_length(h: FixtureHandler) -> None:
    """A Content-Length that is a Unicode digit ("²"), not a number; the body ends at close."""
    send_head(h, "text/html", {"Content-Length": "\u00b2", "Connection": "close"})
    h.wfile.write(OK_HTML.encode())


def endless_continue(h: FixtureHandler) -> None:
    """ "100 Continue" answers for ever: never a real status line, each one quick."""
    while True:
        h.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n" * 100)


def redirect_hops(h: FixtureHandler) -> None:
    """/hops?n=N: N redirects in a row, then the OK page."""
    hops = int(parse_qs(urlsplit(h.path).query).get("n", ["0"])[0])
    if hops > 0:
        h.redirect(f"/hops?n={hops - 1}")
    else:
        ok_page(h)


def sized(h: FixtureHandler) -> None:
    """/sized?bytes=N&send=length|chunked|gzip: a text/plain page of exactly N bytes.

    `length` declares its size, `chunked` does not, `gzip` declares only its compressed size.
    """
    query = parse_qs(urlsplit(h.path).query)
    size, send = int(query["bytes"][0]), query.get("send", ["length"])[0]
    body = (b"sized words " * (size // 12 + 1))[:size]
    if send == "gzip":
        h.send_body(200, "text/plain", gzip.compress(body), {"Content-Encoding": "gzip"})
    elif send == "chunked":
        send_head(h, "text/plain", {"Transfer-Encoding": "chunked"})
        for start in range(0, size, 8192):
            send_chunk(h, body[start : start + 8192])
        send_chunk(h, b"")
    else:
        h.send_body(200, "text/plain", body)


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
    "/no-words": lambda h: h.send_body(200, "text/html", b"<title>Nothing to count</title>"),
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
    "/flaky": flaky,
    "/bad-redirect": lambda h: h.redirect("http://[::1/broken"),
    # Hostile pages.
    "/gzip-bomb": gzip_bomb_page,
    "/gzip-bomb-chunked": gzip_bomb_chunked,
    "/gzip-bomb-double": lambda h: h.send_body(
        200, "text/html", gzip_bomb(layers=2), {"Content-Encoding": "gzip, gzip"}
    ),
    "/endless-chunked": endless_chunked,
    "/endless-stream": endless_stream,
    "/drip-body": drip_body,
    "/drip-chunked": drip_chunked,
    "/drip-headers": drip_headers,
    "/drip-gzip-name": drip_gzip_name,
    "/binary-noise": binary_noise,
    "/bad-content-length": bad_content_length,
    "/bad-retry-after": lambda h: h.send_body(503, "text/html", b"busy", {"Retry-After": "\u00b2"}),
    "/deep-nesting": lambda h: h.send_body(
        200,
        "text/html; charset=utf-8",
        b"<title>Deep</title>" + b"<b>" * DEEP_NESTING + b"deep words" + b"</b>" * DEEP_NESTING,
    ),
    "/deep-unclosed": lambda h: h.send_body(
        200, "text/html", b"<p>unclosed words" + b"<div>" * (MAX_BYTES // 6)
    ),
    "/huge-attribute": lambda h: h.send_body(
        200,
        "text/html; charset=utf-8",
        b'<title>Attribute</title><p title="' + b"x" * 90_000 + b'">attribute words</p>',
    ),
    "/malformed": lambda h: h.send_body(
        200,
        "text/html",
        b"<html><title>Broken</b></title><<p>>broken </i>markup <td>still</tr>"
        b"<div <span>>counted</table></html></html><!-- never closed",
    ),
    "/invalid-utf8": lambda h: h.send_body(
        200,
        "text/html; charset=utf-8",
        b"<p>valid \xff\xfe words \xc3 and \xed\xa0\x80 more\x80words</p>",
    ),
    "/mixed-encoding": lambda h: h.send_body(
        200, "text/html", "<p>naïve ".encode() + b"caf\xe9 cr\xe8me</p>"
    ),
    "/unknown-charset": lambda h: h.send_body(
        200,
        "text/html; charset=x-no-such-charset",
        '<meta charset="also-unknown"><p>fallback naïve</p>'.encode(),
    ),
    "/charset-base64": lambda h: h.send_body(
        200, "text/html; charset=base64", b"<p>not base64 words</p>"
    ),
    "/charset-idna": lambda h: h.send_body(
        200, "text/html", b'<meta charset="idna"><p>not idna words</p>'
    ),
    "/charset-utf7": lambda h: h.send_body(
        200, "text/html; charset=utf-7", b"<title>Seven +2AA-</title><p>seven words +2AA-</p>"
    ),
    "/endless-continue": endless_continue,
    "/hops": redirect_hops,
    "/sized": sized,
    "/invalid-shift-jis": lambda h: h.send_body(
        200, "text/html; charset=shift_jis", b"<p>sjis \x82\xa0 \x82 words \xff\xfc</p>"
    ),
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

    def count(self, path: str) -> int:
        """Count one request for `path`; return how many there were, this one included."""
        with self._lock:
            self.hits[path] += 1
            return self.hits[path]

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
