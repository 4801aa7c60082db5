"""Checking a job submission (docs/reference.md, "Jobs"; job_manager/job_requests.py)."""

import pytest

from job_manager.errors import ApiError
from job_manager.job_requests import parse_job_request
from job_tasks.settings import Settings

SETTINGS = Settings()
SEED = "http://example.com/"


def rejection(data, settings=SETTINGS) -> ApiError:
    with pytest.raises(ApiError) as info:
        parse_job_request(data, settings)
    assert info.value.status == 400
    return info.value


def test_urls_alone_get_the_default_depth_and_max_pages():
    job = parse_job_request({"urls": [SEED]}, SETTINGS)

    assert job.urls == [SEED]
    assert job.depth == 0
    assert job.max_pages == 100


def test_depth_and_max_pages_at_their_limits_are_accepted():
    job = parse_job_request({"urls": [SEED], "depth": 3, "max_pages": 1000}, SETTINGS)

    assert (job.depth, job.max_pages) == (3, 1000)


def test_urls_are_normalised_and_repeats_collapse():
    urls = ["HTTP://Example.com/a#top", "http://example.com/a#bottom", "http://example.com/b"]

    job = parse_job_request({"urls": urls}, SETTINGS)

    assert job.urls == ["http://example.com/a", "http://example.com/b"]


def test_a_private_address_is_accepted_and_judged_when_fetched():
    job = parse_job_request({"urls": ["http://10.0.0.1/"]}, SETTINGS)

    assert job.urls == ["http://10.0.0.1/"]


@pytest.mark.parametrize("data", [{}, {"urls": None}], ids=["absent", "null"])
def test_missing_urls_are_named(data):
    error = rejection(data)

    assert (error.code, error.field) == ("missing_field", "urls")


@pytest.mark.parametrize(
    "urls",
    [SEED, [], {"url": SEED}, 42],
    ids=["string", "empty-list", "object", "number"],
)
def test_urls_must_be_a_non_empty_list(urls):
    assert rejection({"urls": urls}).field == "urls"


def test_too_many_urls_are_refused():
    urls = [f"http://example.com/{i}" for i in range(SETTINGS.max_urls_per_job + 1)]

    error = rejection({"urls": urls})

    assert (error.code, error.field) == ("too_many_urls", "urls")


def test_the_url_limit_comes_from_the_settings():
    settings = SETTINGS.with_overrides(max_urls_per_job=2)

    urls = ["http://example.com/1", "http://example.com/2", "http://example.com/3"]

    assert rejection({"urls": urls}, settings).field == "urls"


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/file",
        "javascript:alert(1)",
        "example.com",
        "http://",
        "http://example.com/a b",
        "http://example.com/" + "a" * 2048,
        42,
        None,
    ],
    ids=["ftp", "javascript", "no-scheme", "no-host", "space", "too-long", "number", "null"],
)
def test_a_bad_url_is_refused_naming_its_position(url):
    error = rejection({"urls": [SEED, url]})

    assert (error.code, error.field) == ("invalid_url", "urls[1]")
    assert "urls[1]" in error.message


@pytest.mark.parametrize(
    "depth",
    [-1, 4, "1", True, 1.5, None],
    ids=["negative", "too-deep", "string", "bool", "float", "null"],
)
def test_bad_depth_is_refused(depth):
    error = rejection({"urls": [SEED], "depth": depth})

    assert (error.code, error.field) == ("invalid_value", "depth")


@pytest.mark.parametrize(
    "max_pages",
    [0, 1001, -5, "10", False, 10.0],
    ids=["zero", "too-many", "negative", "string", "bool", "float"],
)
def test_bad_max_pages_is_refused(max_pages):
    error = rejection({"urls": [SEED], "max_pages": max_pages})

    assert (error.code, error.field) == ("invalid_value", "max_pages")


def test_more_seeds_than_max_pages_is_refused():
    urls = ["http://example.com/1", "http://example.com/2"]

    assert rejection({"urls": urls, "max_pages": 1}).field == "max_pages"


def test_repeated_seeds_count_once_against_max_pages():
    job = parse_job_request({"urls": [SEED, SEED + "#again"], "max_pages": 1}, SETTINGS)

    assert job.urls == [SEED]


@pytest.mark.parametrize("name", ["colour", "Depth", "schedule_id"])
def test_an_unknown_field_is_named(name):
    error = rejection({"urls": [SEED], name: 1})

    assert (error.code, error.field) == ("unknown_field", name)


@pytest.mark.parametrize("data", [[SEED], SEED, None, 42], ids=["list", "string", "null", "number"])
def test_body_must_be_an_object(data):
    assert rejection(data).code == "invalid_body"
