"""Answer every API error with one body: {"error": {"code", "message", "field"}}.

Views raise `ApiError`; HTTP errors Flask raises itself (404, 405, 413, 429...) get the same
body when the request was for /api/, and the usual HTML page otherwise. An ApiError raised
by a web page (403 to a browser that may not cancel a job) is a page with its sentence.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, render_template, request
from psycopg2.errors import QueryCanceled
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

# Machine-readable codes for the HTTP errors Flask raises by itself.
HTTP_ERROR_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


# The heading of the page a browser gets for an error raised by a web page.
ERROR_TITLES = {403: "Not yours to change", 404: "Not found", 429: "Too many requests"}


class ApiError(Exception):
    """An error answer: HTTP status, a code for programs, a sentence for people."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


def error_response(status: int, code: str, message: str, field: str | None = None) -> Response:
    """Build the API's error body with its status.

    `field` is always there (null when the error is not about one field of the input),
    so a program can read the same three keys from every error.
    """
    response = jsonify({"error": {"code": code, "message": message, "field": field}})
    response.status_code = status
    return response


def _wants_json() -> bool:
    return request.path.startswith("/api/")


def register_error_handlers(app: Flask) -> None:
    """Install the handlers that turn exceptions into error answers."""

    @app.errorhandler(ApiError)
    def api_error(err: ApiError):
        if not _wants_json():
            title = ERROR_TITLES.get(err.status)
            return render_template("error.html", title=title, message=err.message), err.status
        return error_response(err.status, err.code, err.message, err.field)

    @app.errorhandler(HTTPException)
    def http_error(err: HTTPException):
        if not _wants_json():
            return err
        status = err.code or 500
        response = error_response(
            status, HTTP_ERROR_CODES.get(status, "http_error"), err.description or err.name
        )
        # Keep the headers that tell a client what to do next: the methods a URL takes
        # (405, which HTTP requires) and when to come back (429, 503).
        original = err.get_response().headers
        for name in ("Allow", "Retry-After"):
            if original.get(name):
                response.headers[name] = original[name]
        return response

    @app.errorhandler(OperationalError)
    def database_down(err: OperationalError):
        log.warning("database unavailable: %s", err.orig)
        if isinstance(err.orig, QueryCanceled):  # WORDCRAWL_STATEMENT_TIMEOUT_MS ran out
            message = "the database took too long to answer; try again in a moment"
        else:
            message = "the database is not answering; try again in a moment"
        if _wants_json():
            return error_response(503, "unavailable", message)
        return render_template("error.html", message=message), 503
