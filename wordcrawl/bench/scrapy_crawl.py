"""The yardstick of `wordcrawl bench --peers`: the same crawl by a Scrapy spider.

`python -m wordcrawl.bench.scrapy_crawl URL --depth 3 --max-pages 1000 --database-url URL`
crawls breadth first from URL within its host, at most --max-pages pages (robots.txt
obeyed, as wordcrawl does), counts each page's words with wordcrawl's own rules
(job_tasks/reading: extract the visible text, count_words) and stores them in PostgreSQL,
in two tables of its own (scrapy_pages, scrapy_word_counts), one transaction per page. At
the end it prints one JSON line: the pages stored and the seconds from the first request
to the last page stored. It runs in a process of its own (Scrapy's reactor), started by
wordcrawl/bench/peers.py, and needs the `bench` extra (scrapy).
"""

from __future__ import annotations

import argparse
import json
import time
from urllib.parse import urldefrag, urljoin, urlsplit

import psycopg2
import scrapy
from psycopg2.extras import execute_values
from scrapy.crawler import CrawlerProcess

from job_tasks.reading.text import parse_html
from job_tasks.reading.words import count_words
from job_tasks.settings import Settings

SCHEMA = """
CREATE TABLE IF NOT EXISTS scrapy_pages (
    id serial PRIMARY KEY, url text UNIQUE NOT NULL, word_count integer NOT NULL,
    stored_at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE TABLE IF NOT EXISTS scrapy_word_counts (
    page_id integer REFERENCES scrapy_pages(id) ON DELETE CASCADE, word text, count integer,
    PRIMARY KEY (page_id, word));
"""


def scrapy_settings(per_domain: int) -> dict[str, object]:
    """Scrapy's settings: its defaults but the concurrency, breadth first, and no noise."""
    return {
        "CONCURRENT_REQUESTS": per_domain,  # one site: the global cap (16) would bind first
        "CONCURRENT_REQUESTS_PER_DOMAIN": per_domain,
        "ROBOTSTXT_OBEY": True,
        "COOKIES_ENABLED": False,  # wordcrawl keeps no cookies either
        "USER_AGENT": Settings().user_agent,
        # Breadth first, as wordcrawl's depth-limited crawl (Scrapy's FAQ, "BFO order").
        "DEPTH_PRIORITY": 1,
        "SCHEDULER_DISK_QUEUE": "scrapy.squeues.PickleFifoDiskQueue",
        "SCHEDULER_MEMORY_QUEUE": "scrapy.squeues.FifoMemoryQueue",
        "LOG_LEVEL": "WARNING",
        "TELNETCONSOLE_ENABLED": False,
    }


class WordSpider(scrapy.Spider):
    """Fetch pages within one host, count their words, store them, follow their links."""

    name = "wordcount"

    def __init__(self, url: str, depth: int, max_pages: int, database_url: str) -> None:
        super().__init__()
        self.url, self.depth, self.max_pages = url, depth, max_pages
        self.host = urlsplit(url).netloc
        self.scheduled = {url}
        self.connection = psycopg2.connect(database_url)
        self.stored = 0
        self.first_request = self.last_stored = 0.0

    async def start(self):  # Scrapy 2.13's way of giving the first requests
        self.first_request = time.time()
        yield scrapy.Request(self.url)

    def parse(self, response: scrapy.http.Response):
        document = parse_html(response.text, response.url)
        counts = count_words(document.text)
        self._store(response.url, counts)
        if response.meta.get("depth", 0) >= self.depth:
            return
        for href in document.links:
            url = urldefrag(urljoin(document.base_url, href.strip())).url
            if urlsplit(url).netloc != self.host or url in self.scheduled:
                continue
            if len(self.scheduled) >= self.max_pages:
                return
            self.scheduled.add(url)
            yield scrapy.Request(url)

    def _store(self, url: str, counts: dict[str, int]) -> None:
        with self.connection, self.connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO scrapy_pages (url, word_count) VALUES (%s, %s) RETURNING id",
                (url, sum(counts.values())),
            )
            page_id = cursor.fetchone()[0]
            execute_values(
                cursor,
                "INSERT INTO scrapy_word_counts (page_id, word, count) VALUES %s",
                [(page_id, word, count) for word, count in counts.items()],
            )
        self.stored += 1
        self.last_stored = time.time()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--max-pages", type=int, default=1000)
    parser.add_argument("--per-domain", type=int, default=64)
    parser.add_argument("--database-url", required=True)
    args = parser.parse_args(argv)
    with psycopg2.connect(args.database_url) as connection, connection.cursor() as cursor:
        cursor.execute(SCHEMA)
    connection.close()
    process = CrawlerProcess(scrapy_settings(args.per_domain))
    crawler = process.create_crawler(WordSpider)
    process.crawl(crawler, args.url, args.depth, args.max_pages, args.database_url)
    process.start()
    spider = crawler.spider
    spider.connection.close()
    seconds = spider.last_stored - spider.first_request
    print(json.dumps({"pages": spider.stored, "seconds": round(seconds, 3)}), flush=True)


if __name__ == "__main__":
    main()
