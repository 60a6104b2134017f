"""Test-session wiring shared by every tier.

The tests run their own platform instance, isolated from a developer's
`make demo` platform: its own state directory and ports shifted by 1000.
Tiers come from the folder a test lives in (unit, integration, e2e).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

TEST_PLATFORM_ENV = {
    "FRAUDSTREAM_HOME": str(REPO / ".fraudstream" / "test-platform"),
    "FRAUDSTREAM_KAFKA_CLIENT_PORT": "20092",
    "FRAUDSTREAM_KAFKA_CONTROLLER_PORT": "20192",
    "FRAUDSTREAM_POSTGRES_PORT": "16432",
    "FRAUDSTREAM_S3_PORT": "20000",
    "FRAUDSTREAM_S3_CONSOLE_PORT": "20001",
    "FRAUDSTREAM_MLFLOW_PORT": "16000",
}

# Before any fixture builds settings: every test talks to the test instance.
for _key, _value in TEST_PLATFORM_ENV.items():
    os.environ[_key] = _value
for _key in list(os.environ):
    if _key.startswith("FRAUDSTREAM_") and _key not in TEST_PLATFORM_ENV:
        del os.environ[_key]

_TIERS = ("unit", "integration", "e2e")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).relative_to(REPO / "tests").parts
        if parts and parts[0] in _TIERS:
            item.add_marker(parts[0])
