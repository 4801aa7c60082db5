"""Talk to the manager's JSON API from the command line (`wordcrawl submit/status/words`)."""

from __future__ import annotations

from typing import Any

import requests


class ApiClientError(Exception):
    """The manager could not be reached, or answered with an error body."""


class ApiClient:
    """A thin wrapper over the manager's HTTP API, turning errors into one exception."""

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()

    def submit(self, urls: list[str], depth: int, max_pages: int) -> dict[str, Any]:
        return self._call(
            "POST", "/api/jobs", json={"urls": urls, "depth": depth, "max_pages": max_pages}
        )

    def job(self, job_id: str) -> dict[str, Any]:
        return self._call("GET", f"/api/jobs/{job_id}")

    def words(self, job_id: str, limit: int, stopwords: str = "exclude") -> list[dict[str, Any]]:
        return self._call(
            "GET", f"/api/jobs/{job_id}/words", params={"limit": limit, "stopwords": stopwords}
        )

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        url = self.base_url + path
        try:
            response = self.session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.ConnectionError as err:
            raise ApiClientError(
                f"cannot reach the manager at {self.base_url} (is `wordcrawl up` or "
                "`wordcrawl serve` running? WORDCRAWL_API_URL says where it is)"
            ) from err
        if response.ok:
            return response.json()
        try:
            error = response.json()["error"]
            message = error["message"]
        except (ValueError, KeyError, TypeError):
            message = response.text[:200]
        raise ApiClientError(f"{response.status_code}: {message}")
