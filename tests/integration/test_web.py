"""The web pages (docs/reference.md, "The web pages") as a browser gets them.

The form carries a CSRF token and a post without it changes nothing; a job's page shows
its status, progress and pages; what was crawled (a hostile <title>) is shown escaped;
pages load nothing from other sites and carry the security headers; unknown jobs are 404.
"""

from __future__ import annotations

import re
import uuid
from urllib.parse import urlsplit

import pytest
from bs4 import BeautifulSoup
from conftest import row_counts, submit_job, wait_for_job
from fixture_site import HOSTILE_TITLE
from processes import wait_for

from job_manager.bounds import RULES

SEED = "http://127.0.0.1:9/never-fetched"  # loopback, not allowed: never fetched


def page(response) -> BeautifulSoup:
    assert response.mimetype == "text/html"
    return BeautifulSoup(response.get_data(as_text=True), "html.parser")


def form_token(soup: BeautifulSoup, form_id: str) -> str:
    token = soup.select_one(f"form#{form_id} input[name=csrf_token]")
    assert token is not None and token["type"] == "hidden" and token["value"]
    return token["value"]


def job_page_facts(soup: BeautifulSoup) -> dict:
    """What a person reads on a job page: status, progress, counts, and the pages table."""
    progress = soup.select_one("progress#progress")
    rows = soup.select("table#pages tbody tr")
    return {
        "status": soup.select_one("#job-status").get_text(strip=True),
        "progress": (int(progress["value"]), int(progress["max"])),
        "progress_text": soup.select_one("#progress-text").get_text(" ", strip=True),
        "counts": {
            dd["data-status"]: int(dd.get_text(strip=True)) for dd in soup.select("#counts dd")
        },
        "pages": [[cell.get_text(" ", strip=True) for cell in row.select("td")] for row in rows],
        "cancel_form": soup.select_one("form#cancel-form") is not None,
    }


def client_pages(browser, job_id: str) -> list[dict]:
    """The job's pages as the API gives them."""
    return browser.get(f"/api/jobs/{job_id}/pages").get_json()


@pytest.fixture(scope="module")
def ok_job(app, workers, fixture_site) -> dict:
    """A crawled job of two fixture pages: /ok (HTML) and /plain (text)."""
    client = app.test_client()
    urls = [fixture_site.url("/ok"), fixture_site.url("/plain")]
    return wait_for_job(client, submit_job(client, urls))


# --- The form and CSRF -------------------------------------------------------------------


def test_the_home_page_has_the_form_with_a_csrf_token(browser):
    response = browser.get("/")

    assert response.status_code == 200
    soup = page(response)
    form = soup.select_one("form#submit-form")
    assert (form["method"], form["action"]) == ("post", "/")
    assert form.select_one("textarea[name=urls]") is not None
    assert [o["value"] for o in form.select("select[name=depth] option")] == ["0", "1", "2", "3"]
    assert form.select_one("input[name=max_pages]")["max"] == "1000"
    form_token(soup, "submit-form")


@pytest.mark.parametrize("token", [None, "not-the-token"], ids=["no-token", "wrong-token"])
def test_a_post_without_the_pages_token_is_refused_and_creates_nothing(browser, sql, token):
    browser.get("/")  # a session exists, but the post does not carry its token
    before = row_counts(sql)
    form = {"urls": SEED, "depth": "0", "max_pages": "10"}
    if token:
        form["csrf_token"] = token

    response = browser.post("/", data=form)

    assert response.status_code == 400
    assert "CSRF" in response.get_data(as_text=True)
    assert row_counts(sql) == before


def test_bad_form_input_is_shown_on_the_form_and_creates_nothing(browser, sql):
    token = form_token(page(browser.get("/")), "submit-form")
    before = row_counts(sql)

    response = browser.post(
        "/", data={"csrf_token": token, "urls": "ftp://example.com/file", "max_pages": "10"}
    )

    assert response.status_code == 400
    soup = page(response)
    assert soup.select_one("#form-error").get_text() == (
        "line 1 (ftp://example.com/file): only http and https URLs can be crawled"
    )
    assert soup.select_one("textarea[name=urls]").get_text() == "ftp://example.com/file"
    assert row_counts(sql) == before


def test_a_bad_line_is_named_by_its_number_and_what_was_typed(browser, sql):
    token = form_token(page(browser.get("/")), "submit-form")
    before = row_counts(sql)
    typed = "http://example.com/\n\n   \nftp://x\nhttp://example.org/"

    response = browser.post("/", data={"csrf_token": token, "urls": typed})

    assert response.status_code == 400
    error = page(response).select_one("#form-error").get_text()
    assert error == "line 4 (ftp://x): only http and https URLs can be crawled"
    assert row_counts(sql) == before


