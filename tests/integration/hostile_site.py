"""A hostile web site on loopback: what one student's site could do to a class server.

Three ports of 127.0.0.1:
- the main HTTP port: a page flooding cookies (95 Set-Cookie headers, 94 of 64 KB: http.client
  refuses more than 100 headers), a small cookie on every other answer, a status line
  that drips in two bytes a second for ever, pages built to fill the database (600,000
  distinct words, a 5,000-letter token, a 100,000-letter title), and a robots.txt using
  the rules of RFC 9309 that a first-match parser gets wrong;
- a "paced" HTTP port whose robots.txt asks for a Crawl-delay of 1 s;
- a TLS port that accepts, then drips its handshake one byte a second for ever.
Every request's Cookie header is recorded (None when there is none), and when each path
was asked for, so tests can see that no cookie ever comes back and how requests were paced.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import socket
import string
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

DRIP_SECONDS = 0.5  # between two bytes of a dripping answer: within any read timeout
TLS_DRIP_SECONDS = 1.0  # between two bytes of the dripping handshake
COOKIES = 95  # Set-Cookie headers of the flooding page
COOKIE_BYTES = 64_000  # each; a header line may be 64 KB in all
# Rules for our group that urllib.robotparser (first match, no wildcards) gets wrong,
# behind another crawler's group and a "*" group that would refuse everything.
ROBOTS_TXT = """\
User-agent: otherbot
Disallow: /

User-agent: *
Disallow: /

