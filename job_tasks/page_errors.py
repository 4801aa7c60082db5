"""Name every way a page can fail (the error codes of docs/reference.md), in one place.

Fetching and extracting raise `PageError` with one of the error codes and a
sentence a student can read; the task stores both on the page. `transient` marks the
failures worth trying again later (a timeout, a refused connection, HTTP 503).
"""

from __future__ import annotations

# HTTP answers that say "not now" rather than "never": retried with backoff.
TRANSIENT_HTTP_STATUSES = frozenset({429, 502, 503, 504})


class PageError(Exception):
    """A page could not be counted; `code` is one of the error codes."""

    code = "page_error"
    transient = False

    def __init__(self, message: str, *, http_status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.http_status = http_status


class InvalidUrl(PageError):
    code = "invalid_url"


class BlockedAddress(PageError):
    code = "blocked_address"


class RobotsDisallowed(PageError):
    code = "robots_disallowed"


class HttpError(PageError):
    code = "http_error"

    def __init__(
        self, message: str, *, http_status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, http_status=http_status)
        self.transient = http_status in TRANSIENT_HTTP_STATUSES
        self.retry_after = retry_after


class Timeout(PageError):
    code = "timeout"
    transient = True


class TooLarge(PageError):
    code = "too_large"


class UnsupportedContentType(PageError):
    code = "unsupported_content_type"


class TooManyRedirects(PageError):
    code = "too_many_redirects"


class ConnectionFailed(PageError):
    code = "connection_error"
    transient = True


class DecodeError(PageError):
    code = "decode_error"
