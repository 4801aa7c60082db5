"""`wordcrawl bench --peers`: wordcrawl's whole stack beside Scrapy, on the same crawl.

In one run and against one demo site (16 KB pages, 100 ms latency), a Scrapy spider
(scrapy_crawl.py, in a process of its own, 64 requests at once to the site) crawls depth 3
up to --pages pages, counting the words with wordcrawl's rules and storing them in the
bench's PostgreSQL database; then the --stack crawl runs (stack.py). It prints each one's
pages/s and wordcrawl's as a ratio to Scrapy's. Scrapy runs first, while no stack is up,
so the two never share the CPUs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import text
from sqlalchemy.engine import make_url

from job_tasks.settings import Settings, sqlalchemy_url
from job_tasks.storing.db import get_engine

from ..demo_site import DemoSite
from .isolated import Place, isolated_servers
from .sites import serve_sites
from .speed import BenchError
from .stack import PAGES_PER_JOB, StackPlan, StackRun, crawl_through_stack, describe


@dataclass(frozen=True)
class ScrapyRun:
    """What the Scrapy spider crawled, and how fast."""

    pages: int
    words_ok: int  # pages whose stored words are exactly the words the site served
    seconds: float  # first request to last page stored
    pages_per_second: float
    per_domain: int  # CONCURRENT_REQUESTS_PER_DOMAIN (and CONCURRENT_REQUESTS)


@dataclass(frozen=True)
class PeersRun:
    """Scrapy's figures and wordcrawl's, measured in the same run."""

    scrapy: ScrapyRun
    wordcrawl: StackRun
    ratio: float  # wordcrawl's pages/s divided by Scrapy's

    @property
    def ok(self) -> bool:
        return (
            self.wordcrawl.ok
            and self.scrapy.pages > 0
            and self.scrapy.words_ok == (self.scrapy.pages)
        )

    def lines(self) -> list[str]:
        scrapy = self.scrapy
        return [
            f"Scrapy      {scrapy.pages_per_second:.1f} pages/s  ({scrapy.pages} pages stored "
            f"in {scrapy.seconds:.1f} s, {scrapy.per_domain} requests at once; words right on "
            f"{scrapy.words_ok})",
            *(f"wordcrawl {line}" for line in self.wordcrawl.lines()),
            f"wordcrawl / Scrapy  {self.ratio:.2f}",
        ]


def run_peers_bench(
    settings: Settings, plan: StackPlan, echo: Callable[[str], None] = print
) -> PeersRun:
    """Crawl the demo site with Scrapy, then with the stack; return both figures."""
    if plan.pages > PAGES_PER_JOB:
        raise BenchError(f"--peers crawls one job: give --pages {PAGES_PER_JOB} or fewer")
    site = plan.demo_site()
    with (
        isolated_servers(settings, plan.keep) as place,
        serve_sites(site, 1, place.work_dir / "demo-site.log") as (site_url,),
    ):
        echo(f"Scrapy, then {describe(plan, site_url, place)}")
        scrapy = _scrapy(place, site_url, site, plan)
        wordcrawl = crawl_through_stack(place, site_url, site, plan)
    ratio = wordcrawl.pages_per_second / scrapy.pages_per_second if scrapy.pages else 0.0
    return PeersRun(scrapy, wordcrawl, round(ratio, 3))


def _scrapy(place: Place, site_url: str, site: DemoSite, plan: StackPlan) -> ScrapyRun:
    """Run the spider in a process of its own; check what it stored."""
    database_url = make_url(sqlalchemy_url(place.database_url)).set(drivername="postgresql")
    database_url = database_url.render_as_string(hide_password=False)
    per_domain = plan.per_host_concurrency
    argv = [sys.executable, "-m", "wordcrawl.bench.scrapy_crawl", site_url]
    argv += ["--depth", str(plan.depth), "--max-pages", str(plan.pages)]
    argv += ["--per-domain", str(per_domain), "--database-url", database_url]
    environ = {k: v for k, v in os.environ.items() if not k.startswith("WORDCRAWL_")}
    try:
        result = subprocess.run(
            argv, env=environ, capture_output=True, text=True, timeout=plan.timeout, check=False
        )
    except subprocess.TimeoutExpired as err:
        raise BenchError(f"the Scrapy crawl took more than {plan.timeout:g} s") from err
    if result.returncode or not result.stdout.strip():
        if "No module named 'scrapy'" in result.stderr:
            raise BenchError("--peers needs scrapy: pip install 'wordcrawl[bench]'")
        raise BenchError(f"the Scrapy crawl failed:\n{result.stderr[-2000:]}")
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    seconds = figures["seconds"]
    return ScrapyRun(
        pages=figures["pages"],
        words_ok=_words_right(place.database_url, site),
        seconds=seconds,
        pages_per_second=round(figures["pages"] / seconds, 1) if seconds > 0 else 0.0,
        per_domain=per_domain,
    )


def _words_right(database_url: str, site: DemoSite) -> int:
    """How many pages the spider stored with exactly the words the site served."""
    engine = get_engine(database_url)
    query = text(
        "SELECT p.url, sum(w.count) FROM scrapy_pages p "
        "JOIN scrapy_word_counts w ON w.page_id = p.id GROUP BY p.url"
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    right = 0
    for url, words in rows:
        number = site.page_number(urlsplit(url).path)
        if number is not None and words == len(site.visible_words(number)):
            right += 1
    return right
