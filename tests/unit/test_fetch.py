"""job_tasks/fetching/fetch.py: its header helpers, and fetching from loopback servers."""

import contextlib
import shutil
import socket
import ssl
import subprocess
import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from memory_redis import MemoryRedis

from job_tasks.fetching.fetch import Fetcher, parse_content_type, retry_after_seconds
from job_tasks.fetching.robots import RobotsRules
from job_tasks.page_errors import InvalidUrl, Timeout
from job_tasks.settings import Settings


@pytest.mark.parametrize(
    ("header", "parsed"),
    [
        (None, ("", None)),
        ("", ("", None)),
        ("text/html", ("text/html", None)),
        ('Text/HTML; Charset="UTF-8"', ("text/html", "UTF-8")),
        ("text/plain;charset='latin-1'; format=flowed", ("text/plain", "latin-1")),
        ("application/xhtml+xml ; q=1; charset=utf-8", ("application/xhtml+xml", "utf-8")),
        ("text/html; charset=", ("text/html", None)),
    ],
)
def test_content_type_splits_into_media_type_and_charset(header, parsed):
    assert parse_content_type(header) == parsed


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("120", 120.0), (" 5 ", 5.0), (None, None), ("", None), ("soon", None), ("-1", None)],
)
def test_retry_after_in_seconds(header, seconds):
    assert retry_after_seconds(header) == seconds


def test_retry_after_as_a_future_date():
    header = formatdate(time.time() + 60, usegmt=True)

    assert 55 <= retry_after_seconds(header) <= 60


def test_retry_after_in_the_past_means_now():
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


# Fetching from small servers on loopback, each in a thread of this process: one deadline
# holds the whole page, and no cookie is kept or sent.

PAGE_TIMEOUT = 1.5  # seconds, the fetchers' WORDCRAWL_PAGE_TIMEOUT here
LATE = 0.6  # how much past the deadline a cut fetch may end, on a busy machine