def test_the_repeat_options_are_folded_away_until_used(browser):
    form = page(browser.get("/")).select_one("form#submit-form")
    repeat = form.select_one("details#repeat")

    assert repeat is not None and not repeat.has_attr("open")  # closed: no script needed
    assert repeat.select_one("summary").get_text(strip=True) == "Repeat it (optional)"
    assert {field["name"] for field in repeat.select("input")} == {"every_minutes", "cron"}
    assert form.select_one("button[type=submit]").find_parent("details") is None
    # Sent back with a mistake in it, the part is open, showing what was typed.
    token = form_token(page(browser.get("/")), "submit-form")
    again = page(
        browser.post(
            "/", data={"csrf_token": token, "urls": "http://example.com/", "every_minutes": "3"}
        )
    )
    assert again.select_one("details#repeat").has_attr("open")
    assert again.select_one("#every_minutes")["value"] == "3"
    assert "runs every 3 minutes" in again.select_one("#form-error").get_text()


def test_a_post_with_the_token_creates_the_job_and_shows_its_page(
    browser, sql, workers, fixture_site
):
    token = form_token(page(browser.get("/")), "submit-form")
    before = row_counts(sql)
    urls = [fixture_site.url("/ok"), fixture_site.url("/plain")]

    response = browser.post(
        "/", data={"csrf_token": token, "urls": "\n".join(urls) + "\n", "depth": "0"}
    )

    assert response.status_code == 303
    match = re.fullmatch(r"/jobs/([0-9a-f-]{36})", urlsplit(response.headers["Location"]).path)
    assert match, response.headers["Location"]
    job_id = match[1]
    assert row_counts(sql) == (before[0] + 1, before[1] + 2, before[2] + 2)
    job = wait_for_job(browser, job_id)
    assert (job["status"], job["urls"]) == ("done", urls)

    shown = job_page_facts(page(browser.get(f"/jobs/{job_id}")))

    assert shown["status"] == "done"
    assert shown["progress"] == (2, 2)
    assert shown["progress_text"] == "2 of 2 pages ended"
    assert shown["counts"] == {"queued": 0, "running": 0, "done": 2, "failed": 0, "skipped": 0}
    # Newest first: both pages are listed, in whichever order they ended.
    assert sorted(row[:3] for row in shown["pages"]) == [[url, "0", "done"] for url in urls]
    assert not shown["cancel_form"]
    # The home page lists it among the recent jobs.
    recent = page(browser.get("/")).select("table#jobs tbody tr a")
    assert f"/jobs/{job_id}" in [a["href"] for a in recent]


def test_the_job_page_shows_its_pages_and_top_words(browser, ok_job, fixture_site):
    soup = page(browser.get(f"/jobs/{ok_job['id']}"))

    rows = {row[0]: row for row in job_page_facts(soup)["pages"]}
    assert rows.keys() == {fixture_site.url("/ok"), fixture_site.url("/plain")}
    ok_row = rows[fixture_site.url("/ok")]
    assert ok_row[:6] == [fixture_site.url("/ok"), "0", "done", "200", "Fixture <OK> page", "12"]
    # Each page names the task that carried it (two pages, each alone: two tasks).
    pages = client_pages(browser, ok_job["id"])
    tasks = {row[0]: row[9] for row in rows.values()}
    assert tasks == {page["url"]: page["task_id"][:8] for page in pages}
    assert len(set(tasks.values())) == 2
    chart = [label.get_text() for label in soup.select("#chart text.label")]
    assert chart[:3] == ["dog", "plain", "text"]  # the API's top words, stopwords left out
    assert "the" not in chart


# --- Escaping, no CDN, headers, static files -------------------------------------------------


def test_a_hostile_page_title_is_shown_escaped(browser, crawl, fixture_site):
    job = crawl([fixture_site.url("/hostile-title")])
    assert job["status"] == "done"

    response = browser.get(f"/jobs/{job['id']}")

    html = response.get_data(as_text=True)
    assert HOSTILE_TITLE not in html
    assert "&lt;script&gt;alert(" in html
    soup = page(response)
    assert [row[4] for row in job_page_facts(soup)["pages"]] == [HOSTILE_TITLE]
    # The only scripts on the page are the manager's own files.
    assert all(script.get("src") for script in soup.find_all("script"))


