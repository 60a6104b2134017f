"""Messages about the model that other components react to (topic ``model_events``).

The document shape is ``schema/model_event.schema.json``; building it here keeps
the field names in one place for the producer and its tests.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any

SCHEMA_FILE = "model_event.schema.json"


@cache
def model_event_schema() -> dict[str, Any]:
    """The JSON Schema of a ``model_events`` message (cached; treat as read-only)."""
    text = resources.files("fraudstream.schema").joinpath(SCHEMA_FILE).read_text("utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


def alias_moved(
    model_name: str,
    alias: str,
    version: str,
    previous_version: str | None,
    feature_set_version: str,
    threshold: float,
    reason: str,
    at: datetime | None = None,
) -> dict[str, Any]:
    """The ``alias_moved`` event; ``at`` defaults to now (the wall clock of the move)."""
    moment = (at or datetime.now(UTC)).astimezone(UTC)
    return {
        "event": "alias_moved",
        "model_name": model_name,
        "alias": alias,
        "version": str(version),
        "previous_version": None if previous_version is None else str(previous_version),
        "feature_set_version": feature_set_version,
        "threshold": float(threshold),
        "reason": reason,
        "at": moment.isoformat().replace("+00:00", "Z"),
    }
