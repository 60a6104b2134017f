"""Test-session wiring shared by every tier.

The tests run their own platform instance, isolated from a developer's
`make demo` platform: its own state directory and ports shifted by 1000.
Tiers come from the folder a test lives in (unit, integration, e2e, kind).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# FRAUDSTREAM_TEST_PORT_OFFSET lets test sessions run side by side (default 1000). Offsets
# must not differ by 4000 (MLflow 15000+o would meet S3 19000+o'): e.g. 1000, 2000, 3000, 8000.
_OFFSET = int(os.environ.get("FRAUDSTREAM_TEST_PORT_OFFSET", "1000"))
_SUFFIX = "" if _OFFSET == 1000 else f"-{_OFFSET}"

TEST_PLATFORM_ENV = {
    "FRAUDSTREAM_HOME": str(REPO / ".fraudstream" / f"test-platform{_SUFFIX}"),
    "FRAUDSTREAM_KAFKA_CLIENT_PORT": str(19092 + _OFFSET),
    "FRAUDSTREAM_KAFKA_CONTROLLER_PORT": str(19192 + _OFFSET),
    "FRAUDSTREAM_POSTGRES_PORT": str(15432 + _OFFSET),
    "FRAUDSTREAM_S3_PORT": str(19000 + _OFFSET),
    "FRAUDSTREAM_S3_CONSOLE_PORT": str(19001 + _OFFSET),
    "FRAUDSTREAM_MLFLOW_PORT": str(15000 + _OFFSET),
    "FRAUDSTREAM_REDIS_PORT": str(16379 + _OFFSET),
    "FRAUDSTREAM_API_PORT": str(18100 + _OFFSET),
    "FRAUDSTREAM_AIRFLOW_PORT": str(18180 + _OFFSET),
    "FRAUDSTREAM_SCORER_METRICS_PORT": str(18290 + _OFFSET),
    "FRAUDSTREAM_SPARK_UI_PORT": str(18340 + _OFFSET),
}

# Before any fixture builds settings: every test talks to the test instance.
for _key, _value in TEST_PLATFORM_ENV.items():
    os.environ[_key] = _value
for _key in list(os.environ):
    if _key.startswith("FRAUDSTREAM_") and _key not in TEST_PLATFORM_ENV and "_TEST_" not in _key:
        del os.environ[_key]

_TIERS = ("unit", "integration", "e2e", "kind")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).relative_to(REPO / "tests").parts
        if parts and parts[0] in _TIERS:
            item.add_marker(parts[0])
