"""Errors as RFC 9457 ``application/problem+json``: a type, a title, a status, a detail.

Every error the API returns goes through here, including FastAPI's own request
validation errors and unexpected exceptions (which are logged, never leaked).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

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


def problem_response(request: Request, problem: ProblemError) -> JSONResponse:
    body: dict[str, Any] = {
        "type": _TYPE_BASE + problem.kind,
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
        "instance": request.url.path,
        **problem.extra,
    }
    return JSONResponse(
        body, status_code=problem.status, media_type=PROBLEM_JSON, headers=problem.headers
    )


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into problem+json."""

    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ProblemError)
        return problem_response(request, exc)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
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

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "HTTP error")
        detail = str(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no endpoint at {request.url.path}; see /docs for the API"
        return problem_response(request, ProblemError(exc.status_code, title, detail))

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(
            request,
            ProblemError(500, "Internal error", "the server failed; its log has the details"),
        )

    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
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
        (403, "forbidden", "Forbidden", "the bearer token is not valid"),
        (404, "not-found", "Not found", "no transaction tx-404"),
        (422, "invalid-request", "Invalid request", "amount: must be greater than 0"),
        (503, "unavailable", "Unavailable", "no champion model is loaded"),
    )
}
"""OpenAPI descriptions of the problem responses (``responses=`` on routes)."""
