"""One budget per client: the web form, POST /api/jobs and the retries share one bucket.

WORDCRAWL_SUBMISSIONS_PER_MINUTE counts every request that makes work, from any of those
doors, against one flask-limiter bucket per client address: N form posts + M API posts +
K retries reach the same limit, and past it every door answers 429 and creates nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import replace

from conftest import as_owner, client_at, row_counts, submit_job
from test_web import page

from job_manager import create_app

BUDGET = 6
NEVER_FETCHED = "http://127.0.0.1:9/budget"  # loopback, not allowed: blocked at once


def test_the_form_the_api_and_retries_share_one_budget(services, sql):
    settings = replace(services.settings, submissions_per_minute=BUDGET)
    app = create_app({"TESTING": True, "WTF_CSRF_ENABLED": False}, settings=settings)
    client = client_at(app, f"203.0.113.{uuid.uuid4().int % 250 + 1}")  # TEST-NET-3

    # Two form posts, two API posts, two retries (one by the API, one by the web page):
    # six requests, the whole budget.
    form_jobs = []
    for n in range(2):
        made = client.post("/", data={"urls": f"{NEVER_FETCHED}/form{n}"})
        assert made.status_code == 303, made.get_data(as_text=True)
        form_jobs.append(made.headers["Location"].rsplit("/", 1)[1])
    api_jobs = [submit_job(client, [f"{NEVER_FETCHED}/api{n}"]) for n in range(2)]
    retried = client.post(f"/api/jobs/{api_jobs[0]}/retry", json={}, headers=as_owner(api_jobs[0]))
    assert retried.status_code in (202, 400)  # queued again, or nothing (yet) to retry
    assert client.post(f"/jobs/{form_jobs[0]}/retry").status_code == 303
    before = row_counts(sql)

    refused = {
        "form": client.post("/", data={"urls": f"{NEVER_FETCHED}/form-late"}),
        "api": client.post("/api/jobs", json={"urls": [f"{NEVER_FETCHED}/api-late"]}),
        "schedule": client.post(
            "/api/jobs", json={"urls": [NEVER_FETCHED], "schedule": {"every_minutes": 60}}
        ),
        "api-retry": client.post(
            f"/api/jobs/{api_jobs[1]}/retry", json={}, headers=as_owner(api_jobs[1])
        ),
        "web-retry": client.post(f"/jobs/{form_jobs[1]}/retry"),
    }

    for door, response in refused.items():
        assert response.status_code == 429, door
        assert 1 <= int(response.headers["Retry-After"]) <= 60, door
    assert refused["api"].get_json()["error"]["code"] == "rate_limited"
    assert page(refused["form"]).title  # the web gets a page, not JSON
    assert row_counts(sql) == before
    assert sql("SELECT count(*) FROM schedules WHERE urls = ARRAY[:u]", u=NEVER_FETCHED) == [(0,)]
    # Another client has a budget of its own.
    other = client_at(app, "203.0.113.254")
    assert other.post("/", data={"urls": f"{NEVER_FETCHED}/other"}).status_code == 303
