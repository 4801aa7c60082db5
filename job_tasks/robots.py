"""Obey robots.txt, fetched once per site and shared by every worker through Redis.

Rules follow RFC 9309: a robots.txt that is missing (HTTP 4xx) allows everything; one the
server cannot give (HTTP 5xx) disallows everything until the cached answer expires. The
parsing is the standard library's `urllib.robotparser`.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING
from urllib.robotparser import RobotFileParser

import redis

from .errors import HttpError, PageError
from .urls import host_key

if TYPE_CHECKING:
    from .fetch import Fetcher

ROBOTS_MAX_BYTES = 512 * 1024  # RFC 9309 asks crawlers to read at least 500 KiB
ERROR_CACHE_SECONDS = 60  # a server error is asked again sooner than a real answer


class RobotsRules:
    """Answer "may this URL be fetched?", caching each site's robots.txt in Redis."""

    def __init__(
        self,
        client: redis.Redis,
        user_agent: str,
        cache_seconds: int,
        key_prefix: str = "wordcrawl:robots:",
    ) -> None:
        self.client = client
        self.user_agent = user_agent
        self.cache_seconds = cache_seconds
        self.key_prefix = key_prefix

    def allows(self, url: str, fetcher: Fetcher) -> bool:
        """Say whether robots.txt of the URL's site lets wordcrawl fetch it."""
        site = host_key(url)
        key = self.key_prefix + site
        cached = self.client.get(key)
        if cached is None:
            status, text = self._download(site, fetcher)
            ttl = ERROR_CACHE_SECONDS if status >= 500 else self.cache_seconds
            self.client.set(key, json.dumps({"status": status, "text": text}), ex=ttl)
        else:
            answer = json.loads(cached)
            status, text = answer["status"], answer["text"]
        return _verdict(status, text, self.user_agent, url)

    def _download(self, site: str, fetcher: Fetcher) -> tuple[int, str]:
        """Fetch site/robots.txt; return (HTTP status, text). Network failures propagate."""
        deadline = time.monotonic() + fetcher.settings.page_timeout
        try:
            response = fetcher.get(site + "/robots.txt", deadline, max_bytes=ROBOTS_MAX_BYTES)
        except HttpError as err:
            return err.http_status or 500, ""
        except PageError as err:
            if err.code in ("too_large", "decode_error", "too_many_redirects"):
                return 404, ""  # an unreadable robots.txt is treated as none at all
            raise  # blocked, timeout, connection error: the page fails for the same reason
        return response.status, _text(response.body, response.charset)


def _text(body: bytes, charset: str | None) -> str:
    """Decode robots.txt by its charset, or as UTF-8 when that names no usable encoding."""
    try:
        return body.decode(charset or "utf-8", "replace")
    except (LookupError, UnicodeError):  # "x-unknown", "base64", "idna"...
        return body.decode("utf-8", "replace")


def _verdict(status: int, text: str, user_agent: str, url: str) -> bool:
    if status >= 500:
        return False
    if status >= 400 or not text.strip():
        return True
    parser = RobotFileParser()
    parser.parse(text.splitlines())
    return parser.can_fetch(user_agent, url)
