"""One monitoring run: read a window, compare it with the champion's reference, store it.

Windows are in event time and half-open: the drift window is
``[window_end - window_hours, window_end)``; the quality window covers transactions old
enough for their labels to have arrived, ``[end - lag - days, end - lag)`` with
``lag = label_lag_days``, judged with the labels known at ``window_end``. The same
``window_end`` always reads the same rows, so a retried run rewrites identical results.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fraudstream.monitoring import store
from fraudstream.monitoring.window import Metric, Thresholds, window_metrics
from fraudstream.settings import Settings


@dataclass(frozen=True)
class MonitorRun:
    """What one window produced; ``breaches`` names the metrics over their threshold."""

    model_name: str
    model_version: str
    window_start: datetime
    window_end: datetime
    metrics: list[Metric]

    @property
    def breaches(self) -> list[str]:
        return [m.metric for m in self.metrics if m.breached]

    def summary(self) -> dict[str, Any]:
        """The one-line JSON summary of ``fraudstream monitor --json``."""
        return {
            "model_name": self.model_name,
            "model_version": self.model_version,
            "window_start": self.window_start.isoformat(),
            "window_end": self.window_end.isoformat(),
            "breached": bool(self.breaches),
            "breaches": self.breaches,
            "metrics": {m.metric: m.value for m in self.metrics},
        }


def monitor_window(
    settings: Settings,
    window_end: datetime,
    window_hours: float = 1.0,
    limits: Thresholds | None = None,
    label_lag_days: float = 7.0,
    performance_days: float = 7.0,
) -> MonitorRun:
    """Compute and store every metric of the window ending at ``window_end`` (tz-aware UTC)."""
    if window_end.tzinfo is None:
        raise ValueError("window_end must be timezone-aware (UTC)")
    limits = limits or Thresholds()
    version, profile = store.champion_profile(settings)
    start = window_end - timedelta(hours=window_hours)
    scored = store.read_scored(settings, start, window_end)
    mature_end = window_end - timedelta(days=label_lag_days)
    labelled = store.read_labelled(
        settings, mature_end - timedelta(days=performance_days), mature_end, window_end
    )
    metrics = window_metrics(profile, scored, labelled, limits)
    store.write_metrics(settings, version, start, window_end, metrics)
    return MonitorRun(settings.mlflow.model_name, version, start, window_end, metrics)
