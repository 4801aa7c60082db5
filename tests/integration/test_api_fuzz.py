"""Property-based fuzz of the JSON API (hypothesis): no 5xx, and no invalid input accepted.

Hypothesis throws arbitrary JSON, near-valid submissions, random bodies with random
content types, random query strings and random job ids at the manager (Flask's test
client, with the test session's real PostgreSQL and Redis). Whatever comes in:

- the answer is never a 5xx;
- a 4xx carries the API's error body {"error": {"code", "message", "field"}}, and a
  refused submission creates no row;
- a submission is accepted (202) only when an oracle written here from the rules of
  docs/reference.md, not from the code, says it is valid; and a submission built valid is accepted.

Accepted jobs are cancelled at once. Every URL that could be accepted names a loopback
address the workers refuse (127.0.0.2 and up, localhost, [::1]): if a worker takes one of
these pages before it is cancelled, it ends `blocked_address` without connecting.
"""

from __future__ import annotations

import ipaddress
import json
import re
import string
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import pytest
from hypothesis import (
    HealthCheck,
    assume,
    currently_in_test_context,
    event,
    example,
    given,
    settings,
)
from hypothesis import strategies as st
from urllib3.util import parse_url

pytestmark = pytest.mark.slow  # fuzzes the API with Hypothesis