User-agent: wordcrawl
Disallow: /private/
Allow: /private/open/
Disallow: /*.pdf$
"""
PACED_ROBOTS_TXT = "User-agent: *\nCrawl-delay: 1\n"
PAGE = b"<!doctype html><title>Hostile</title><p>an ordinary page of words</p>"


class HostileHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: HostileServer

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        self.server.record(parts.path, self.headers.get("Cookie"))
        query = {name: values[0] for name, values in parse_qs(parts.query).items()}
        route = ROUTES.get(parts.path, ordinary_page)
        # The crawler hangs up on a page it gave up on: not an error here.
        with contextlib.suppress(OSError):
            route(self, **query)

    def answer(self, body: bytes, content_type: str = "text/html", cookies: int = 1) -> None:
        """Send a whole answer with `cookies` Set-Cookie headers (64 KB each past the first)."""
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        # Names new in every answer: a jar that kept them would grow with each page.
        serial = next(self.server.answers)
        self.send_header("Set-Cookie", f"session{serial}={time.monotonic_ns()}; Path=/")
        for n in range(cookies - 1):
            value = "x" * COOKIE_BYTES
            self.send_header("Set-Cookie", f"flood{serial}_{n}={value}; Path=/; Max-Age=86400")
        self.end_headers()
        self.wfile.write(body)

    def drip(self, data: bytes) -> None:
        """Send bytes one at a time, DRIP_SECONDS apart, then the last byte for ever."""
        for byte in itertools.chain(data, itertools.repeat(data[-1])):
            if self.server.stopping.wait(DRIP_SECONDS):
                return
            self.wfile.write(bytes([byte]))
            self.wfile.flush()

    def log_message(self, format: str, *args: object) -> None:
        pass


def ordinary_page(h: HostileHandler, **_query: str) -> None:
    h.answer(PAGE)


def robots_txt(h: HostileHandler, **_query: str) -> None:
    h.answer(h.server.robots_txt.encode(), "text/plain")


def cookie_flood(h: HostileHandler, **_query: str) -> None:
    h.answer(PAGE, cookies=COOKIES)


def drip_status(h: HostileHandler, **_query: str) -> None:
    """A status line that never ends: "HTTP/1.1 200 OOOO...", a byte every DRIP_SECONDS."""
    h.drip(b"HTTP/1.1 200 O")


def distinct_words(h: HostileHandler, n: str = "600000", **_query: str) -> None:
    h.answer(distinct_words_text(int(n)), "text/plain; charset=utf-8")


def long_token(h: HostileHandler, letters: str = "5000", **_query: str) -> None:
    h.answer(f"<title>Long token</title><p>before {'a' * int(letters)} after</p>".encode())


def long_title(h: HostileHandler, letters: str = "100000", **_query: str) -> None:
    h.answer(f"<title>{'t' * int(letters)}</title><p>body</p>".encode())


ROUTES = {
    "/robots.txt": robots_txt,
    "/cookies": cookie_flood,
    "/drip-status": drip_status,
    "/distinct-words": distinct_words,
    "/long-token": long_token,
    "/long-title": long_title,
}
REPEATED = 20  # the last words of /distinct-words, which it says twice


@functools.lru_cache(maxsize=2)
def distinct_words_text(n: int) -> bytes:
    """n distinct five-letter words in alphabetical order ("aaaaa aaaab ..."), then the
    last REPEATED of them once more: those are the most frequent, yet last by word."""
    words = [
        "".join(letters)
        for letters in itertools.islice(itertools.product(string.ascii_lowercase, repeat=5), n)
    ]
    return " ".join(words + words[-REPEATED:]).encode()


def distinct_word(index: int) -> str:
    """Return the index-th word of distinct_words_text."""
    letters = []
    for _ in range(5):
        index, letter = divmod(index, 26)
        letters.append(string.ascii_lowercase[letter])
    return "".join(reversed(letters))


class HostileServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, robots: str, stopping: threading.Event) -> None:
        super().__init__(("127.0.0.1", 0), HostileHandler)
        self.robots_txt = robots
        self.stopping = stopping
        self.cookie_headers: list[str | None] = []
        self.requests: list[tuple[str, float]] = []  # (path, time.monotonic())
        self.answers = itertools.count()
        self._lock = threading.Lock()

    def record(self, path: str, cookie: str | None) -> None:
        with self._lock:
            self.cookie_headers.append(cookie)
            self.requests.append((path, time.monotonic()))


class HostileSite:
    """The main and paced HTTP servers and the TLS dripper, each in threads of its own."""

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self.main = HostileServer(ROBOTS_TXT, self.stopping)
        self.paced = HostileServer(PACED_ROBOTS_TXT, self.stopping)
        self.tls = socket.create_server(("127.0.0.1", 0))

    def start(self) -> HostileSite:
        for server in (self.main, self.paced):
            threading.Thread(target=server.serve_forever, daemon=True).start()
        threading.Thread(target=self._accept_tls, daemon=True).start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        for server in (self.main, self.paced):
            server.shutdown()
            server.server_close()
        self.tls.close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.main.server_port}{path}"

    def paced_url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.paced.server_port}{path}"

    def tls_url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.tls.getsockname()[1]}{path}"

    @property
    def allowed_hosts(self) -> list[str]:
        """The host:port of each server, for WORDCRAWL_ALLOWED_HOSTS."""
        ports = (self.main.server_port, self.paced.server_port, self.tls.getsockname()[1])
        return [f"127.0.0.1:{port}" for port in ports]

    @property
    def cookie_headers(self) -> list[str | None]:
        """The Cookie header of every request either HTTP server received, in order."""
        return self.main.cookie_headers + self.paced.cookie_headers

    def _accept_tls(self) -> None:
        with contextlib.suppress(OSError):  # closed by stop()
            while True:
                conn, _ = self.tls.accept()
                threading.Thread(target=self._drip_handshake, args=(conn,), daemon=True).start()

    def _drip_handshake(self, conn: socket.socket) -> None:
        """The header of a 16 KB handshake record, then its bytes, one a second for ever."""
        record = itertools.chain(b"\x16\x03\x03\x40\x00", itertools.repeat(0))
        with conn, contextlib.suppress(OSError):
            for byte in record:
                if self.stopping.wait(TLS_DRIP_SECONDS):
                    return
                conn.sendall(bytes([byte]))
