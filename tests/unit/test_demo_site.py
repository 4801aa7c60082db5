"""The generated demo site (wordcrawl/demo_site.py): its pages count as it promises."""

import pytest

from job_tasks.reading.text import parse_html
from job_tasks.reading.words import count_words
from job_tasks.urls import same_host_link
from wordcrawl.demo_site import DemoSite

SITE_URL = "http://127.0.0.1:8000/"


@pytest.fixture
def site():
    return DemoSite(pages=30)


@pytest.mark.parametrize("n", [0, 1, 7, 29])
def test_page_counts_exactly_as_expected(site, n):
    document = parse_html(site.render(n), SITE_URL)

    counts = count_words(document.text)

    assert dict(counts) == dict(site.expected_counts(n))
    assert counts.N() == len(site.visible_words(n))


def test_small_pages_count_as_expected_too():
    site = DemoSite(pages=3, words_per_page=25)

    for n in range(3):
        assert dict(count_words(parse_html(site.render(n), SITE_URL).text)) == dict(
            site.expected_counts(n)
        )


def test_a_page_is_the_same_on_every_render(site):
    assert site.render(5) == DemoSite(pages=30).render(5)


def test_page_title_names_the_page(site):
    assert parse_html(site.render(4), SITE_URL).title == "Demo page 4"


def test_page_links_are_the_links_it_promises(site):
    assert parse_html(site.render(3), SITE_URL).links == [href for href, _ in site.links(3)]


def test_first_page_links_to_the_traps_of_a_real_site(site):
    links = parse_html(site.render(0), SITE_URL).links

    assert "/private/report" in links
    assert "https://example.com/" in links
    assert "mailto:teacher@example.com" in links
    assert "/#top" in links


def test_a_crawler_follows_only_the_sites_own_pages(site):
    links = parse_html(site.render(0), SITE_URL).links

    followed = {same_host_link(SITE_URL, href) for href in links} - {None}

    assert followed == {
        SITE_URL,
        SITE_URL + "page/1",
        SITE_URL + "page/2",
        SITE_URL + "page/3",
        SITE_URL + "page/4",
        SITE_URL + "private/report",
    }


def test_pages_link_to_their_parent_and_next_page(site):
    hrefs = [href for href, _ in site.links(6)]

    assert "/page/1" in hrefs  # parent of page 6 with fanout 4
    assert "/page/7" in hrefs


def test_last_page_has_no_next_link(site):
    assert "next" not in [text for _, text in site.links(29)]


@pytest.mark.parametrize(
    ("pages", "n", "children"),
    [
        (100, 0, [1, 2, 3, 4]),
        (100, 24, [97, 98, 99]),
        (100, 25, []),
        (3, 0, [1, 2]),
        (1, 0, []),
    ],
)
def test_children_stay_within_the_site(pages, n, children):
    assert DemoSite(pages=pages).children(n) == children


def test_every_page_is_reachable_from_the_first(site):
    seen, todo = {0}, [0]
    while todo:
        for child in site.children(todo.pop()):
            seen.add(child)
            todo.append(child)

    assert seen == set(range(site.pages))


@pytest.mark.parametrize(
    ("path", "n"),
    [("/", 0), ("/page/1", 1), ("/page/29", 29)],
)
def test_paths_show_their_page(site, path, n):
    assert site.page_number(path) == n


@pytest.mark.parametrize(
    "path", ["/page/30", "/page/", "/page/x", "/page/-1", "/other", "/private/report"]
)
def test_other_paths_show_no_page(site, path):
    assert site.page_number(path) is None


def test_path_with_a_superscript_digit_shows_no_page(site):
    assert site.page_number("/page/\u00b2") is None