# The documented limits (docs/reference.md, "The HTTP API"), written down again, not imported.
MAX_URLS, MAX_URL_LENGTH, MAX_DEPTH, MAX_PAGES = 100, 2048, 3, 1000
JOB_FIELDS = {"urls", "depth", "max_pages"}  # "schedule" too: test_schedules.py checks it
PAGE_STATUSES = {"queued", "running", "done", "failed", "skipped"}
MAX_REQUEST_BYTES = 256 * 1024  # the default of WORDCRAWL_MAX_REQUEST_BYTES (docs/reference.md)
SAFE_HOSTS = ["127.0.0.2", "127.0.0.9", "127.1.2.3", "localhost", "LocalHost", "[::1]"]
# Each example is a real request, most of them a job written to PostgreSQL: 75 per test
# keep the module to about 20 s of the whole suite's ten minutes.
FUZZ = settings(
    max_examples=75,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# --- The oracle ------------------------------------------------------------------------


def is_json_media_type(content_type: str | None) -> bool:
    """The API takes only application/json (any parameters, any case)."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    return media_type == "application/json"


IPV_FUTURE = re.compile(r"v[0-9A-Fa-f]+\.[A-Za-z0-9._~!$&'()*+,;=:-]+")


def parse_seed(value: Any) -> tuple[str, str, int | None, str] | None:
    """Read a seed as scheme, host, port and the rest, if it can be an http(s) URL of at
    most 2,048 characters; else None.

    Only what no reading of "an http(s) URL" allows is refused here: another scheme, no
    host, a bad port, spaces, control characters or lone surrogates, too many characters
    once percent-encoded, and a user name or password (whatever stands before an "@").
    """
    if not isinstance(value, str) or re.search("[\ud800-\udfff]", value):
        return None
    url = value.strip()
    if not url or any(ord(c) < 0x21 or c == "\x7f" for c in url):
        return None
    if len(quote(url, safe=string.printable)) > MAX_URL_LENGTH:  # "é" is "%C3%A9"
        return None
    match = re.match(r"(?i)(https?)://([^/?#]*)", url)
    if match is None:
        return None
    host_port = match.group(2)
    if "@" in host_port:
        return None
    if host_port.startswith("["):  # an IP literal: IPv6 (or IPvFuture), RFC 3986
        host, bracket, port = host_port[1:].partition("]")
        if not bracket or (port and not port.startswith(":")):
            return None
        port = port[1:]
        if not IPV_FUTURE.fullmatch(host):
            try:
                ipaddress.IPv6Address(host)
            except ValueError:
                return None
    else:
        host, _, port = host_port.partition(":")
    if not host or (port and not (port.isascii() and port.isdigit())):
        return None
    if port and not 1 <= int(port) <= 65535:
        return None
    return match.group(1).lower(), host.lower(), int(port) if port else None, url[match.end() :]


def page_key(url: str) -> tuple:
    """A key under which two spellings of one page are certainly equal (and maybe more):
    case of scheme and host, a default port, an empty path and the #fragment do not count."""
    scheme, host, port, rest = parse_seed(url)
    rest = rest.partition("#")[0]
    path_and_query = rest if rest.startswith("/") else "/" + rest
    return scheme, host, port or {"http": 80, "https": 443}[scheme], path_and_query


def valid_submission(body: Any) -> bool:
    """Say whether a parsed body may be accepted: the documented rules for a job."""
    if not isinstance(body, dict) or set(body) - JOB_FIELDS:
        return False
    urls = body.get("urls")
    if not isinstance(urls, list) or not 1 <= len(urls) <= MAX_URLS:
        return False
    if not all(parse_seed(url) for url in urls):
        return False
    depth, max_pages = body.get("depth", 0), body.get("max_pages", 100)
    for value, low, high in ((depth, 0, MAX_DEPTH), (max_pages, 1, MAX_PAGES)):
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            return False
    return len({page_key(url) for url in urls}) <= max_pages  # every seed is a page


def may_leave_loopback(body: Any) -> bool:
    """Say whether a body names a URL a worker might fetch from a non-loopback host.

    The host as urlsplit (the manager) and as urllib3 (the worker) read it: they differ on
    some URLs, http://a\\@b/ for one.
    """
    urls = body.get("urls") if isinstance(body, dict) else None
    for url in urls if isinstance(urls, list) else ():
        if not isinstance(url, str) or not re.match(r"(?i)\s*https?:", url):
            continue
        for read_host in (lambda u: urlsplit(u).hostname, lambda u: parse_url(u).host):
            try:
                host = read_host(url.strip())
            except ValueError:
                continue
            if host and not safe_host(host):
                return True
    return False


def safe_host(host: str) -> bool:
    """Say whether the workers refuse this host without connecting (loopback, not allowed)."""
    host = host.lower().strip("[]")
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback and address != ipaddress.ip_address("127.0.0.1")


# --- Checking an answer ----------------------------------------------------------------


@dataclass
class Api:
    """The manager's test client, and how to count what submissions create."""

    client: Any
    sql: Any

    def counts(self) -> tuple[int, int]:
        row = self.sql("SELECT (SELECT count(*) FROM jobs), (SELECT count(*) FROM job_urls)")
        return tuple(row[0])

    def submit(self, data: bytes, content_type: str | None) -> Any:
        """POST a body to /api/jobs; check the answer; cancel the job if it was accepted."""
        before = self.counts()
        response = self.client.post("/api/jobs", data=data, content_type=content_type)
        if currently_in_test_context():  # --hypothesis-show-statistics counts the answers
            event(f"answer {response.status_code}")
        check_answer(response)
        if response.status_code == 202:
            answer = response.get_json()
            assert answer["status"] == "queued"
            assert answer["url"] == f"/api/jobs/{uuid.UUID(answer['id'])}"
            owner = {"Authorization": f"Bearer {answer['token']}"}
            cancelled = self.client.delete(answer["url"], headers=owner)
            assert cancelled.status_code == 200
        else:
            assert self.counts() == before, "a refused submission changed the database"
        return response


def check_answer(response) -> None:
    """No 5xx; a 4xx has the API's error body; a 2xx is JSON."""
    status = response.status_code
    assert status < 500, response.get_data(as_text=True)[:500]
    if 300 <= status < 400:  # Werkzeug's routing merges slashes: /api/jobs//pages
        assert urlsplit(response.headers["Location"]).path.startswith("/api/")
        return
    assert response.mimetype == "application/json", (status, response.mimetype)
    answer = response.get_json()
    if status >= 400:
        assert set(answer) == {"error"}, answer
        error = answer["error"]
        assert set(error) == {"code", "message", "field"}, error
        assert isinstance(error["code"], str) and error["code"]
        assert isinstance(error["message"], str) and error["message"]
        assert error["field"] is None or isinstance(error["field"], str)


# --- Strategies ------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)

FRAGMENT_CHARACTERS = st.characters(exclude_categories=("Cc", "Cs", "Zs", "Zl", "Zp"))
url_paths = st.from_regex(r"/[A-Za-z0-9._~%!$&'()*+,;=:@/-]{0,30}", fullmatch=True)


@st.composite
def safe_urls(draw) -> str:
    """A valid http(s) URL of a loopback host the workers refuse."""
    scheme = draw(st.sampled_from(["http", "https", "HTTP"]))
    port = draw(st.none() | st.integers(1, 65535))
    host = draw(st.sampled_from(SAFE_HOSTS)) + (f":{port}" if port else "")
    query = draw(st.none() | st.from_regex(r"[a-z0-9=&%]{0,12}", fullmatch=True))
    fragment = draw(st.none() | st.text(FRAGMENT_CHARACTERS, max_size=8))
    url = f"{scheme}://{host}{draw(url_paths)}"
    url += "" if query is None else f"?{query}"
    return url + ("" if fragment is None else f"#{fragment}")


TRICKY_URLS = [
    "",
    " ",
    "http://",
    "http:///x",
    "http:/127.0.0.2/",
    "http//127.0.0.2/",
    "ftp://127.0.0.2/",
    "javascript:alert(1)",
    "file:///etc/passwd",
    "data:text/html,hi",
    "http://127.0.0.2:0/",
    "http://127.0.0.2:65536/",
    "http://127.0.0.2:-1/",
    "http://127.0.0.2:\uff18\uff10/",  # fullwidth 80
    "http://127.0.0.2:²/",
    "http://[::1/",
    "http://[127.0.0.2]/",
    "http://127.0.0.2/\x00",
    "http://127.0.0.2/a b",
    "http://127.0.0.2/\ud800",  # a lone surrogate: JSON can carry it, UTF-8 cannot
    "http://127.0.0.2\\@localhost/",
    "http://user@/",
    "http://user:secret@127.0.0.2/",
    "http://127.0.0.2/" + "\u0436" * 700,  # 717 characters, 4,217 once percent-encoded
    " http://127.0.0.2/padded ",
    "http://127.0.0.2/" + "a" * (MAX_URL_LENGTH - len("http://127.0.0.2/")),
    "http://127.0.0.2/" + "a" * (MAX_URL_LENGTH + 1 - len("http://127.0.0.2/")),
]
url_strings = (
    safe_urls()
    | st.sampled_from(TRICKY_URLS)
    | st.builds(  # a valid URL spoilt by any character, lone surrogates included
        lambda url, tail: url + tail,
        safe_urls(),
        st.text(st.characters() | st.characters(categories=["Cs"]), min_size=1, max_size=3),
    )
    | st.text(max_size=40)
    | st.builds(
        lambda prefix, rest: prefix + rest,
        st.sampled_from(["http://", "https://", "HTTP://127.0.0.2", "http://[::1]", "http://["]),
        st.text(max_size=20),
    )
)
numbers = (
    st.integers(-3, 5)
    | st.integers(MAX_PAGES - 3, MAX_PAGES + 3)
    | st.integers()
    | st.booleans()
    | st.floats()
    | st.sampled_from([1.0, 0.0, "1", "", None, [1], {"n": 1}])
)


@st.composite
def near_valid_submissions(draw) -> dict:
    """Dicts of the known fields (and now and then another one), with any values."""
    body = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "urls": st.lists(url_strings, max_size=5)
                | st.lists(safe_urls(), min_size=MAX_URLS - 1, max_size=MAX_URLS + 1)
                | json_values,
                "depth": numbers | json_values,
                "max_pages": numbers | json_values,
            },
        )
    )
    if draw(st.integers(0, 9)) == 0:
        # Any other key is refused; "schedule" is not another key (test_schedules.py).
        body[draw(st.text(max_size=10).filter(lambda key: key != "schedule"))] = draw(json_values)
    return body


