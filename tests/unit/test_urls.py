"""Which URLs wordcrawl accepts and follows (job_tasks/urls.py)."""

import pytest

from job_tasks.urls import (
    BadUrl,
    encoded_length,
    host_key,
    normalize_url,
    same_host_link,
    same_host_links,
)

PAGE = "http://example.com/dir/page.html"


@pytest.mark.parametrize(
    ("url", "canonical"),
    [
        ("http://example.com/a?b=1", "http://example.com/a?b=1"),
        ("https://example.com/", "https://example.com/"),
        ("HTTP://Example.COM/Path", "http://example.com/Path"),
        ("http://example.com", "http://example.com/"),
        ("http://example.com?q=1", "http://example.com/?q=1"),
        ("http://example.com/a#section", "http://example.com/a"),
        ("http://example.com/#", "http://example.com/"),
        ("http://example.com:8080/x", "http://example.com:8080/x"),
        ("http://[::1]:8001/x", "http://[::1]:8001/x"),
        ("  http://example.com/  ", "http://example.com/"),
    ],
    ids=[
        "plain",
        "https",
        "upper-case-scheme-and-host",
        "empty-path",
        "query-without-path",
        "fragment",
        "empty-fragment",
        "port",
        "ipv6-literal",
        "surrounding-spaces",
    ],
)
def test_http_urls_are_accepted_in_canonical_form(url, canonical):
    assert normalize_url(url) == canonical


def test_path_and_query_keep_their_case():
    assert normalize_url("http://EXAMPLE.com/Read?Me=Now") == "http://example.com/Read?Me=Now"


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/file",
        "javascript:alert(1)",
        "mailto:teacher@example.com",
        "file:///etc/passwd",
        "example.com/page",
        "//example.com/page",
        "http://",
        "http:///path",
        "",
        "   ",
        "http://example.com/a b",
        "http://exa mple.com/",
        "http://example.com/a\tb",
        "http://example.com/\x00",
        "http://example.com/\x7f",
        "http://example.com:99999/",
        "http://example.com:port/",
        "http://example.com:0/",
        "http://[::1/",
    ],
    ids=[
        "ftp",
        "javascript",
        "mailto",
        "file",
        "no-scheme",
        "scheme-relative",
        "no-host",
        "empty-host",
        "empty",
        "blank",
        "space-in-path",
        "space-in-host",
        "tab",
        "nul",
        "delete-char",
        "port-too-big",
        "port-not-a-number",
        "port-zero",
        "broken-ipv6",
    ],
)
def test_bad_urls_are_refused(url):
    with pytest.raises(BadUrl):
        normalize_url(url)


@pytest.mark.parametrize("value", [None, 42, b"http://example.com/", ["http://example.com/"]])
def test_non_strings_are_refused(value):
    with pytest.raises(BadUrl, match="string"):
        normalize_url(value)


def test_url_of_exactly_max_length_is_accepted():
    url = "http://example.com/" + "a" * (2048 - len("http://example.com/"))

    assert normalize_url(url) == url


def test_url_longer_than_max_length_is_refused():
    url = "http://example.com/" + "a" * 2048

    with pytest.raises(BadUrl, match="2048"):
        normalize_url(url)


def test_max_length_counts_the_percent_encoded_form():
    """700 non-ASCII characters are 700 characters, but 4,200 once sent (%D0%B6 each)."""
    url = "http://example.com/" + "ж" * 700

    assert len(url) < 2048
    with pytest.raises(BadUrl, match="percent-encoded"):
        normalize_url(url)
    assert encoded_length(url) == len("http://example.com/") + 700 * 6
    assert normalize_url("http://example.com/" + "ж" * 300)  # 1,800 + 19 characters


@pytest.mark.parametrize(
    "url",
    [
        "http://user:secret@example.com/",
        "http://user@example.com/",
        "http://:secret@example.com/",
        "http://@example.com/",
        "https://user:secret@example.com:8443/path?q=1",
    ],
)
def test_a_url_with_a_user_name_or_password_is_refused_without_echoing_it(url):
    with pytest.raises(BadUrl, match="user name or password") as info:
        normalize_url(url)

    assert "secret" not in str(info.value)
    assert "user:" not in str(info.value).replace("user:password@host", "")


def test_a_link_with_a_user_name_or_password_is_not_followed():
    assert same_host_link(PAGE, "http://user:secret@example.com/x") is None
    assert same_host_link(PAGE, "//user@example.com/x") is None


