"""Get a page's bytes safely: the first step a worker takes for every page.

One `requests` session per worker thread, with the address guard mounted as its transport
and a cookie policy that refuses every cookie. Every fetching limit of docs/reference.md
is enforced here: robots.txt, timeouts (per read, and one deadline for the
whole page, robots.txt and redirects included, kept by deadline.py even against a server
that drips bytes), the response size read as a stream (after decompression, so gzip bombs
stop too), the number of redirects, and the content type. Each failure becomes a
`PageError` with its error code.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from http import cookiejar
from urllib.parse import urljoin, urlsplit

import requests
from urllib3.exceptions import DecodeError as Urllib3DecodeError
from urllib3.exceptions import ProtocolError, ReadTimeoutError

from ..page_errors import (
    ConnectionFailed,
    DecodeError,
    HttpError,
    InvalidUrl,
    PageError,
    RobotsDisallowed,
    Timeout,
    TooLarge,
    TooManyRedirects,
    UnsupportedContentType,
)
from ..settings import Settings
from ..urls import host_key, normalize_url
from .deadline import PageDeadline
from .guard import AddressPolicy, GuardedAdapter
from .politeness import HostBusy, HostLimiter
from .robots import RobotsRules

COUNTED_MEDIA_TYPES = ("text/html", "application/xhtml+xml", "text/plain")
ACCEPT = "text/html,application/xhtml+xml;q=0.9,text/plain;q=0.8"
CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True)
class Response:
    """What a server sent back for a page, after redirects."""

    url: str  # the final URL, after redirects
    status: int
    media_type: str  # e.g. "text/html", lower-case, without parameters
    charset: str | None  # the charset parameter of Content-Type, if any
    body: bytes


class NoCookies(cookiejar.DefaultCookiePolicy):
    """Refuse every cookie: no request carries one, and a session keeps none (a page may
    send a hundred large Set-Cookie headers, and sessions live as long as their thread)."""

    def set_ok(self, cookie: cookiejar.Cookie, request: object) -> bool:
        return False

    def return_ok(self, cookie: cookiejar.Cookie, request: object) -> bool:
        return False


class Fetcher:
    """Fetch pages under the settings' limits; one instance serves a whole worker process."""

    def __init__(
        self,
        settings: Settings,
        robots: RobotsRules | None = None,
        limiter: HostLimiter | None = None,
    ) -> None:
        self.settings = settings
        self.robots = robots
        self.limiter = limiter
        self.policy = AddressPolicy(settings.allowed_hosts, settings.allow_private)
        self._local = threading.local()  # requests sessions are not shared between threads

    @property
    def session(self) -> requests.Session:
        """Return this thread's session, whose connections all pass the address guard."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.trust_env = False  # a proxy from the environment would bypass the guard
            session.headers.update({"User-Agent": self.settings.user_agent, "Accept": ACCEPT})
            session.cookies.set_policy(NoCookies())
            adapter = GuardedAdapter(self.policy, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            self._local.session = session
        return session

    def fetch(self, url: str) -> Response:
        """Fetch a page to count: robots.txt allowing, redirects followed, type checked,
        every step of it (robots.txt included) within WORDCRAWL_PAGE_TIMEOUT."""
        with PageDeadline(time.monotonic() + self.settings.page_timeout) as deadline:
            return self.get(url, deadline, media_types=COUNTED_MEDIA_TYPES, obey_robots=True)

    def get(
        self,
        url: str,
        deadline: PageDeadline,
        *,
        media_types: Collection[str] | None = None,
        max_bytes: int | None = None,
        obey_robots: bool = False,
    ) -> Response:
        """GET a URL, following up to max_redirects redirects, each hop checked again."""
        max_bytes = max_bytes or self.settings.max_response_bytes
        for _hop in range(self.settings.max_redirects + 1):
            if deadline.expired or deadline.time_left() <= 0:
                raise self._late()
            if _has_userinfo(url):  # normalize_url refuses these; never send them
                raise InvalidUrl("the URL holds a user name or password, which are not sent")
            delay_ms = None
            if obey_robots and self.robots is not None:
                rules = self.robots.rules_for(url, self, deadline)
                if not rules.allows(url):
                    raise RobotsDisallowed(f"robots.txt of this site does not allow {url}")
                delay_ms = rules.delay_ms
            with self._host_slot(url, deadline.at, delay_ms):
                try:
                    response = self._send(url)  # redirects are not followed by requests, but here
                    with response:
                        if response.is_redirect:
                            url = _redirect_target(response)
                            continue
                        answer = _read(response, deadline.at, media_types, max_bytes)
                except PageError as err:
                    if deadline.expired:  # the error is what cutting the connection looks like
                        raise self._late() from err
                    raise
                if deadline.expired:  # cut while reading a body that ends at close
                    raise self._late()
                return answer
        raise TooManyRedirects(
            f"more than {self.settings.max_redirects} redirects, the last one to {url}"
        )

    def _late(self) -> Timeout:
        return Timeout(f"the page took longer than {self.settings.page_timeout:g} s")

    @contextmanager
    def _host_slot(self, url: str, deadline: float, delay_ms: int | None) -> Iterator[None]:
        """Wait for a free slot of the URL's host (shared by all workers), if limited."""
        if self.limiter is None:
            yield
            return
        try:
            with self.limiter.slot(host_key(url), deadline, delay_ms):
                yield
        except HostBusy as err:
            raise Timeout(str(err)) from err

    def _send(self, url: str) -> requests.Response:
        timeout = (self.settings.connect_timeout, self.settings.read_timeout)
        try:
            return self.session.get(url, stream=True, allow_redirects=False, timeout=timeout)
        except requests.exceptions.Timeout as err:
            raise Timeout(f"no answer in time from {url}") from err
        except requests.exceptions.SSLError as err:
            raise ConnectionFailed(f"the TLS connection to {url} failed: {err}") from err
        except requests.exceptions.ConnectionError as err:
            raise ConnectionFailed(f"cannot connect to {url}: {_root_cause(err)}") from err
        except (requests.exceptions.InvalidURL, requests.exceptions.InvalidHeader) as err:
            raise InvalidUrl(f"cannot request {url}: {err}") from err
        except requests.exceptions.RequestException as err:  # what requests has left
            raise ConnectionFailed(f"the request to {url} failed: {err}") from err
        except ValueError as err:
            # requests parses a redirect's Location even when it does not follow it,
            # and urllib raises ValueError on a broken one such as "http://[::1/x".
            raise InvalidUrl(f"the answer from {url} redirects to an unusable URL") from err


