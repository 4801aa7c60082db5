"""Reading robots.txt (job_tasks/robots.py) whatever charset its server names."""

from types import SimpleNamespace

import pytest

from job_tasks.fetch import Response
from job_tasks.robots import RobotsRules, _verdict

SITE = "http://example.com:80"
USER_AGENT = "wordcrawl/0.1"


class ServesRobots:
    """Stands in for the Fetcher: answers every get with one robots.txt."""

    settings = SimpleNamespace(page_timeout=5)

    def __init__(self, body: bytes, charset: str | None) -> None:
        self.response = Response(f"{SITE}/robots.txt", 200, "text/plain", charset, body)

    def get(self, url: str, deadline: float, **limits: object) -> Response:
        return self.response


@pytest.mark.parametrize("charset", [None, "utf-8", "x-no-such-charset", "base64", "idna"])
def test_robots_txt_is_read_whatever_charset_it_names(charset):
    fetcher = ServesRobots(b"User-agent: *\nDisallow: /private/\n", charset)

    status, text = RobotsRules(None, USER_AGENT, 60)._download(SITE, fetcher)

    assert status == 200
    assert not _verdict(status, text, USER_AGENT, f"{SITE}/private/page")
    assert _verdict(status, text, USER_AGENT, f"{SITE}/public/page")