@st.composite
def valid_submissions(draw) -> dict:
    """Submissions the API accepts (distinct pages: each path once)."""
    urls = draw(st.lists(safe_urls(), min_size=1, max_size=8, unique_by=page_key))
    body: dict[str, Any] = {"urls": urls}
    if draw(st.booleans()):
        body["depth"] = draw(st.integers(0, MAX_DEPTH))
    if draw(st.booleans()):
        body["max_pages"] = draw(st.integers(len(urls), MAX_PAGES))
    return body


content_types = st.sampled_from(
    [
        "application/json",
        "Application/JSON",
        "application/json; charset=utf-8",
        "application/json; charset=latin-1",
        "application/vnd.api+json",
        "application/jsonx",
        "text/json",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "",
    ]
) | st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30)


# --- Tests -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def api(app, sql) -> Api:
    """The test client of the session's manager app, shared by every example."""
    return Api(app.test_client(), sql)


@pytest.fixture(scope="module")
def job_id(api) -> str:
    """A real (cancelled) job, so that queries on it get past the job lookup."""
    body = json.dumps({"urls": ["http://127.0.0.2/fuzz"]}).encode()
    response = api.submit(body, "application/json")
    return response.get_json()["id"]


def post_json(api: Api, body: Any):
    """Submit a body as JSON; if it was accepted, the oracle must call it valid."""
    data = json.dumps(body).encode()
    response = api.submit(data, "application/json")
    if response.status_code == 202:
        assert valid_submission(body), f"accepted an invalid submission: {data[:300]!r}"
    return response


