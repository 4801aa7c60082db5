"""Check and normalise URLs: what the manager accepts as a seed, what a worker follows.

A URL is kept as the user wrote it except for what makes two spellings the same page:
the scheme and host are lower-cased, a default port (:80, :443) is dropped, an empty
path becomes "/", and the #fragment goes (a URL counts once per job without it). A URL
that holds a user name or password (`user:password@host`) is refused: it would be stored
and shown to the whole class. Its length is counted as it is sent, percent-encoded: one
non-ASCII character is up to 12 characters on the wire.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urljoin, urlsplit, urlunsplit

SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}


class BadUrl(ValueError):
    """The text is not an http(s) URL wordcrawl can fetch."""


def normalize_url(url: str, max_length: int = 2048) -> str:
    """Return the canonical form of an http(s) URL, or raise BadUrl saying what is wrong."""
    if not isinstance(url, str):
        raise BadUrl("a URL must be a string")
    url = url.strip()
    if not url:
        raise BadUrl("the URL is empty")
    if len(url) > max_length:  # cheap first: the encoded length is at least this
        raise BadUrl(f"the URL is longer than {max_length} characters")
    if any(ord(char) < 0x21 or char == "\x7f" for char in url):
        raise BadUrl("the URL contains spaces or control characters")
    try:
        if encoded_length(url) > max_length:
            raise BadUrl(f"the URL is longer than {max_length} characters once percent-encoded")
    except UnicodeEncodeError:  # a lone surrogate ("\ud800" in JSON) is no character
        raise BadUrl("the URL contains a lone surrogate, which is not a character") from None
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError for a port that is not a number 0-65535
    except ValueError as err:
        raise BadUrl(f"the URL cannot be parsed: {err}") from err
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise BadUrl("only http and https URLs can be crawled")
    if not parts.hostname:
        raise BadUrl("the URL has no host")
    if "\\" in parts.netloc:
        # http://other\@host/ is host "host" here but "other" to urllib3 and browsers,
        # which read a backslash as a slash: the same-host rule must see the host fetched.
        raise BadUrl("the URL has a backslash before its path")
    if port == 0:
        raise BadUrl("the URL has port 0")
    if "@" in parts.netloc:
        # Not echoed: the text before "@" may be a password.
        raise BadUrl("the URL holds a user name or password (user:password@host); remove it")
    after_bracket = parts.netloc.partition("]")[2]
    if after_bracket and not after_bracket.startswith(":"):
        # urllib ignores what follows "[::1]" unless it is ":port": refuse, not guess.
        raise BadUrl("the URL has text after its [IPv6] host")
    netloc = parts.netloc.lower()  # the host and port: no userinfo is left
    if port is None or port == DEFAULT_PORTS[scheme]:
        netloc = netloc.removesuffix(":" if port is None else f":{port}")
    canonical = urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))
    if encoded_length(canonical) > max_length:
        raise BadUrl(f"the URL is longer than {max_length} characters once percent-encoded")
    return canonical


def encoded_length(url: str) -> int:
    """Return the length of a URL as it is sent: each byte of a non-ASCII character's
    UTF-8 form becomes %XX (an upper bound for a host, whose IDNA form is shorter)."""
    if url.isascii():
        return len(url)
    data = url.encode("utf-8")
    return len(data) + 2 * sum(byte >= 0x80 for byte in data)


def same_host_link(
    page_url: str, href: str, max_length: int = 2048, base_url: str | None = None
) -> str | None:
    """Resolve a link found on a page; return it if it stays on the page's host, else None.

    "The same host" is the same host name (any port or scheme of it is the same site).
    Relative links resolve against `base_url` (the page's <base href>) when given, else
    against `page_url`. Links to other hosts, other schemes (mailto:, javascript:) and bad
    URLs give None.
    """
    try:
        target = normalize_url(urljoin(base_url or page_url, href.strip()), max_length)
    except (BadUrl, ValueError):
        return None
    return target if urlsplit(target).hostname == urlsplit(page_url).hostname else None


def same_host_links(
    page_url: str, hrefs: Iterable[str], max_length: int = 2048, base_url: str | None = None
) -> list[str]:
    """Return the distinct links of a page worth following, in the order they appear."""
    found = (same_host_link(page_url, href, max_length, base_url) for href in hrefs)
    return list(dict.fromkeys(link for link in found if link and link != page_url))


def host_key(url: str) -> str:
    """Return scheme://host:port of a URL: the unit of robots.txt and of politeness limits."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}:{port}"