def _has_userinfo(url: str) -> bool:
    try:
        return "@" in urlsplit(url).netloc
    except ValueError:  # unusable: _send says so
        return False


def _redirect_target(response: requests.Response) -> str:
    location = response.headers["Location"]
    try:
        return normalize_url(urljoin(response.url, location))
    except ValueError as err:  # BadUrl, or urljoin failing on a broken [IPv6] host
        # The location is shown unless it may hold a password (user:password@host).
        shown = "" if "@" in location else f" {location[:200]!r}"
        raise InvalidUrl(f"the page redirects to an unusable URL{shown}: {err}") from err


def _read(
    response: requests.Response,
    deadline: float,
    media_types: Collection[str] | None,
    max_bytes: int,
) -> Response:
    """Check the status and type of an answer, then read its body within the limits."""
    status = response.status_code
    if not 200 <= status < 300:
        raise HttpError(
            f"the server answered HTTP {status} {response.reason or ''}".rstrip(),
            http_status=status,
            retry_after=retry_after_seconds(response.headers.get("Retry-After")),
        )
    media_type, charset = parse_content_type(response.headers.get("Content-Type"))
    if media_types is not None and media_type not in media_types:
        raise UnsupportedContentType(
            f"the content type is {media_type or 'not given'}; wordcrawl counts only "
            + ", ".join(media_types)
        )
    declared = response.headers.get("Content-Length", "")
    # isascii: "²" is a digit to str.isdigit but not to int(); urllib3 ignores such a header.
    if declared.isascii() and declared.isdigit() and int(declared) > max_bytes:
        raise TooLarge(f"the page declares {int(declared):,} bytes; the limit is {max_bytes:,}")
    body = bytearray()
    try:
        # read1 returns whatever has arrived, so a server dripping one byte at a time
        # still lets the deadline be checked; decoding happens chunk by chunk.
        while chunk := response.raw.read1(CHUNK_BYTES, decode_content=True):
            body += chunk
            if len(body) > max_bytes:
                raise TooLarge(f"the page is larger than the limit of {max_bytes:,} bytes")
            if time.monotonic() > deadline:
                raise Timeout("the page took too long to arrive")
    except ReadTimeoutError as err:
        raise Timeout("the server stopped sending the page") from err
    except Urllib3DecodeError as err:
        raise DecodeError(f"the compressed body cannot be decoded: {err}") from err
    except (ProtocolError, OSError) as err:
        raise ConnectionFailed(f"the connection broke while reading: {err}") from err
    return Response(response.url, status, media_type, charset, bytes(body))


def parse_content_type(value: str | None) -> tuple[str, str | None]:
    """Split a Content-Type header into its media type and charset parameter."""
    if not value:
        return "", None
    media_type, _, params = value.partition(";")
    charset = None
    for param in params.split(";"):
        name, _, param_value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = param_value.strip().strip("\"'") or None
    return media_type.strip().lower(), charset


def retry_after_seconds(value: str | None) -> float | None:
    """Read a Retry-After header (seconds or an HTTP date) as seconds from now."""
    if not value:
        return None
    if value.strip().isascii() and value.strip().isdigit():  # not "²", a digit to isdigit
        return float(value.strip())
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _root_cause(err: BaseException) -> str:
    """Dig the useful sentence ("Connection refused") out of requests' wrapped errors."""
    for _ in range(10):
        inner = err.__cause__ or (err.args[0] if err.args else None)
        if not isinstance(inner, BaseException):
            break
        err = inner
    return str(err) or type(err).__name__