@FUZZ
@given(body=json_values)
def test_any_json_body_is_answered_without_a_server_error(api, body):
    assume(not may_leave_loopback(body))
    post_json(api, body)


@FUZZ
@given(body=near_valid_submissions())
@example(body={"urls": ["http://127.0.0.2/" + "a" * 2031] * 100, "max_pages": 100})
@example(body={"urls": [f"http://127.0.0.2/{n}" for n in range(101)], "max_pages": 1000})
@example(body={"urls": ["http://127.0.0.2/a"], "depth": True})
@example(body={"urls": ["http://127.0.0.2/a"], "max_pages": 1.0})
@example(body={"urls": ["http://127.0.0.2/a", "http://127.0.0.2/b"], "max_pages": 1})
@example(body={"urls": ["http://127.0.0.2/a"], "depth": 4})
@example(body={"urls": ["http://127.0.0.2/a"], "priority": 1})
@example(body={"urls": ["http://127.0.0.2/\ud800"]})
def test_a_submission_is_accepted_only_when_valid(api, body):
    assume(not may_leave_loopback(body))
    post_json(api, body)


@FUZZ
@given(body=valid_submissions())
@example(body={"urls": ["http://127.0.0.2/" + "a" * 2031] * 100})
@example(body={"urls": [f"http://127.0.0.2/{n}" for n in range(100)], "max_pages": 100})
@example(body={"urls": ["http://127.0.0.2/a"], "depth": 3, "max_pages": 1000})
def test_a_valid_submission_is_accepted(api, body):
    assert valid_submission(body)  # the oracle agrees with the generator

    response = post_json(api, body)

    assert response.status_code == 202, response.get_json()


