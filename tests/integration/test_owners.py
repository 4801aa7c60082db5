"""Owners and the instructor: who may cancel, retry, pause and delete (docs/reference.md,
"Owners, tokens and the instructor").

Every write endpoint, API and web, answers 403 `forbidden` to anyone but the owner and
changes nothing; the owner is whoever shows the token POST /api/jobs answered, or the
browser whose form submitted it; the instructor (basic auth as admin, or the login page)
may change everything. Reading stays open. A missing job or schedule is still 404.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import uuid
from dataclasses import replace

import pytest
import requests
from conftest import as_owner, bearer, client_at, submit_job, wait_for_job
from sqlalchemy import text
from test_web import form_token, page

from job_manager import create_app
from job_tasks.storing import db as job_db
from job_tasks.storing.schedule_runs import start_due

pytestmark = pytest.mark.slow  # crawls as several owners and as the instructor

PASSWORD = "teacher-knows-best"
NOT_THE_PASSWORD = "student-guesses"


def basic(user: str, password: str) -> dict[str, str]:
    raw = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


INSTRUCTOR = basic("admin", PASSWORD)
STRANGERS = {
    "nobody": {},
    "a-wrong-token": bearer("not-the-token"),
    "a-wrong-password": basic("admin", NOT_THE_PASSWORD),
    "another-user": basic("student", PASSWORD),
}


@pytest.fixture(scope="module")
def class_app(services):
    """The manager of a class: an instructor's password is set, CSRF is on."""
    settings = replace(services.settings, admin_password=PASSWORD)
    return create_app({"TESTING": True, "WTF_CSRF_ENABLED": True}, settings=settings)


@pytest.fixture
def api(class_app):
    return class_app.test_client()


@pytest.fixture(scope="module")
def execute(services):
    engine = job_db.get_engine(services.database_url)

    def run(query: str, **params: object) -> None:
        with engine.begin() as conn:
            conn.execute(text(query), params)

    return run


@pytest.fixture(autouse=True)
def no_schedule_outlives_its_test(execute):
    yield
    execute("DELETE FROM schedules")


def open_job(api, fixture_site) -> str:
    """A job that stays open for seconds: 20 pages of 0.6 s, three at a time."""
    tag = uuid.uuid4().hex
    urls = [fixture_site.url(f"/delay?ms=600&owners={tag}&n={n}") for n in range(20)]
    return submit_job(api, urls, max_pages=20)


def status_of(api, job_id: str) -> str:
    return api.get(f"/api/jobs/{job_id}").get_json()["status"]


def assert_forbidden(response) -> None:
    assert response.status_code == 403, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == "forbidden" and "token" in error["message"]


@pytest.fixture(scope="module")
def failed_job(class_app, workers, fixture_site) -> str:
    """An ended job with one failed page (404), submitted through the API."""
    client = class_app.test_client()
    job_id = submit_job(client, [fixture_site.url(f"/missing?owners={uuid.uuid4().hex}")])
    assert wait_for_job(client, job_id)["pages"]["failed"] == 1
    return job_id


def failed_attempts(sql, job_id: str) -> list:
    return sql("SELECT status, attempts FROM pages WHERE job_id = :job", job=job_id)


# --- The API ------------------------------------------------------------------------------


@pytest.mark.parametrize("who", STRANGERS.values(), ids=list(STRANGERS))
def test_a_stranger_cannot_cancel_a_job_and_nothing_changes(api, who, fixture_site, sql):
    job_id = open_job(api, fixture_site)
    other = submit_job(api, ["http://127.0.0.1:9/another-job"])  # its token is not this job's

    assert_forbidden(api.delete(f"/api/jobs/{job_id}", headers=who))
    assert_forbidden(api.delete(f"/api/jobs/{job_id}", headers=as_owner(other)))

    assert status_of(api, job_id) in ("queued", "running")
    assert not sql("SELECT 1 FROM pages WHERE job_id = :j AND status = 'skipped'", j=job_id)
    # Reading stays open to everyone.
    assert api.get(f"/api/jobs/{job_id}", headers=who).status_code == 200
    assert api.delete(f"/api/jobs/{job_id}", headers=as_owner(job_id)).status_code == 200


@pytest.mark.parametrize("who", ["owner", "instructor"])
def test_the_owner_or_the_instructor_cancels_a_job(api, who, fixture_site):
    job_id = open_job(api, fixture_site)
    headers = as_owner(job_id) if who == "owner" else INSTRUCTOR

    response = api.delete(f"/api/jobs/{job_id}", headers=headers)

    assert response.status_code == 200
    assert response.get_json()["status"] == "cancelled"


def test_the_answer_gives_a_fresh_token_and_only_its_hash_is_kept(api, sql):
    answers = [
        api.post("/api/jobs", json={"urls": ["http://127.0.0.1:9/token"]}).get_json()
        for _ in range(2)
    ]

    tokens = [answer["token"] for answer in answers]
    assert tokens[0] != tokens[1] and all(len(token) >= 32 for token in tokens)
    for answer in answers:
        [(stored,)] = sql("SELECT owner_token_hash FROM jobs WHERE id = :j", j=answer["id"])
        assert stored != answer["token"] and len(stored) == 64
        assert "token" not in api.get(answer["url"]).get_json()  # shown once, never again