def test_max_length_is_checked_on_the_canonical_form():
    assert normalize_url("http://e.co/", max_length=12) == "http://e.co/"
    with pytest.raises(BadUrl):
        normalize_url("http://e.co", max_length=11)  # becomes "http://e.co/"


@pytest.mark.parametrize(
    ("href", "target"),
    [
        ("other.html", "http://example.com/dir/other.html"),
        ("/top", "http://example.com/top"),
        ("../up.html", "http://example.com/up.html"),
        ("?page=2", "http://example.com/dir/page.html?page=2"),
        ("//example.com/x", "http://example.com/x"),
        ("https://example.com/secure", "https://example.com/secure"),
        ("http://EXAMPLE.com:8080/p", "http://example.com:8080/p"),
        ("  spaced.html ", "http://example.com/dir/spaced.html"),
    ],
)
def test_same_host_links_are_resolved(href, target):
    assert same_host_link(PAGE, href) == target


@pytest.mark.parametrize(
    ("href", "target"),
    [
        ("#section", "http://example.com/dir/page.html"),
        ("other.html#part", "http://example.com/dir/other.html"),
    ],
)
def test_link_fragments_are_dropped(href, target):
    assert same_host_link(PAGE, href) == target


@pytest.mark.parametrize(
    "href",
    [
        "http://other.example/",
        "https://sub.example.com/",
        "//elsewhere.org/x",
        "mailto:teacher@example.com",
        "javascript:void(0)",
        "tel:+123456",
        "ftp://example.com/file",
        "http://example.com:99999/",
        "http://example.com/a b",
    ],
    ids=[
        "other-host",
        "subdomain",
        "scheme-relative-other-host",
        "mailto",
        "javascript",
        "tel",
        "ftp",
        "bad-port",
        "space",
    ],
)
def test_links_leaving_the_host_or_unusable_are_not_followed(href):
    assert same_host_link(PAGE, href) is None


def test_links_resolve_against_a_base_url():
    assert same_host_link("http://example.com/sub/", "y.html") == "http://example.com/sub/y.html"


def test_overlong_links_are_not_followed():
    assert same_host_link(PAGE, "/" + "a" * 100, max_length=50) is None


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("http://example.com/a", "http://example.com:80"),
        ("https://Example.com/a", "https://example.com:443"),
        ("http://example.com:8080/", "http://example.com:8080"),
        ("http://[::1]:8001/", "http://[::1]:8001"),
    ],
)
def test_host_key_names_scheme_host_and_port(url, key):
    assert host_key(url) == key


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://example.com:80/x", "http://example.com/x"),
        ("https://example.com:443", "https://example.com/"),
        ("http://example.com:/x", "http://example.com/x"),
        ("http://example.com:8080/x", "http://example.com:8080/x"),
    ],
)
def test_default_port_is_dropped_so_one_page_has_one_url(url, expected):
    assert normalize_url(url) == expected


def test_same_host_links_resolve_against_base_but_keep_the_pages_host():
    hrefs = ["b.html", "/c#part", "b.html#again", "https://other.example/", "mailto:x@y.z", ""]

    links = same_host_links(
        "http://site.example/dir/a.html", hrefs, base_url="http://site.example/base/"
    )

    # An empty href is a link to the base itself, as in a browser.
    assert links == [
        "http://site.example/base/b.html",
        "http://site.example/c",
        "http://site.example/base/",
    ]


def test_same_host_links_leave_out_the_page_itself():
    links = same_host_links("http://site.example/a", ["/a", "#top", "/b"])

    assert links == ["http://site.example/b"]


@pytest.mark.parametrize(
    "url", ["http://other.org\\@example.com/", "http://example.com\\@other.org/", "http://a\\b/"]
)
def test_a_backslash_before_the_path_is_refused(url):
    # urllib3 and browsers read it as a slash, urlsplit does not: they name different hosts.
    with pytest.raises(BadUrl):
        normalize_url(url)


def test_a_link_whose_host_parsers_disagree_on_is_not_followed():
    # To urlsplit this is example.com (the page's host); requests would fetch other.org.
    assert same_host_link(PAGE, "http://other.org\\@example.com/x") is None


def test_a_lone_surrogate_is_refused():
    # JSON can carry "\ud800"; UTF-8, servers and PostgreSQL cannot.
    with pytest.raises(BadUrl):
        normalize_url("http://example.com/\ud800")


@pytest.mark.parametrize("url", ["HTTP://[::1]0", "http://[::1]x/", "http://[::1]80/"])
def test_text_after_an_ipv6_host_is_refused(url):
    with pytest.raises(BadUrl, match="IPv6"):
        normalize_url(url)
