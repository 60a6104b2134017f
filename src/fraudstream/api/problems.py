"""Errors as RFC 9457 ``application/problem+json``: a type, a title, a status, a detail.

Every error the API returns goes through here, including FastAPI's own request
validation errors and unexpected exceptions (which are logged, never leaked).
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from fraudstream.adapters.online_store import OnlineStoreError

PROBLEM_JSON = "application/problem+json"
_TYPE_BASE = "https://fraudstream.dev/problems/"
log = logging.getLogger("fraudstream.api")


class ProblemError(Exception):
    """An error to return as problem+json. ``kind`` becomes the ``type`` URI's last segment."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        kind: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail
        self.kind = kind or title.lower().replace(" ", "-")
        self.headers = headers or {}
        self.extra = extra


def problem_body(
    status: int, title: str, detail: str, instance: str, kind: str | None = None, **extra: Any
) -> dict[str, Any]:
    """The RFC 9457 object; ``kind`` defaults to the title in lower case with dashes."""
    return {
        "type": _TYPE_BASE + (kind or title.lower().replace(" ", "-")),
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
        **extra,
    }


def problem_response(request: Request, problem: ProblemError) -> Response:
    body = problem_body(
        problem.status,
        problem.title,
        problem.detail,
        request.url.path,
        problem.kind,
        **problem.extra,
    )
    return Response(
        orjson.dumps(body),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers=problem.headers,
    )


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into problem+json."""

    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ProblemError)
        return problem_response(request, exc)

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {"field": _field(tuple(e.get("loc", ()))), "message": e.get("msg", "")}
            for e in exc.errors()
        ]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        return problem_response(
            request,
            ProblemError(422, "Invalid request", detail or "the request is invalid", errors=errors),
        )

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "HTTP error")
        detail = str(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no endpoint at {request.url.path}; see /docs for the API"
        return problem_response(request, ProblemError(exc.status_code, title, detail))

    async def on_store(request: Request, exc: Exception) -> Response:
        # Redis restarting or failing over: the caller may retry (the client reconnects).
        return problem_response(
            request,
            ProblemError(503, "Unavailable", f"{exc}; retry shortly", headers={"Retry-After": "1"}),
        )

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(
            request,
            ProblemError(500, "Internal error", "the server failed; its log has the details"),
        )

    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(OnlineStoreError, on_store)
    app.add_exception_handler(Exception, on_unexpected)


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {
        "description": text,
        "content": {
            PROBLEM_JSON: {
                "example": {
                    "type": _TYPE_BASE + kind,
                    "title": title,
                    "status": code,
                    "detail": text,
                }
            }
        },
    }
    for code, kind, title, text in (
        (401, "unauthorized", "Unauthorized", "a bearer token is required"),
        (
            403,
            "forbidden",
            "Forbidden",
            "the bearer token is not valid, or is the analyst's read-only one on a write",
        ),
        (404, "not-found", "Not found", "no transaction tx-404"),
        (
            410,
            "beyond-retention",
            "Beyond retention",
            "alerts before 2026-02-24 were dropped: PostgreSQL keeps 35 days of alerts",
        ),
        (
            409,
            "version-taken",
            "Version taken",
            "rule set version '2026-03-01.1' is already stored with other rules; give the "
            "changed set a new version",
        ),
        (422, "invalid-request", "Invalid request", "amount: must be greater than 0"),
    )
}
PROBLEM_RESPONSES[503] = {
    "description": "`unavailable`: no champion model is loaded, or Kafka did not acknowledge; "
    "`overloaded`: the worker is at its in-flight limit (with `Retry-After`), call again later",
    "content": {
        PROBLEM_JSON: {
            "example": {
                "type": _TYPE_BASE + "overloaded",
                "title": "Overloaded",
                "status": 503,
                "detail": "this worker has 16 requests in flight, its limit; retry after 1 s "
                "or decide without this service",
            }
        }
    },
}
"""OpenAPI descriptions of the problem responses (``responses=`` on routes)."""