@pytest.mark.parametrize("who", STRANGERS.values(), ids=list(STRANGERS))
def test_a_stranger_cannot_retry_a_job(api, failed_job, who, sql):
    before = failed_attempts(sql, failed_job)

    assert_forbidden(api.post(f"/api/jobs/{failed_job}/retry", json={}, headers=who))

    assert failed_attempts(sql, failed_job) == before


def test_the_instructor_retries_a_job_and_so_does_its_owner(api, failed_job):
    by_instructor = api.post(f"/api/jobs/{failed_job}/retry", json={}, headers=INSTRUCTOR)
    assert by_instructor.status_code == 202
    assert wait_for_job(api, failed_job)["pages"]["failed"] == 1  # a 404 fails again

    by_owner = api.post(f"/api/jobs/{failed_job}/retry", json={}, headers=as_owner(failed_job))
    assert by_owner.status_code == 202
    wait_for_job(api, failed_job)


def test_a_missing_job_or_schedule_is_still_404(api):
    missing = uuid.uuid4()
    for response in (
        api.delete(f"/api/jobs/{missing}"),
        api.post(f"/api/jobs/{missing}/retry", json={}),
        api.patch(f"/api/schedules/{missing}", json={"paused": True}),
        api.delete(f"/api/schedules/{missing}"),
    ):
        assert response.status_code == 404
        assert response.get_json()["error"]["code"] == "not_found"


def create_schedule(api, urls: list[str]) -> dict:
    response = api.post("/api/jobs", json={"urls": urls, "schedule": {"every_minutes": 60}})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_only_the_schedules_owner_or_the_instructor_pauses_or_deletes_it(api, sql):
    schedule = create_schedule(api, ["http://127.0.0.1:9/schedule"])
    url = f"/api/schedules/{schedule['id']}"
    owner = bearer(schedule["token"])

    for who in STRANGERS.values():
        assert_forbidden(api.patch(url, json={"paused": True}, headers=who))
        assert_forbidden(api.delete(url, headers=who))
    assert api.get(url).get_json()["paused"] is False

    assert api.patch(url, json={"paused": True}, headers=owner).get_json()["paused"] is True
    assert api.patch(url, json={"paused": False}, headers=INSTRUCTOR).status_code == 200
    assert api.delete(url, headers=INSTRUCTOR).status_code == 200
    assert api.get(url).status_code == 404


def test_a_schedules_token_may_cancel_its_runs(api, services, fixture_site):
    schedule = create_schedule(api, [fixture_site.url(f"/delay?ms=600&run={uuid.uuid4().hex}")])
    sessions = job_db.get_sessionmaker(services.database_url)
    [run_id] = start_due(sessions, services.settings.job_tasks_in_broker)

    assert_forbidden(api.delete(f"/api/jobs/{run_id}"))
    cancelled = api.delete(f"/api/jobs/{run_id}", headers=bearer(schedule["token"]))

    assert cancelled.status_code == 200


def test_without_a_password_nobody_is_the_instructor(services, fixture_site):
    api = create_app({"TESTING": True}, settings=services.settings).test_client()
    job_id = open_job(api, fixture_site)

    assert_forbidden(api.delete(f"/api/jobs/{job_id}", headers=basic("admin", "")))
    assert api.delete(f"/api/jobs/{job_id}", headers=as_owner(job_id)).status_code == 200


# --- The web pages ------------------------------------------------------------------------


def submit_from_the_form(browser, urls: list[str], **fields: str) -> str:
    """Submit with the form, as a student does; return the job's (or schedule's) page."""
    token = form_token(page(browser.get("/")), "submit-form")
    response = browser.post("/", data={"csrf_token": token, "urls": "\n".join(urls), **fields})
    assert response.status_code == 303, response.get_data(as_text=True)
    return response.headers["Location"]


def buttons(soup) -> set[str]:
    return {form["id"] for form in soup.select("main form") if form.get("id") != "submit-form"}


def test_the_browser_that_submitted_a_job_sees_its_buttons_and_others_do_not(
    class_app, fixture_site
):
    student, classmate = class_app.test_client(), class_app.test_client()
    urls = [
        fixture_site.url(f"/delay?ms=600&web-owner={uuid.uuid4().hex}&n={n}") for n in range(20)
    ]
    job_page = submit_from_the_form(student, urls)
    job_id = job_page.rsplit("/", 1)[1]

    mine = page(student.get(job_page))
    theirs = page(classmate.get(job_page))

    assert "cancel-form" in buttons(mine) and not mine.select_one("#not-yours")
    assert buttons(theirs) == set() and theirs.select_one("#not-yours")
    assert "this browser may change its 1 submission" in mine.select_one("#who-am-i").text
    # The classmate tries anyway, with a valid CSRF token of its own: a page that says why.
    token = form_token(page(classmate.get("/")), "submit-form")
    refused = classmate.post(f"{job_page}/cancel", data={"csrf_token": token})
    assert refused.status_code == 403
    said = page(refused).select_one("#error-message").get_text()
    assert "only whoever submitted this job may change it" in said
    assert "Traceback" not in refused.get_data(as_text=True)
    assert status_of(student, job_id) in ("queued", "running")
    # The student's session may use the API too (the same signed cookie).
    assert student.delete(f"/api/jobs/{job_id}").status_code == 200