@pytest.mark.parametrize("path", ["/", "/jobs/{job}", "/jobs/{unknown}", "/dashboard"])
def test_pages_load_nothing_from_other_sites_and_nothing_inline(browser, ok_job, path):
    soup = BeautifulSoup(
        browser.get(path.format(job=ok_job["id"], unknown=uuid.uuid4())).get_data(as_text=True),
        "html.parser",
    )

    for tag, attribute in [("script", "src"), ("link", "href"), ("img", "src")]:
        for element in soup.find_all(tag):
            if tag == "script":
                # The CSP blocks inline scripts: every script must be a file of this site.
                assert element.get(attribute), f"inline script: {element}"
            if element.get(attribute):
                parts = urlsplit(element[attribute])
                assert not parts.scheme and not parts.netloc, element
    # Inline styles would be blocked by the CSP too.
    assert not soup.find_all("style")
    assert not soup.find_all(style=True)


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/jobs/{job}",
        "/jobs/{unknown}",
        "/static/job.js",
        "/api/jobs/{job}",
        "/dashboard",
        "/api/activity",
    ],
)
def test_every_answer_carries_the_security_headers(browser, ok_job, path):
    response = browser.get(path.format(job=ok_job["id"], unknown=uuid.uuid4()))

    assert response.headers["X-Content-Type-Options"] == "nosniff"
    policy = {
        directive.split()[0]: directive.split()[1:]
        for directive in response.headers["Content-Security-Policy"].split(";")
        if directive.strip()
    }
    scripts = policy.get("script-src", policy.get("default-src"))
    assert scripts and "'unsafe-inline'" not in scripts and "*" not in scripts
    assert policy["frame-ancestors"] in (["'none'"], ["'self'"])


def test_the_dashboard_explains_every_rule_of_its_bound_line(browser):
    soup = page(browser.get("/dashboard"))

    rules = [(li["data-kind"], li.get_text()) for li in soup.select("#bound-rules li")]
    assert rules == RULES
    assert soup.select_one("#bound") is not None  # dashboard.js writes the rule that holds
    assert soup.select_one("script[src$='dashboard.js']") is not None


def test_the_job_pages_script_and_stylesheet_are_served(browser, ok_job):
    soup = page(browser.get(f"/jobs/{ok_job['id']}"))
    script = soup.select_one("script[src]")["src"]
    stylesheet = soup.select_one("link[rel=stylesheet]")["href"]

    js = browser.get(script)
    css = browser.get(stylesheet)

    assert urlsplit(script).path == "/static/job.js"
    assert (js.status_code, js.mimetype) == (200, "text/javascript")
    assert "textContent" in js.get_data(as_text=True)
    assert (css.status_code, css.mimetype) == (200, "text/css")
    assert css.get_data()


@pytest.mark.parametrize("job_id", [str(uuid.uuid4()), "not-a-job-id"], ids=["unknown", "bad"])
def test_an_unknown_job_is_a_404_page(browser, job_id):
    response = browser.get(f"/jobs/{job_id}")

    assert response.status_code == 404
    assert response.mimetype == "text/html"


# --- Cancelling from the page ------------------------------------------------------------


def submit_from_the_form(browser, urls: list[str]) -> str:
    """Submit a job with the form, as a student does; return its id."""
    token = form_token(page(browser.get("/")), "submit-form")
    response = browser.post("/", data={"csrf_token": token, "urls": "\n".join(urls)})
    assert response.status_code == 303, response.get_data(as_text=True)
    return urlsplit(response.headers["Location"]).path.rsplit("/", 1)[1]


def test_a_running_job_can_be_cancelled_from_its_page(browser, client, workers, fixture_site):
    urls = [fixture_site.url(f"/delay?ms=600&web-cancel={n}") for n in range(20)]
    job_id = submit_from_the_form(browser, urls)  # this browser's session may cancel it
    wait_for(
        lambda: client.get(f"/api/jobs/{job_id}").get_json()["pages"]["running"] >= 1,
        30,
        "no page of the job started",
    )

    running = page(browser.get(f"/jobs/{job_id}"))
    shown = job_page_facts(running)
    assert shown["status"] in ("queued", "running")
    ended, total = shown["progress"]
    assert total == 20 and ended < total
    assert shown["cancel_form"]
    # Without the page's token the cancel is refused and the job goes on.
    assert browser.post(f"/jobs/{job_id}/cancel").status_code == 400
    assert client.get(f"/api/jobs/{job_id}").get_json()["status"] in ("queued", "running")

    response = browser.post(
        f"/jobs/{job_id}/cancel", data={"csrf_token": form_token(running, "cancel-form")}
    )

    assert response.status_code == 303
    assert urlsplit(response.headers["Location"]).path == f"/jobs/{job_id}"
    after = job_page_facts(page(browser.get(f"/jobs/{job_id}")))
    assert after["status"] == "cancelled"
    assert after["counts"]["queued"] == 0 and after["counts"]["skipped"] >= 1
    assert not after["cancel_form"]
    # Let the pages already started finish before the next test.
    wait_for(
        lambda: client.get(f"/api/jobs/{job_id}").get_json()["pages"]["running"] == 0,
        30,
        "the started pages did not finish",
    )
