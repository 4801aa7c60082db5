"""What the whole-stack benchmarks crawl and how they summarise it (no servers needed)."""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit

from wordcrawl.bench.classroom import _percentile
from wordcrawl.bench.stack import StackPlan


def _within_depth(plan: StackPlan) -> set[int]:
    """The demo pages a crawl of `plan.depth` from the site's root can reach."""
    site = plan.demo_site()
    seen, level = {0}, [0]
    for _ in range(plan.depth):
        found = []
        for n in level:
            for href, _ in site.links(n):
                number = site.page_number(urlsplit(urljoin("http://site/page/1", href)).path)
                if href.startswith("/") and number is not None and number not in seen:
                    seen.add(number)
                    found.append(number)
        level = found
    return seen


def test_the_stack_crawl_site_has_a_thousand_pages_within_depth_three():
    plan = StackPlan()
    assert len(_within_depth(plan)) >= 1000
    assert plan.demo_site().words_per_page == 2000  # about 16 KB of HTML a page
    assert plan.demo_site().latency_ms == 100


def test_pages_beyond_what_one_job_may_take_go_in_several_jobs():
    assert StackPlan(pages=1000).job_sizes() == [1000]
    assert StackPlan(pages=60).job_sizes() == [60]
    assert StackPlan(pages=10_000).job_sizes() == [1000] * 10
    assert StackPlan(pages=2500).job_sizes() == [1000, 1000, 500]


def test_percentiles_are_values_the_jobs_took():
    times = [float(n) for n in range(1, 31)]  # 30 jobs: 1 s to 30 s
    assert _percentile(times, 50) == 15.0
    assert _percentile(times, 95) == 29.0
    assert _percentile(times, 100) == 30.0
    assert _percentile([2.5], 95) == 2.5
