"""Template macros that key a run by its data interval.

A scheduled run's cutoff is the end of its data interval; a manual run may name one with
the ``as_of`` parameter (ISO 8601), else it uses the moment it was triggered. Everything a
run writes (the training-set prefix, the promotion request key) derives from this cutoff,
so a retried or re-run task rewrites the same objects instead of adding new ones.

The macros read the interval from ``dag_run``, never from the context's ``data_interval_end``:
Airflow 3 leaves that name out of a run triggered without a logical date (the CLI's and the
API's default), and a template that names it fails there.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def _parse(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def cutoff(params: dict[str, Any], dag_run: Any) -> str:
    """The run's cutoff as ISO 8601 UTC (``2026-01-31T03:00:00+00:00``)."""
    chosen = params.get("as_of")
    if chosen:
        moment = _parse(str(chosen))
    else:
        moment = getattr(dag_run, "data_interval_end", None) or dag_run.run_after
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def cutoff_key(params: dict[str, Any], dag_run: Any) -> str:
    """The cutoff as a path- and key-safe token (``20260131T030000Z``)."""
    moment = _parse(cutoff(params, dag_run))
    return moment.strftime("%Y%m%dT%H%M%SZ")


MACROS = {"cutoff": cutoff, "cutoff_key": cutoff_key}
CUTOFF = "{{ cutoff(params, dag_run) }}"
CUTOFF_KEY = "{{ cutoff_key(params, dag_run) }}"
