"""The CLI as a user meets it: help, readable errors, and `reset` asking first."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CLI = str(Path(sys.executable).parent / "fraudstream")


def _run(*args: str, home: Path, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "FRAUDSTREAM_HOME": str(home), **env},
    )


def test_help_lists_the_command_groups(tmp_path: Path) -> None:
    result = _run("--help", home=tmp_path)
    assert result.returncode == 0
    for group in ("platform", "topics", "db"):
        assert group in result.stdout


def test_a_bad_setting_is_one_readable_line_naming_the_variable(tmp_path: Path) -> None:
    result = _run("platform", "status", home=tmp_path, FRAUDSTREAM_POSTGRES_PORT="80")
    assert result.returncode == 1
    assert "error (settings): FRAUDSTREAM_POSTGRES_PORT" in result.stderr
    assert "Traceback" not in result.stderr


def _one_error_line(result: subprocess.CompletedProcess[str], start: str) -> None:
    """A non-zero exit, no traceback, and the failure on one line beginning with ``start``."""
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith(start), result.stderr


def test_a_bad_scorer_setting_stops_the_scorer_with_one_line(tmp_path: Path) -> None:
    result = _run("score", home=tmp_path, FRAUDSTREAM_SCORER_BUCKETS="0", COLUMNS="200")
    _one_error_line(result, "error (settings): FRAUDSTREAM_SCORER_BUCKETS: ")
    assert "(got '0')" in result.stderr


def test_a_bad_spark_or_airflow_setting_is_refused_by_every_command(tmp_path: Path) -> None:
    # Every program loads every system's settings once, at start: a typo is found at once.
    for variable, value in (("FRAUDSTREAM_SPARK_UI_PORT", "80"), ("FRAUDSTREAM_AIRFLOW_PORT", "x")):
        result = _run("platform", "status", home=tmp_path, COLUMNS="200", **{variable: value})
        _one_error_line(result, f"error (settings): {variable}: ")


def test_status_of_a_platform_never_started_says_stopped(tmp_path: Path) -> None:
    result = _run("platform", "status", "--json", home=tmp_path / "never")
    assert result.returncode == 1
    assert '"state": "stopped"' in result.stdout
    assert '"healthy": false' in result.stdout


def test_logs_of_an_unknown_service_name_the_real_ones(tmp_path: Path) -> None:
    result = _run("platform", "logs", "kafka", home=tmp_path)
    assert result.returncode == 2
    assert "kafka-1" in result.stderr
    assert "mlflow" in result.stderr


def test_reset_asks_first_and_keeps_state_when_refused(tmp_path: Path) -> None:
    home = tmp_path / "state"
    (home / "kafka-1").mkdir(parents=True)
    refused = _run("platform", "reset", home=home, stdin="n\n")
    assert refused.returncode != 0
    assert home.is_dir()
    accepted = _run("platform", "reset", "--yes", home=home)
    assert accepted.returncode == 0, accepted.stderr
    assert not home.exists()


def test_every_known_error_names_a_real_exception_class() -> None:
    """The error map names classes as strings (to import nothing heavy): they must exist."""
    import importlib

    from fraudstream.cli.errors import KNOWN

    for qualified in KNOWN:
        module_name, _, class_name = qualified.rpartition(".")
        module = importlib.import_module(
            "confluent_kafka" if module_name == "cimpl" else module_name
        )
        cls = getattr(module, class_name)
        assert issubclass(cls, Exception)
        assert f"{cls.__module__}.{cls.__qualname__}" == qualified


def test_the_cli_starts_without_importing_the_model_stack() -> None:
    probe = (
        "import sys, fraudstream.cli; "
        "print(sorted(m for m in ('mlflow', 'sklearn', 'xgboost', 'pyspark') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"


def test_serve_on_a_taken_port_is_one_line_naming_the_port_and_the_fix(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = _run("serve", "--port", port, "--workers", "2", home=tmp_path)
    assert result.returncode == 1
    assert f"error (serve): cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "FRAUDSTREAM_API_PORT" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_in_flight_limit_is_refused_naming_the_variable(tmp_path: Path) -> None:
    result = _run("serve", home=tmp_path, FRAUDSTREAM_API_MAX_IN_FLIGHT="0")
    assert result.returncode == 1
    assert "error (settings): FRAUDSTREAM_API_MAX_IN_FLIGHT" in result.stderr


def test_known_failures_are_mapped_by_the_one_table(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A command raises; run_guarded prints `error (label): message` and the hint from KNOWN and
    exits with the table's status (the monitoring DAG tells exit 2 from a breach)."""
    import typer

    from fraudstream.cli.errors import MONITORING_ERROR_EXIT_CODE, run_guarded
    from fraudstream.monitoring.store import MonitoringError
    from fraudstream.scoring.run import NoModelError

    app = typer.Typer()
    raised: list[Exception] = []

    @app.command()
    def fail() -> None:
        raise raised[0]

    monkeypatch.setattr(sys, "argv", ["fraudstream"])
    for error, label, code in (
        (NoModelError("no usable model at @champion"), "model registry", 1),
        (MonitoringError("no profile"), "monitoring", MONITORING_ERROR_EXIT_CODE),
    ):
        raised[:] = [error]
        assert run_guarded(app) == code
        err = capsys.readouterr().err
        assert f"error ({label}): {error}" in err
        assert "hint: " in err
    raised[:] = [RuntimeError("a bug")]  # not in the table: its traceback is shown
    with pytest.raises(RuntimeError, match="a bug"):
        run_guarded(app)


def test_one_parser_reads_every_command_line_time() -> None:
    from datetime import UTC, datetime

    import typer

    from fraudstream.cli.inputs import utc_time

    assert utc_time("2026-03-01", "--as-of") == datetime(2026, 3, 1, tzinfo=UTC)
    assert utc_time("2026-03-01T03:00:00Z", "--as-of") == datetime(2026, 3, 1, 3, tzinfo=UTC)
    # An offset is converted to UTC, not replaced by it.
    assert utc_time("2026-03-01T03:00:00+02:00", "--start") == datetime(2026, 3, 1, 1, tzinfo=UTC)
    with pytest.raises(typer.BadParameter, match="not an ISO date") as refused:
        utc_time("yesterday", "--window-end")
    assert refused.value.param_hint == "--window-end"
