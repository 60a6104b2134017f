"""Every endpoint but health and metrics needs a bearer token; writes need the writer's.

The cases come from the application's route table, so a route added later is checked
without anyone listing it here: it must refuse a request without a token (401) and a
token that is not the API's (403), and, unless it is one of the reads below, refuse the
analyst's read-only token (403). Authentication runs before the handler and before the
request is validated, so no platform is needed: with no service behind it, a request
that passed authentication fails later (500, or 422 for a missing body), which is how
the tests see that it passed. That an accepted token really returns data is checked
against the platform in tests/integration/test_api_workers.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from fraudstream.api.app import create_app
from fraudstream.settings import Settings, load_settings

OPEN = {("GET", "/health/live"), ("GET", "/health/ready"), ("GET", "/metrics")}
"""The only endpoints without a token: probes and the Prometheus scrape."""

READS_BY_POST = {("POST", "/score")}
"""POST endpoints the analyst may call: they compute and store nothing."""

PAGES = {"/", "/dashboard", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
"""Routes that are not API endpoints: the dashboard's files (it sends the token from the
browser), the API's description and the pages showing it. None holds data."""


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FRAUDSTREAM_HOME", str(tmp_path_factory.mktemp("home")))
        return load_settings()


@pytest.fixture(scope="module")
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture(scope="module")
def client(app: FastAPI) -> TestClient:
    # Not entered as a context manager: the lifespan (connections, the model) never runs.
    return TestClient(app, raise_server_exceptions=False)


def _endpoints(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path) of every API endpoint of the application, from its route table."""
    found, pages = [], set()
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute):
            found += [(method, str(context.path)) for method in route.methods]
        else:
            pages.add(str(context.path))
    assert pages == PAGES  # anything else would be an endpoint these tests do not see
    assert len(found) >= 10, found  # the table was read (the tests cannot pass on nothing)
    return sorted(found)


def _url(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "tx-000042", path)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _tokens(settings: Settings) -> tuple[str, str]:
    assert settings.api.token is not None
    assert settings.api.read_token is not None
    return settings.api.token.get_secret_value(), settings.api.read_token.get_secret_value()


def _is_write(method: str, path: str) -> bool:
    return method != "GET" and (method, path) not in READS_BY_POST


def test_the_open_endpoints_are_exactly_health_and_metrics(
    app: FastAPI, client: TestClient
) -> None:
    endpoints = _endpoints(app)
    assert set(endpoints) >= OPEN
    for method, path in OPEN:
        assert client.request(method, path).status_code not in (401, 403), path


def test_every_other_endpoint_refuses_a_request_without_a_token(
    app: FastAPI, client: TestClient
) -> None:
    for method, path in _endpoints(app):
        if (method, path) in OPEN:
            continue
        response = client.request(method, _url(path))
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["www-authenticate"] == "Bearer"
        assert "Authorization: Bearer" in response.json()["detail"]


def test_every_other_endpoint_refuses_a_token_that_is_not_the_apis(
    app: FastAPI, client: TestClient
) -> None:
    for method, path in _endpoints(app):
        if (method, path) in OPEN:
            continue
        response = client.request(method, _url(path), headers=_bearer("not-a-token"))
        assert response.status_code == 403, (method, path, response.text)
        assert "not valid" in response.json()["detail"]


def test_every_write_refuses_the_analysts_token_and_admits_the_writers(
    app: FastAPI, client: TestClient, settings: Settings
) -> None:
    writer, analyst = _tokens(settings)
    writes = [(m, p) for m, p in _endpoints(app) if _is_write(m, p)]
    assert ("POST", "/alerts/{transaction_id}/verdict") in writes
    for method, path in writes:
        refused = client.request(method, _url(path), headers=_bearer(analyst))
        assert refused.status_code == 403, (method, path, refused.text)
        assert "writer's token" in refused.json()["detail"]
        admitted = client.request(method, _url(path), headers=_bearer(writer))
        assert admitted.status_code not in (401, 403), (method, path, admitted.text)


def test_every_read_admits_both_tokens(
    app: FastAPI, client: TestClient, settings: Settings
) -> None:
    reads = [(m, p) for m, p in _endpoints(app) if (m, p) not in OPEN and not _is_write(m, p)]
    assert ("GET", "/transactions/{transaction_id}") in reads
    assert ("POST", "/score") in reads
    for token in _tokens(settings):
        for method, path in reads:
            response = client.request(method, _url(path), headers=_bearer(token))
            assert response.status_code not in (401, 403), (method, path, response.text)


def test_the_openapi_document_asks_for_the_token_where_it_is_needed(app: FastAPI) -> None:
    doc = app.openapi()
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    for method, path in _endpoints(app):
        operation = doc["paths"][path][method.lower()]
        secured = operation.get("security") == [{"HTTPBearer": []}]
        assert secured == ((method, path) not in OPEN), (method, path)
        if secured:
            assert {"401", "403"} <= set(operation["responses"]), (method, path)


def test_the_tokens_come_from_the_local_credentials_not_from_git(settings: Settings) -> None:
    writer, analyst = _tokens(settings)
    assert writer != analyst
    assert len(analyst) >= 32
    credentials = Path(settings.platform.home) / "credentials.json"
    assert analyst in credentials.read_text()
    assert credentials.stat().st_mode & 0o777 == 0o600
