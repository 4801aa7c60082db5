"""robots.txt as RFC 9309 says, rule by rule (job_tasks/fetching/robots_txt.py), and its caches
(job_tasks/fetching/robots.py): one download per site, shared through Redis only when small."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from memory_redis import MemoryRedis

from job_tasks.fetching.deadline import PageDeadline
from job_tasks.fetching.fetch import Response
from job_tasks.fetching.robots import ERROR_CACHE_SECONDS, SHARED_MAX_CHARS, LocalCache, RobotsRules
from job_tasks.fetching.robots_txt import (
    ALLOW_ALL,
    DISALLOW_ALL,
    our_group,
    parse_rules,
    product_token,
)
from job_tasks.page_errors import ConnectionFailed, HttpError, PageError, Timeout, TooLarge
from job_tasks.settings import Settings

SITE = "http://example.com:80"
USER_AGENT = Settings().user_agent  # "wordcrawl/0.1 (+https://...; teaching crawler)"
TOKEN = product_token(USER_AGENT)


def allowed(robots_txt: str, path: str) -> bool:
    """Say whether wordcrawl may fetch a path of a site with this robots.txt."""
    return parse_rules(our_group(robots_txt, TOKEN)).allows(f"http://example.com{path}")


def test_the_product_token_is_the_user_agents_first_word():
    assert TOKEN == "wordcrawl"
    assert product_token("Other_Bot-2/1.0 (x)") == "other_bot-"


@pytest.mark.parametrize(
    ("robots_txt", "path", "expected"),
    [
        # The longest matching rule wins, whatever the order of the lines.
        ("Disallow: /private/\nAllow: /private/open/", "/private/open/page.html", True),
        ("Disallow: /private/\nAllow: /private/open/", "/private/closed.html", False),
        ("Allow: /a/\nDisallow: /a/b/", "/a/b/c", False),
        ("Allow: /a/\nDisallow: /a/b/", "/a/c", True),
        # Allow wins a tie (rules of the same length).
        ("Disallow: /page\nAllow: /page", "/page", True),
        ("Allow: /page\nDisallow: /page", "/page", True),
        ("Disallow: /*.php\nAllow: /*.php", "/index.php", True),
        # "*" matches any run of characters.
        ("Disallow: /*.pdf", "/a/file.pdf", False),
        ("Disallow: /*.pdf", "/a/file.html", True),
        ("Disallow: /private*/", "/private-area/x", False),
        ("Disallow: /*/admin", "/site/admin/page", False),
        # "$" ends the path.
        ("Disallow: /*.pdf$", "/a/file.pdf", False),
        ("Disallow: /*.pdf$", "/a/file.pdf?page=2", True),
        ("Disallow: /*.pdf$", "/a/file.pdfx", True),
        ("Disallow: /$", "/", False),
        ("Disallow: /$", "/other", True),
        # The query is part of what rules match.
        ("Disallow: /search?", "/search?q=1", False),
        ("Disallow: /search?", "/searching", True),
        # Paths are compared percent-encoded.
        ("Disallow: /caf%C3%A9", "/café", False),
        ("Disallow: /café", "/caf%C3%A9/menu", False),
        # An empty Disallow allows everything; robots.txt itself is always allowed.
        ("Disallow:", "/anything", True),
        ("Disallow: /", "/robots.txt", True),
        ("Disallow: /", "/anything", False),
    ],
)
def test_rules_of_the_group_decide_by_rfc_9309(robots_txt, path, expected):
    assert allowed(f"User-agent: *\n{robots_txt}\n", path) is expected


@pytest.mark.parametrize(
    ("robots_txt", "expected"),
    [
        # Our own group wins over "*", whichever comes first.
        ("User-agent: *\nDisallow: /\n\nUser-agent: wordcrawl\nDisallow: /private/", True),
        ("User-agent: wordcrawl\nAllow: /\n\nUser-agent: *\nDisallow: /", True),
        ("User-agent: WordCrawl\nAllow: /\nUser-agent: *\nDisallow: /", True),  # any case
        ("User-agent: wordcrawl/2.0\nAllow: /\nUser-agent: *\nDisallow: /", True),  # version
        # Another crawler's group is not ours: "*" applies.
        ("User-agent: otherbot\nAllow: /\n\nUser-agent: *\nDisallow: /", False),
        ("User-agent: word\nAllow: /\n\nUser-agent: *\nDisallow: /", False),  # a prefix only
        ("User-agent: wordcrawler\nAllow: /\n\nUser-agent: *\nDisallow: /", False),
        # Several user-agent lines start one group.
        ("User-agent: otherbot\nUser-agent: wordcrawl\nDisallow: /\n", False),
        # No group for us and no "*" group: everything is allowed.
        ("User-agent: otherbot\nDisallow: /\n", True),
        # A rule before any user-agent line applies to nobody.
        ("Disallow: /\nUser-agent: otherbot\nDisallow: /\n", True),
        # Comments and blank lines are nothing.
        ("# Disallow: /\nUser-agent: * # all\n\nAllow: / # open\n", True),
        ("", True),
    ],
)
def test_the_group_of_our_product_token_applies_else_star(robots_txt, expected):
    assert allowed(robots_txt, "/page") is expected


def test_groups_for_us_are_merged():
    robots_txt = (
        "User-agent: wordcrawl\nDisallow: /a/\n\n"
        "User-agent: *\nDisallow: /b/\n\n"
        "User-agent: wordcrawl\nDisallow: /c/\n"
    )

    assert not allowed(robots_txt, "/a/x")
    assert allowed(robots_txt, "/b/x")
    assert not allowed(robots_txt, "/c/x")


def test_only_our_group_is_kept():
    robots_txt = (
        "Sitemap: https://example.com/sitemap.xml\n"
        "User-agent: otherbot\nDisallow: /other-secret/\n\n"
        "User-agent: *\nDisallow: /private/ # keep out\nCrawl-delay: 2\n"
    )

    group = our_group(robots_txt, TOKEN)

    assert group == "User-agent: *\nDisallow: /private/\nCrawl-delay: 2\n"


@pytest.mark.parametrize(
    ("robots_txt", "delay_ms"),
    [
        ("User-agent: *\nCrawl-delay: 2.5\n", 2500),
        ("User-agent: *\nCrawl-delay: 60\n", 10_000),  # capped at 10 s
        ("User-agent: *\nCrawl-delay: soon\n", 0),  # not a number: ignored
        ("User-agent: *\nCrawl-delay: -1\n", 0),
        ("User-agent: otherbot\nCrawl-delay: 5\n\nUser-agent: *\nDisallow: /x\n", 0),
        ("User-agent: wordcrawl\nCrawl-delay: 3\n\nUser-agent: *\nCrawl-delay: 1\n", 3000),
        ("", 0),
    ],
)
def test_crawl_delay_of_our_group_is_the_hosts_gap(robots_txt, delay_ms):
    assert parse_rules(our_group(robots_txt, TOKEN)).delay_ms == delay_ms


# The caches. A stand-in for the Fetcher answers each robots.txt request as told, and
# counts them; MemoryRedis stands in for Redis.


class ServesRobots:
    """Stands in for the Fetcher: answers every get with one robots.txt, or raises."""

    settings = SimpleNamespace(page_timeout=5)

    def __init__(self, body: bytes = b"", charset: str | None = None, error=None) -> None:
        self.response = Response(f"{SITE}/robots.txt", 200, "text/plain", charset, body)
        self.error = error
        self.requests = 0

    def get(self, url: str, deadline: PageDeadline, **limits: object) -> Response:
        assert url.endswith("/robots.txt")
        self.requests += 1
        if self.error is not None:
            raise self.error
        return self.response


def rules_for(robots: RobotsRules, fetcher: ServesRobots, path: str = "/page"):
    return robots.rules_for(SITE + path, fetcher, PageDeadline(time.monotonic() + 5))


@pytest.mark.parametrize("charset", [None, "utf-8", "x-no-such-charset", "base64", "idna"])
def test_robots_txt_is_read_whatever_charset_it_names(charset):
    fetcher = ServesRobots(b"User-agent: *\nDisallow: /private/\n", charset)
    robots = RobotsRules(MemoryRedis(), USER_AGENT, 60)

    assert not rules_for(robots, fetcher).allows(f"{SITE}/private/page")
    assert rules_for(robots, fetcher).allows(f"{SITE}/public/page")


def test_one_download_per_site_shared_by_every_worker_through_redis():
    redis = MemoryRedis()
    fetcher = ServesRobots(b"User-agent: otherbot\nDisallow: /\nUser-agent: *\nDisallow: /x/\n")
    first, second = RobotsRules(redis, USER_AGENT, 3600), RobotsRules(redis, USER_AGENT, 3600)

    assert not rules_for(first, fetcher, "/x/1").allows(f"{SITE}/x/1")
    assert rules_for(first, fetcher).allows(f"{SITE}/page")  # the process's own cache
    assert not rules_for(second, fetcher, "/x/1").allows(f"{SITE}/x/1")  # another process

    assert fetcher.requests == 1
    key = f"wordcrawl:robots-group:{SITE}"
    assert redis.values[key] == b"User-agent: *\nDisallow: /x/\n"  # our group only
    assert 3590 <= redis.ttl(key) <= 3600


def test_a_group_too_large_to_share_stays_in_the_process_that_read_it():
    rules = "".join(f"Disallow: /private-{n:06d}/\n" for n in range(SHARED_MAX_CHARS // 20))
    redis = MemoryRedis()
    fetcher = ServesRobots(f"User-agent: *\n{rules}".encode())
    robots = RobotsRules(redis, USER_AGENT, 3600)

    assert not rules_for(robots, fetcher).allows(f"{SITE}/private-000001/x")
    assert rules_for(robots, fetcher).allows(f"{SITE}/public")

    assert redis.values == {}
    assert fetcher.requests == 1


@pytest.mark.parametrize(
    ("error", "group", "ttl"),
    [
        (HttpError("gone", http_status=404), ALLOW_ALL, 3600),
        (HttpError("forbidden", http_status=403), ALLOW_ALL, 3600),
        (HttpError("broken", http_status=500), DISALLOW_ALL, ERROR_CACHE_SECONDS),
        (HttpError("busy", http_status=503), DISALLOW_ALL, ERROR_CACHE_SECONDS),
        (HttpError("slow down", http_status=429), DISALLOW_ALL, ERROR_CACHE_SECONDS),
        (TooLarge("huge"), ALLOW_ALL, 3600),  # unreadable: as if there were none
    ],
    ids=["404", "403", "500", "503", "429", "too-large"],
)
def test_4xx_allows_all_and_5xx_disallows_all_for_a_minute(error, group, ttl):
    redis = MemoryRedis()
    robots = RobotsRules(redis, USER_AGENT, 3600)

    rules = rules_for(robots, ServesRobots(error=error))

    assert rules.allows(f"{SITE}/page") is (group == ALLOW_ALL)
    assert redis.values[f"wordcrawl:robots-group:{SITE}"] == group.encode()
    assert ttl - 10 <= redis.ttl(f"wordcrawl:robots-group:{SITE}") <= ttl


@pytest.mark.parametrize(
    "error", [Timeout("slow"), ConnectionFailed("refused")], ids=["timeout", "refused"]
)
def test_an_unreachable_robots_txt_fails_the_page_and_is_not_cached(error):
    redis = MemoryRedis()
    robots = RobotsRules(redis, USER_AGENT, 3600)

    with pytest.raises(PageError) as info:
        rules_for(robots, ServesRobots(error=error))

    assert info.value is error
    assert redis.values == {}
    assert len(robots.local) == 0


def test_the_local_cache_is_bounded_in_sites_and_characters_least_recently_used_out():
    cache = LocalCache(max_sites=3, max_chars=100)
    small, big = parse_rules("User-agent: *\nDisallow: /a\n"), parse_rules(DISALLOW_ALL * 3)
    for site in "abc":
        cache.put(site, small, 60)
    cache.get("a")  # used: "b" is now the least recently used

    cache.put("d", small, 60)

    assert [site for site in "abcd" if cache.get(site)] == ["a", "c", "d"]
    cache.put("e", big, 60)  # 60 characters: two others make room
    assert cache._chars <= 100
    assert cache.get("e") is big
    cache.put("f", parse_rules(DISALLOW_ALL * 10), 60)  # larger than the whole cache
    assert cache.get("f") is None


def test_the_local_cache_forgets_what_has_expired():
    cache = LocalCache(max_sites=3, max_chars=100)
    cache.put("a", parse_rules(ALLOW_ALL), 0)  # kept for no time at all

    assert cache.get("a") is None
    assert len(cache) == 0