def test_a_schedule_page_shows_its_buttons_only_to_the_browser_that_made_it(class_app):
    student, classmate = class_app.test_client(), class_app.test_client()
    schedule_page = submit_from_the_form(student, ["http://127.0.0.1:9/weekly"], every_minutes="60")

    assert buttons(page(student.get(schedule_page))) == {"pause-form", "delete-form"}
    theirs = page(classmate.get(schedule_page))
    assert buttons(theirs) == set() and theirs.select_one("#not-yours")
    token = form_token(page(classmate.get("/")), "submit-form")
    for action in ("pause", "resume", "delete"):
        refused = classmate.post(f"{schedule_page}/{action}", data={"csrf_token": token})
        assert refused.status_code == 403, action
    assert student.get(f"/api{schedule_page}").get_json()["paused"] is False

    mine = page(student.get(schedule_page))
    paused = student.post(
        f"{schedule_page}/pause", data={"csrf_token": form_token(mine, "pause-form")}
    )
    assert paused.status_code == 303


def test_the_instructor_logs_in_changes_anything_and_logs_out(class_app, failed_job, fixture_site):
    student, instructor = class_app.test_client(), client_at(class_app, "10.77.0.1")
    urls = [fixture_site.url(f"/delay?ms=600&login={uuid.uuid4().hex}&n={n}") for n in range(20)]
    job_page = submit_from_the_form(student, urls)
    login = page(instructor.get("/login"))
    token = form_token(login, "login-form")

    wrong = instructor.post("/login", data={"csrf_token": token, "password": NOT_THE_PASSWORD})
    assert wrong.status_code == 403
    assert page(wrong).select_one("#login-error").get_text() == (
        "that is not the instructor's password"
    )
    assert instructor.post("/login", data={"password": PASSWORD}).status_code == 400  # no CSRF
    assert buttons(page(instructor.get(job_page))) == set()

    logged_in = instructor.post("/login", data={"csrf_token": token, "password": PASSWORD})

    assert logged_in.status_code == 303
    home = page(instructor.get("/"))
    assert home.select_one("#who-am-i").get_text() == "You are the instructor"
    shown = page(instructor.get(job_page))
    assert "cancel-form" in buttons(shown)
    cancelled = instructor.post(
        f"{job_page}/cancel", data={"csrf_token": form_token(shown, "cancel-form")}
    )
    assert cancelled.status_code == 303
    assert status_of(student, job_page.rsplit("/", 1)[1]) == "cancelled"
    failures = page(instructor.get("/failures"))
    assert failures.select_one(f"form#retry-job-{failed_job}")
    assert not page(student.get("/failures")).select_one(f"form#retry-job-{failed_job}")

    out = instructor.post("/logout", data={"csrf_token": form_token(home, "logout-form")})
    assert out.status_code == 303
    assert (
        page(instructor.get("/")).select_one("#who-am-i").get_text().startswith("You are a student")
    )
    assert buttons(page(instructor.get(job_page))) == set()


def test_the_login_page_is_rate_limited(class_app):
    guesser = client_at(class_app, "10.77.0.2")
    token = form_token(page(guesser.get("/login")), "login-form")

    answers = [
        guesser.post("/login", data={"csrf_token": token, "password": f"guess{n}"}).status_code
        for n in range(6)
    ]

    assert answers == [403] * 5 + [429]


def test_without_a_password_the_login_page_says_so(services):
    browser = create_app({"TESTING": True}, settings=services.settings).test_client()

    shown = page(browser.get("/login"))

    assert shown.select_one("#no-login") and not shown.select_one("form#login-form")
    assert not page(browser.get("/")).select_one("#login-link")
    token = form_token(page(browser.get("/")), "submit-form")
    refused = browser.post("/login", data={"csrf_token": token, "password": ""})
    assert refused.status_code == 403
    assert "WORDCRAWL_ADMIN_PASSWORD" in page(refused).select_one("#login-error").get_text()


# --- The command line ---------------------------------------------------------------------


def test_wordcrawl_submit_prints_the_id_and_the_token_apart(manager_url):
    result = subprocess.run(
        [sys.executable, "-m", "wordcrawl", "submit", "http://127.0.0.1:9/cli"],
        env={**os.environ, "WORDCRAWL_API_URL": manager_url},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    job_id = result.stdout.strip()  # stdout: the id alone, as `JOB=$(wordcrawl submit ...)`
    assert uuid.UUID(job_id)
    first, sentence = result.stderr.splitlines()[:2]
    assert first.startswith("token ") and "cancel or retry" in sentence
    token = first.split()[1]
    url = f"{manager_url}/api/jobs/{job_id}"
    assert requests.delete(url, timeout=10).status_code == 403
    assert requests.delete(url, headers=bearer(token), timeout=10).status_code == 200
