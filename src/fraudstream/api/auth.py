"""Bearer-token auth: every endpoint but health and metrics needs a token.

The API returns card ids, amounts, locations and scores, so reads are authenticated
too. Two roles, one token each:

- ``analyst`` (``FRAUDSTREAM_API_READ_TOKEN``): reads, and ``POST /score``, which stores
  nothing;
- ``writer`` (``FRAUDSTREAM_API_TOKEN``): everything, including the verdicts that become
  labels and feed retraining.

Local mode generates both into ``<platform home>/credentials.json``; on Kubernetes they
come from a Secret. No token is 401; a token that is neither is 403, and so is the
analyst's token on a write endpoint. Tokens are compared in constant time.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Literal

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

from fraudstream.api.problems import ProblemError
from fraudstream.settings import ApiSettings

Role = Literal["analyst", "writer"]

_bearer = HTTPBearer(
    auto_error=False,
    description="The analyst's read-only token (FRAUDSTREAM_API_READ_TOKEN) or the writer's "
    "(FRAUDSTREAM_API_TOKEN); local mode keeps both in <platform home>/credentials.json.",
)


def _matches(given: str, expected: SecretStr | None) -> bool:
    return expected is not None and hmac.compare_digest(
        given.encode(), expected.get_secret_value().encode()
    )


def role_of(api: ApiSettings, token: str) -> Role | None:
    """The role a bearer token grants, or None when it is neither token."""
    if _matches(token, api.token):
        return "writer"
    if _matches(token, api.read_token):
        return "analyst"
    return None


def authorise(api: ApiSettings, token: str | None) -> Role:
    """The role a bearer token grants; ProblemError 401 without one, 403 for any other."""
    if not token:
        raise ProblemError(
            401,
            "Unauthorized",
            "this endpoint needs `Authorization: Bearer <token>`; the local tokens are in "
            "<platform home>/credentials.json (api_read_token: read-only, api_token: writer)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    role = role_of(api, token)
    if role is None:
        raise ProblemError(403, "Forbidden", "the bearer token is not valid for this API")
    return role


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization`` header's value, as FastAPI's ``HTTPBearer`` reads it."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


async def require_reader(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Role:
    """The caller's role; any valid token may read. FastAPI runs it before the handler and
    before the request's parameters and body are validated (in the event loop: a plain
    function would be sent to a thread for microseconds of work)."""
    api: ApiSettings = request.app.state.settings.api
    return authorise(api, credentials.credentials if credentials is not None else None)


async def require_writer(role: Annotated[Role, Depends(require_reader)]) -> Role:
    """The writer's token only: the analyst's read-only token is refused with 403."""
    if role != "writer":
        raise ProblemError(
            403,
            "Forbidden",
            "this endpoint changes data and needs the writer's token; the analyst's token "
            "is read-only",
        )
    return role


Reader = Annotated[Role, Depends(require_reader)]
Writer = Annotated[Role, Depends(require_writer)]
