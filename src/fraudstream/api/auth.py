"""Bearer-token auth for the write endpoints.

Reads are open (the API is meant to sit behind the bank's network controls and an
ingress with SSO); writes change labels that feed retraining, so they need the
token: generated per platform in local mode, from a Kubernetes Secret otherwise.
A missing token is 401, a wrong one 403; tokens are compared in constant time.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from fraudstream.api.problems import ProblemError

_bearer = HTTPBearer(auto_error=False, description="The API token (FRAUDSTREAM_API_TOKEN).")


def require_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The caller's identity for audit columns: ``token:<first 6 chars of its hash>``."""
    expected = request.app.state.runtime.settings.api.token
    if credentials is None or not credentials.credentials:
        raise ProblemError(
            401,
            "Unauthorized",
            "this endpoint needs `Authorization: Bearer <token>`; the local token is in "
            "<platform home>/credentials.json (api_token)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if expected is None or not hmac.compare_digest(
        credentials.credentials.encode(), expected.get_secret_value().encode()
    ):
        raise ProblemError(403, "Forbidden", "the bearer token is not valid for this API")
    return "token"


Writer = Annotated[str, Depends(require_token)]