class CookieHandler(BaseHTTPRequestHandler):
    """/set answers 95 large cookies; /robots.txt drips if the server says so; every
    path records the Cookie header it received."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.server.cookies_seen.append(self.headers.get("Cookie"))
        if self.path == "/drip" or (self.path == "/robots.txt" and self.server.drip_robots):
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            with contextlib.suppress(OSError):
                while not self.server.stopping.wait(0.2):
                    self.wfile.write(b"#")
                    self.wfile.flush()
            return
        if self.path == "/to-userinfo":
            port = self.server.server_port
            self.send_response(302)
            self.send_header("Location", f"http://user:secret@127.0.0.1:{port}/page")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b"<title>ok</title><p>words</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        if self.path == "/set":
            for n in range(95):  # http.client refuses more than 100 headers in all
                self.send_header("Set-Cookie", f"c{n}={'x' * 4000}; Path=/")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def http_server(drip_robots: bool = False, tls: ssl.SSLContext | None = None):
    server = ThreadingHTTPServer(("127.0.0.1", 0), CookieHandler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    server.cookies_seen, server.drip_robots = [], drip_robots
    server.stopping = threading.Event()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stopping.set()
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def tls_dripping_server():
    """Accept, then send a TLS record header announcing 16 KB, and one byte of it every
    0.2 s: each read gets a byte in time, the handshake never ends."""
    listener = socket.create_server(("127.0.0.1", 0))
    stopping = threading.Event()

    def drip(conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            conn.sendall(b"\x16\x03\x03\x40\x00")
            while not stopping.wait(0.2):
                conn.sendall(b"\x00")

    def serve() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = listener.accept()
                threading.Thread(target=drip, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        stopping.set()
        listener.close()


def fetcher_for(port: int, robots: RobotsRules | None = None) -> Fetcher:
    settings = Settings(
        allowed_hosts=frozenset({("127.0.0.1", port)}),
        connect_timeout=5,
        read_timeout=5,  # every drip is well within it: only the page deadline can stop it
        page_timeout=PAGE_TIMEOUT,
    )
    return Fetcher(settings, robots)


def test_cookies_are_neither_kept_nor_sent():
    with http_server() as server:
        fetcher = fetcher_for(server.server_port)
        url = f"http://127.0.0.1:{server.server_port}"

        fetcher.fetch(f"{url}/set")
        fetcher.fetch(f"{url}/page")

    assert server.cookies_seen == [None, None]
    assert len(fetcher.session.cookies) == 0


def test_a_redirect_to_a_url_with_a_password_is_not_followed_nor_shown():
    with http_server() as server:
        port = server.server_port

        with pytest.raises(InvalidUrl) as info:
            fetcher_for(port).fetch(f"http://127.0.0.1:{port}/to-userinfo")

    assert "secret" not in info.value.message
    assert len(server.cookies_seen) == 1  # the redirect only


def test_a_dripping_tls_handshake_ends_at_the_page_deadline():
    with tls_dripping_server() as port:
        started = time.monotonic()

        with pytest.raises(Timeout):
            fetcher_for(port).fetch(f"https://127.0.0.1:{port}/")

    assert PAGE_TIMEOUT <= time.monotonic() - started <= PAGE_TIMEOUT + LATE


def test_robots_txt_is_fetched_within_the_pages_own_deadline():
    with http_server(drip_robots=True) as server:
        port = server.server_port
        robots = RobotsRules(MemoryRedis(), Settings().user_agent, 60)
        started = time.monotonic()

        with pytest.raises(Timeout):
            fetcher_for(port, robots).fetch(f"http://127.0.0.1:{port}/page")

    assert PAGE_TIMEOUT <= time.monotonic() - started <= PAGE_TIMEOUT + LATE
    assert len(server.cookies_seen) == 1  # robots.txt only: the page itself never asked


def test_the_deadline_closes_no_connection_of_a_page_that_ended_in_time():
    with http_server() as server:
        fetcher = fetcher_for(server.server_port)
        url = f"http://127.0.0.1:{server.server_port}/page"
        fetcher.fetch(url)
        connections = server_connections(fetcher)

        time.sleep(PAGE_TIMEOUT + 0.2)  # past the first page's deadline: its timer is gone
        fetcher.fetch(url)

    assert server_connections(fetcher) == connections == 1  # the same one, kept alive


def server_connections(fetcher: Fetcher, scheme: str = "http://") -> int:
    """Count the open connections of the fetcher's session (this thread's)."""
    adapter = fetcher.session.get_adapter(scheme)
    return sum(pool.num_connections for pool in adapter.poolmanager.pools._container.values())


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> str:
    """A self-signed certificate (and its key) for 127.0.0.1, made by the openssl command."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    path = tmp_path_factory.mktemp("tls") / "cert.pem"
    new_key = ["-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    subject = ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
    files = ["-keyout", str(path), "-out", str(path)]
    subprocess.run(
        ["openssl", "req", *new_key, *subject, *files],
        check=True,
        capture_output=True,
    )
    return str(path)


def test_https_pages_are_fetched_on_one_kept_connection_and_cut_at_the_deadline(certificate):
    """A kept TLS connection is watched again for each page (its descriptor, duplicated)."""
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(certificate)
    with http_server(tls=tls) as server:
        fetcher = fetcher_for(server.server_port)
        fetcher.session.verify = certificate
        url = f"https://127.0.0.1:{server.server_port}"

        assert fetcher.fetch(f"{url}/page").status == 200
        assert fetcher.fetch(f"{url}/page").status == 200
        connections = server_connections(fetcher, "https://")
        started = time.monotonic()
        with pytest.raises(Timeout):
            fetcher.fetch(f"{url}/drip")

    assert connections == 1
    assert PAGE_TIMEOUT <= time.monotonic() - started <= PAGE_TIMEOUT + LATE
