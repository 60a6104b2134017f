"""`train --run-key`: which keys are accepted and which registered version a retry reuses.

The registry lookup itself runs against the real MLflow server in
tests/integration/test_retraining.py; here only the parts that need no server.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fraudstream.adapters.registry import KeyedVersion, check_run_key, pick_keyed

CLI = str(Path(sys.executable).parent / "fraudstream")


@pytest.mark.parametrize(
    "key",
    ["fraud_retrain/20260301T030000Z", "drift__20260301T030000Z", "a", "ops:manual-2026.03.01"],
)
def test_keys_of_the_dag_and_of_people_are_accepted(key: str) -> None:
    assert check_run_key(key) == key


@pytest.mark.parametrize(
    "key",
    ["", "fraud retrain", "it's", "x' OR tags.run_key != '", "/leading-slash", "k" * 201],
)
def test_keys_that_cannot_sit_in_a_search_filter_are_refused(key: str) -> None:
    with pytest.raises(ValueError, match="not a usable run key"):
        check_run_key(key)


def test_nothing_registered_under_the_key_means_train() -> None:
    assert pick_keyed([]) is None


def test_a_retry_reuses_the_version_already_challenger() -> None:
    first = KeyedVersion("4", "run-a", ())
    second = KeyedVersion("5", "run-b", ("challenger",))
    assert pick_keyed([first, second]) == second


def test_otherwise_the_first_registered_version_by_number() -> None:
    found = [KeyedVersion("10", "run-b", ()), KeyedVersion("9", "run-a", ("champion",))]
    assert pick_keyed(found) == found[1]


def _train(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, "train", "--transactions", str(home / "none.parquet"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "FRAUDSTREAM_HOME": str(home)},
    )


def test_a_malformed_key_is_a_usage_error_before_anything_is_read(tmp_path: Path) -> None:
    result = _train("--run-key", "fraud retrain", home=tmp_path)
    assert result.returncode == 2
    said = " ".join(result.stderr.split())
    assert "--run-key" in said
    assert "not a usable run key" in said


def test_a_key_without_registration_is_a_usage_error(tmp_path: Path) -> None:
    result = _train("--run-key", "k1", "--no-register", home=tmp_path)
    assert result.returncode == 2
    assert "drop --no-register or --run-key" in " ".join(result.stderr.split())