@FUZZ
@given(
    data=st.binary(max_size=300)
    | valid_submissions().map(lambda body: json.dumps(body).encode())
    | st.sampled_from([b"[" * 100_000, b'{"urls": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"])
    | st.just(b'{"urls": ["http://127.0.0.2/' + b"a" * 300_000 + b'"]}'),
    content_type=content_types,
)
def test_any_body_with_any_content_type(api, data, content_type):
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):
        body = None
    assume(not may_leave_loopback(body))

    response = api.submit(data, content_type)

    if not is_json_media_type(content_type):
        assert response.status_code == 415  # the JSON API takes only JSON
    elif len(data) > MAX_REQUEST_BYTES:
        assert response.status_code == 413
    elif response.status_code == 202:
        assert valid_submission(body), f"accepted an invalid submission: {data[:300]!r}"


def query_strings(names: list[str]):
    """Lists of (name, value) pairs: the parameters the read calls take, and others."""
    values = (
        st.text(max_size=12)
        | st.integers(-5, 20_000).map(str)
        | st.sampled_from(["\u00b2", "\u0661\u0662", "0x10", "1e3", " 5", "+5", "5 ", "9" * 5000])
        | st.sampled_from([*sorted(PAGE_STATUSES), "include", "exclude", "newest", "found"])
    )
    keys = st.sampled_from(names) | st.text(max_size=8)
    return st.lists(st.tuples(keys, values), max_size=4)


def whole_number(value: str | None, low: int) -> bool:
    """Say whether a query parameter is absent or a whole number (ASCII digits) >= low."""
    return value is None or (value.isascii() and value.isdigit() and int(value) >= low)


def first(pairs: list[tuple[str, str]], name: str) -> str | None:
    """The first value of a parameter in a query string, as Flask's request.args reads it."""
    return next((value for key, value in pairs if key == name), None)


@FUZZ
@given(
    endpoint=st.sampled_from(["jobs", "pages", "words", "word"]),
    pairs=query_strings(["limit", "offset", "status", "stopwords", "order"]),
    word=st.text(min_size=1, max_size=20),
)
def test_any_query_string_on_the_read_calls(api, job_id, endpoint, pairs, word):
    path = {
        "jobs": "/api/jobs",
        "pages": f"/api/jobs/{job_id}/pages",
        "words": f"/api/jobs/{job_id}/words",
        "word": f"/api/words/{quote(word, safe='')}",
    }[endpoint]

    response = api.client.get(path, query_string=urlencode(pairs))

    check_answer(response)
    if response.status_code == 200:
        limit = first(pairs, "limit")
        assert whole_number(limit, 1), f"took limit={limit!r}"
        answer = response.get_json()
        listed = answer["pages"] if endpoint == "word" else answer
        assert limit is None or len(listed) <= int(limit)
        if endpoint == "pages":
            assert whole_number(first(pairs, "offset"), 0)
            assert first(pairs, "status") in (None, *PAGE_STATUSES)
        if endpoint == "words":
            assert first(pairs, "stopwords") in (None, "include", "exclude")


# Ways to spell the real job's id that uuid.UUID reads as the same UUID.
SPELLINGS = [
    str.upper,
    lambda id: f"urn:uuid:{id}",
    lambda id: f"{{{id}}}",
    lambda id: uuid.UUID(id).hex,
]


@FUZZ
@given(
    method=st.sampled_from(["GET", "DELETE", "PUT", "PATCH", "POST"]),
    job=st.text(max_size=40) | st.uuids().map(str) | st.just(str) | st.sampled_from(SPELLINGS),
    tail=st.sampled_from(["", "/pages", "/words", "/", "/x"]),
)
def test_any_job_id_with_any_method(api, job_id, method, job, tail):
    real = uuid.UUID(job_id)
    if callable(job):  # the real job's id, as it is or spelt another way
        job = job(job_id)
    path = f"/api/jobs/{quote(job, safe='')}{tail}"

    response = api.client.open(path, method=method, json={} if method != "GET" else None)

    check_answer(response)
    if response.status_code == 200:
        assert uuid.UUID(job) == real  # only the job that exists is found
