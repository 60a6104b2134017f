"""Which embedded services `platform up --only` and a test session start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fraudstream.platform.runtime import SERVICES, UnknownServiceError, closure, needed

CLI = str(Path(sys.executable).parent / "fraudstream")


def test_a_service_brings_what_it_needs() -> None:
    assert closure(["mlflow"]) == {"mlflow", "postgres", "minio"}
    assert closure(["airflow"]) == {"airflow", "postgres"}
    assert closure(["kafka"]) == {"kafka"}
    assert closure(["redis", "kafka"]) == {"redis", "kafka"}


def test_names_as_status_shows_them_select_their_group() -> None:
    assert closure(["kafka-2"]) == {"kafka"}
    assert closure(["airflow-scheduler"]) == {"airflow", "postgres"}
    assert closure([" postgres ", ""]) == {"postgres"}


def test_an_unknown_name_is_refused_with_the_valid_ones() -> None:
    with pytest.raises(UnknownServiceError, match="unknown service\\(s\\) kafak; the services"):
        closure(["kafak", "postgres"])
    with pytest.raises(UnknownServiceError) as caught:
        closure(["s3"])
    assert all(name in str(caught.value) for name in SERVICES)


def test_a_session_starts_the_union_and_everything_when_one_declares_nothing() -> None:
    assert needed([("postgres",), ("kafka", "postgres")]) == {"postgres", "kafka"}
    assert needed([("mlflow",), ("redis",)]) == {"mlflow", "postgres", "minio", "redis"}
    assert needed([("postgres",), None, ("kafka",)]) is None
    assert needed([]) == frozenset()


def test_up_only_with_a_bad_name_is_one_line_naming_the_services(tmp_path: Path) -> None:
    result = subprocess.run(
        [CLI, "platform", "up", "--only", "kafka,bogus"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "FRAUDSTREAM_HOME": str(tmp_path), "COLUMNS": "200"},
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error")]
    assert errors == [
        "error (usage): unknown service(s) bogus; the services are: "
        "postgres, minio, kafka, mlflow, redis, airflow"
    ], result.stderr
    assert not (tmp_path / "run").exists()  # nothing was started
