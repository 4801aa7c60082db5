"""The pure header helpers of job_tasks/fetch.py (fetching itself needs a server)."""

import time
from email.utils import formatdate

import pytest

from job_tasks.fetch import parse_content_type, retry_after_seconds


@pytest.mark.parametrize(
    ("header", "parsed"),
    [
        (None, ("", None)),
        ("", ("", None)),
        ("text/html", ("text/html", None)),
        ('Text/HTML; Charset="UTF-8"', ("text/html", "UTF-8")),
        ("text/plain;charset='latin-1'; format=flowed", ("text/plain", "latin-1")),
        ("application/xhtml+xml ; q=1; charset=utf-8", ("application/xhtml+xml", "utf-8")),
        ("text/html; charset=", ("text/html", None)),
    ],
)
def test_content_type_splits_into_media_type_and_charset(header, parsed):
    assert parse_content_type(header) == parsed


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("120", 120.0), (" 5 ", 5.0), (None, None), ("", None), ("soon", None), ("-1", None)],
)
def test_retry_after_in_seconds(header, seconds):
    assert retry_after_seconds(header) == seconds


def test_retry_after_as_a_future_date():
    header = formatdate(time.time() + 60, usegmt=True)

    assert 55 <= retry_after_seconds(header) <= 60


def test_retry_after_in_the_past_means_now():
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
