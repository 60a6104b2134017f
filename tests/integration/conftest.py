"""Fixtures for tests against the real embedded platform.

The platform is started once per test session with the package's own CLI (so its
processes are detached from pytest exactly as in real use) and stopped at the
end unless FRAUDSTREAM_TEST_KEEP_PLATFORM=1. It starts what the collected tests need: a
module declares its services with ``pytestmark = pytest.mark.services("kafka", ...)`` (the
names of `platform up --only`); a module that declares none needs every service. Each test
gets unique names: its own topic, consumer group, database or object prefix.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from fraudstream.adapters.kafka import create_scratch_topic, delete_topic
from fraudstream.adapters.postgres import migrate, scratch_database
from fraudstream.platform.runtime import SERVICES, EmbeddedPlatform, needed
from fraudstream.settings import Settings, load_settings

CLI = [str(Path(sys.executable).parent / "fraudstream")]


@contextmanager
def scratch_env(settings: Settings, **env: str) -> Iterator[Settings]:
    """A migrated scratch database of the caller's own, plus ``env``, seen by this process and
    the CLI it starts (FRAUDSTREAM_* variables); yields the settings they make. Both go at exit."""
    with (
        scratch_database(settings.postgres, "test") as database,
        pytest.MonkeyPatch.context() as mp,
    ):
        mp.setenv("FRAUDSTREAM_POSTGRES_DATABASE", database.database)
        for name, value in env.items():
            mp.setenv(name, value)
        migrate(database)
        yield load_settings()


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run the fraudstream CLI as a user would; fail with its output on error."""
    result = subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        pytest.fail(
            f"`fraudstream {' '.join(args)}` exited {result.returncode}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
    return result


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings()


def declared_services(item: pytest.Item) -> tuple[str, ...] | None:
    """What ``item`` declares with ``pytest.mark.services(...)``; None when it declares nothing."""
    marker = item.get_closest_marker("services")
    return None if marker is None else tuple(marker.args)


_STARTED = pytest.StashKey[frozenset[str] | None]()


@pytest.fixture(scope="session")
def platform(settings: Settings, request: pytest.FixtureRequest) -> Iterator[EmbeddedPlatform]:
    """The platform with the services of every collected test: `make test` starts all."""
    chosen = needed(declared_services(item) for item in request.session.items)
    request.config.stash[_STARTED] = chosen
    only = [] if chosen is None else ["--only", ",".join(sorted(chosen))]
    try:
        status = json.loads(run_cli("platform", "up", *only, "--json").stdout)
    except BaseException:
        # A half-started platform must not outlive the test session.
        subprocess.run([*CLI, "platform", "down"], capture_output=True, check=False)
        raise
    assert status["healthy"], status
    yield EmbeddedPlatform(settings)
    if os.environ.get("FRAUDSTREAM_TEST_KEEP_PLATFORM") != "1":
        run_cli("platform", "down")


@pytest.fixture(autouse=True)
def _needs_platform(platform: EmbeddedPlatform) -> None:
    """Every integration test runs against the started platform."""


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A failure in a session that started only some services names the ones it did not
    start: a test that uses one its module did not declare fails on a refused connection."""
    report = yield
    started = item.config.stash.get(_STARTED, None)
    if report.failed and started is not None:
        missing = [s for s in SERVICES if s not in started]
        report.sections.append(
            (
                "platform services",
                f"this session started only {', '.join(sorted(started))}; not started: "
                f"{', '.join(missing)}. A module declares every service it uses: "
                f"pytestmark = pytest.mark.services(...) (none declared: all of them).",
            )
        )
    return report


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def topic(settings: Settings) -> Iterator[str]:
    """A fresh topic shaped like the platform's (RF 3, min.insync.replicas 2)."""
    name = create_scratch_topic(settings.kafka, "test")
    yield name
    delete_topic(settings.kafka, name)


@pytest.fixture
def group_id() -> str:
    return unique("test-group")


@pytest.fixture(scope="session")
def api_world(settings: Settings, platform: EmbeddedPlatform) -> Any:
    """The API tests' world (``api_support.World``), built once a session. ``platform``: the
    world registers a model and writes rows, so the platform must be up first, also when an
    API module runs before any other."""
    from tests.integration.api_support import build_world

    return build_world(settings)


@pytest.fixture(scope="session")
def client(api_world: Any) -> Iterator[Any]:
    """The API in process (a ``TestClient``) as an analyst calls it: every request carries the
    read-only token."""
    from fastapi.testclient import TestClient

    from fraudstream.api.app import create_app
    from tests.integration.api_support import reader_headers

    with TestClient(create_app(api_world.settings), headers=reader_headers(api_world)) as c:
        yield c
