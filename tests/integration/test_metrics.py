"""`/metrics`: Prometheus's text format, and numbers that match the tables."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def scrape(client) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.get_data(as_text=True))
        for sample in family.samples
    }


def test_metrics_parse_and_match_the_tables(crawl, client, fixture_site, sql):
    crawl([fixture_site.url("/ok"), fixture_site.url("/missing")])

    samples = scrape(client)

    for status, count in sql("SELECT status, count(*) FROM pages GROUP BY status"):
        assert samples[("wordcrawl_pages", (("status", status),))] == count
    for status, count in sql("SELECT status, count(*) FROM jobs GROUP BY status"):
        assert samples[("wordcrawl_jobs", (("status", status),))] == count
    (ended,) = sql("SELECT count(*) FROM pages WHERE status IN ('done', 'failed')")[0]
    assert samples[("wordcrawl_page_duration_seconds_count", ())] == ended
    assert samples[("wordcrawl_page_duration_seconds_bucket", (("le", "+Inf"),))] == ended
    assert samples[("wordcrawl_workers_online", ())] >= 2
    assert ("wordcrawl_queue_length", (("queue", "crawl"),)) in samples


def test_pages_ended_counter_moves_with_a_crawl(crawl, client, fixture_site):
    before = scrape(client)[("wordcrawl_pages_ended_total", (("status", "done"),))]

    crawl([fixture_site.url("/ok"), fixture_site.url("/plain")])

    after = scrape(client)[("wordcrawl_pages_ended_total", (("status", "done"),))]
    assert after - before == 2
