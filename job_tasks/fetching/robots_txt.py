"""Read a robots.txt as RFC 9309 says: which group applies to us, and what it allows.

Pure, without I/O (robots.py fetches and caches). A robots.txt is cut down to the one
group that applies to wordcrawl, written back as a small robots.txt of its own
(`our_group`): that is what the caches keep, so a worker that reads it from Redis decides
exactly as the worker that downloaded the whole file. The group is chosen by the RFC:
the groups whose user-agent is our product token (case-insensitive), else the `*`
groups, else none (everything allowed); several matching groups are merged. Its rules are
then judged by Protego, Scrapy's parser: the longest matching rule wins, `Allow` wins a
tie, `*` matches any characters and `$` ends a path. `Crawl-delay` (not in the RFC, but
widely used) becomes the host's minimum gap between requests, capped at 10 s.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from protego import Protego

MAX_CRAWL_DELAY_SECONDS = 10.0  # a site cannot slow its pages beyond this
ALLOW_ALL = ""  # a robots.txt with no group: what a missing one (HTTP 4xx) means
DISALLOW_ALL = "User-agent: *\nDisallow: /\n"  # what a failing one (HTTP 5xx) means

# "User-agent: x", also "User agent: x" and "Useragent x", as Protego reads them.
_USER_AGENT_LINE = re.compile(r"user[- ]?agent\s*(?::|\s)\s*(.*)", re.IGNORECASE)
# Lines about the whole site, not about a group (they do not end a run of user-agents).
_SITE_WIDE_LINE = re.compile(r"(sitemaps?|site-map|host)\s*(:|\s)", re.IGNORECASE)
_TOKEN = re.compile(r"[A-Za-z_-]*")  # a product token: letters, "_" and "-" (RFC 9309 2.2.1)


@dataclass(frozen=True)
class SiteRules:
    """The robots.txt rules of one site that apply to wordcrawl, parsed once."""

    text: str  # our group as a robots.txt (what the caches keep)
    parser: Protego
    delay_ms: int  # Crawl-delay in milliseconds (0 when none), at most the cap

    def allows(self, url: str) -> bool:
        """Say whether the rules let wordcrawl fetch this URL of the site."""
        return self.parser.can_fetch(url, "*")  # our group is the only one left


def product_token(user_agent: str) -> str:
    """Return the product token of a User-Agent ("wordcrawl" of "wordcrawl/0.1 (...)")."""
    return _TOKEN.match(user_agent.strip()).group(0).lower()


def our_group(robots_txt: str, token: str) -> str:
    """Return the rules of the group(s) of a robots.txt that apply to `token`, as a
    robots.txt of one `User-agent: *` group ("" when no group applies)."""
    groups: list[tuple[list[str], list[str]]] = []  # (user-agents, rule lines) per group
    in_agents = False  # the previous line was a user-agent line: this one may add to it
    for raw in robots_txt.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or _SITE_WIDE_LINE.match(line):
            continue
        agent = _USER_AGENT_LINE.fullmatch(line)
        if agent is not None:
            if not in_agents:
                groups.append(([], []))
            groups[-1][0].append(agent.group(1).strip())
            in_agents = True
        else:
            if groups:  # a rule before any user-agent line applies to nobody
                groups[-1][1].append(line)
            in_agents = False
    token = token.lower()
    ours = [
        lines
        for agents, lines in groups
        if any(_TOKEN.match(agent).group(0).lower() == token for agent in agents)
    ] or [lines for agents, lines in groups if "*" in agents]
    rules = [line for lines in ours for line in lines]
    return "User-agent: *\n" + "".join(f"{line}\n" for line in rules) if rules else ALLOW_ALL


def parse_rules(group_txt: str) -> SiteRules:
    """Parse a robots.txt written by `our_group` (or ALLOW_ALL, DISALLOW_ALL)."""
    parser = Protego.parse(group_txt)
    delay = min(parser.crawl_delay("*") or 0.0, MAX_CRAWL_DELAY_SECONDS)
    return SiteRules(group_txt, parser, round(delay * 1000))
