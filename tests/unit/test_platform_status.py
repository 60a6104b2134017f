"""`fraudstream platform status`'s table on an 80-column terminal: service names and URLs whole,
the restarts column only once a service restarted."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from fraudstream.cli.platform import _table
from fraudstream.platform.runtime import ServiceStatus

NAMES = ("airflow-api-server", "airflow-dag-processor", "postgres")
URL = "http://127.0.0.1:22180"


def _render(restarts: int) -> str:
    at = "2026-12-04T21:00:00.123456+00:00" if restarts else None
    rows = [
        ServiceStatus(name, "running", 4242, [22180], True, "", URL, "svc.log", restarts, at)
        for name in NAMES
    ]
    console = Console(width=80, record=True, file=io.StringIO())
    console.print(_table(rows))
    return console.export_text()


@pytest.mark.parametrize("restarts", [0, 2])
def test_names_and_urls_are_never_cut(restarts: int) -> None:
    shown = _render(restarts)
    assert all(name in shown for name in NAMES)
    assert "…" not in shown  # folded onto a second line if need be, never truncated
    assert ("restarted" in shown) == bool(restarts)
    if restarts:
        assert "2x, last" in shown
    else:
        assert shown.count(URL) == len(NAMES)
