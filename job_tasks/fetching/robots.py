"""Obey robots.txt: fetched once per site, its rules for us kept in two bounded caches.

Before a page is fetched, `RobotsRules.rules_for` gives the rules of its site
(robots_txt.py reads them as RFC 9309 says). They are looked for, in order:
1. in this process's cache of parsed rules (least recently used first out, a bounded
   number of sites and of characters, each kept WORDCRAWL_ROBOTS_CACHE_SECONDS);
2. in Redis, shared by every worker: only the group that applies to us, written back as
   a small robots.txt, with the same lifetime, and only when it is small (a larger group
   stays in the process that read it), so Redis holds a bounded amount per site;
3. at the site, within the page's own deadline: a missing robots.txt (HTTP 4xx) allows
   everything; one the server fails to give (HTTP 5xx, 429) disallows everything for a
   minute. When the site cannot be reached at all (refused, timed out), the page fails
   with that error and is tried again later: nothing is fetched meanwhile, and nothing
   is cached, since a timeout may be the page's own (its deadline spent waiting for the
   host), not the site's.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import TYPE_CHECKING

import redis

from ..page_errors import HttpError, PageError
from ..urls import host_key
from .deadline import PageDeadline
from .robots_txt import ALLOW_ALL, DISALLOW_ALL, SiteRules, our_group, parse_rules, product_token

if TYPE_CHECKING:
    from .fetch import Fetcher

ROBOTS_MAX_BYTES = 512 * 1024  # RFC 9309 asks crawlers to read at least 500 KiB
ERROR_CACHE_SECONDS = 60  # a server error is asked again sooner than a real answer
SHARED_MAX_CHARS = 16 * 1024  # a larger group is not shared through Redis
LOCAL_MAX_SITES = 1024  # sites whose parsed rules a worker process keeps
LOCAL_MAX_CHARS = 2_000_000  # and their groups' characters in all


class RobotsRules:
    """Answer "which rules does this URL's site set for us?", through both caches."""

    def __init__(
        self,
        client: redis.Redis,
        user_agent: str,
        cache_seconds: int,
        # Not the "wordcrawl:robots:" of earlier versions, whose values (JSON of the whole
        # file) would read as a robots.txt that allows everything.
        key_prefix: str = "wordcrawl:robots-group:",
    ) -> None:
        self.client = client
        self.token = product_token(user_agent)
        self.cache_seconds = cache_seconds
        self.key_prefix = key_prefix
        self.local = LocalCache(LOCAL_MAX_SITES, LOCAL_MAX_CHARS)

    def rules_for(self, url: str, fetcher: Fetcher, deadline: PageDeadline) -> SiteRules:
        """Return the rules of the URL's site, downloading its robots.txt if no cache has them."""
        site = host_key(url)
        rules = self.local.get(site)
        if rules is not None:
            return rules
        key = self.key_prefix + site
        shared, ttl_ms = self.client.pipeline(transaction=False).get(key).pttl(key).execute()
        if shared is not None and ttl_ms > 0:
            rules = parse_rules(shared if isinstance(shared, str) else shared.decode("utf-8"))
            self.local.put(site, rules, ttl_ms / 1000)
            return rules
        group_txt, ttl = self._download(site, fetcher, deadline)
        rules = parse_rules(group_txt)
        if len(group_txt) <= SHARED_MAX_CHARS:
            self.client.set(key, group_txt.encode("utf-8"), ex=ttl)
        self.local.put(site, rules, ttl)
        return rules

    def _download(self, site: str, fetcher: Fetcher, deadline: PageDeadline) -> tuple[str, int]:
        """Fetch site/robots.txt; return our group of it and how long to keep it.

        Network failures (blocked, timeout, connection error) propagate: the page fails
        for the same reason.
        """
        try:
            response = fetcher.get(site + "/robots.txt", deadline, max_bytes=ROBOTS_MAX_BYTES)
        except HttpError as err:
            status = err.http_status or 500
            if status >= 500 or status == 429:
                return DISALLOW_ALL, ERROR_CACHE_SECONDS
            return ALLOW_ALL, self.cache_seconds
        except PageError as err:
            if err.code in ("too_large", "decode_error", "too_many_redirects"):
                return ALLOW_ALL, self.cache_seconds  # unreadable: as if there were none
            raise
        return our_group(_text(response.body, response.charset), self.token), self.cache_seconds


class LocalCache:
    """Parsed rules by site, least recently used first out, each until it expires;
    bounded in sites and in the characters of their groups. Shared by a process's threads."""

    def __init__(self, max_sites: int, max_chars: int) -> None:
        self.max_sites = max_sites
        self.max_chars = max_chars
        self._entries: OrderedDict[str, tuple[float, SiteRules]] = OrderedDict()
        self._chars = 0
        self._lock = threading.Lock()

    def get(self, site: str) -> SiteRules | None:
        """Return the site's rules if they are cached and fresh."""
        with self._lock:
            entry = self._entries.get(site)
            if entry is None:
                return None
            if entry[0] <= time.monotonic():
                self._remove(site)
                return None
            self._entries.move_to_end(site)
            return entry[1]

    def put(self, site: str, rules: SiteRules, ttl: float) -> None:
        """Keep a site's rules for `ttl` seconds, making room by dropping the oldest used."""
        if len(rules.text) > self.max_chars:
            return
        with self._lock:
            if site in self._entries:
                self._remove(site)
            self._entries[site] = (time.monotonic() + ttl, rules)
            self._chars += len(rules.text)
            while len(self._entries) > self.max_sites or self._chars > self.max_chars:
                self._remove(next(iter(self._entries)))

    def __len__(self) -> int:
        return len(self._entries)

    def _remove(self, site: str) -> None:
        _, rules = self._entries.pop(site)
        self._chars -= len(rules.text)


def _text(body: bytes, charset: str | None) -> str:
    """Decode robots.txt by its charset, or as UTF-8 when that names no usable encoding."""
    try:
        return body.decode(charset or "utf-8", "replace")
    except (LookupError, UnicodeError):  # "x-unknown", "base64", "idna"...
        return body.decode("utf-8", "replace")
