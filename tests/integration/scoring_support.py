"""Shared setup of the scorer tests: a generated history, a small registered model, a scorer.

The model is a small XGBoost fitted in seconds on the history's offline features and
registered through the real registry adapter, so the scorer loads it from MLflow
exactly as it loads a trained one.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from xgboost import XGBClassifier

from fraudstream.adapters import registry
from fraudstream.adapters.kafka import create_scratch_topic
from fraudstream.adapters.postgres import connect
from fraudstream.features.catalogue import feature_names
from fraudstream.features.replay import attach_labels, build_features
from fraudstream.generator import GeneratorConfig, generate
from fraudstream.generator.config import LabelConfig
from fraudstream.model.experiment import Experiment
from fraudstream.model.split import TimeSplit
from fraudstream.services.models import register_experiment
from fraudstream.settings import Settings

CLI = str(Path(sys.executable).parent / "fraudstream")
START = datetime(2026, 3, 2, tzinfo=UTC)
PROMPT_LABELS = LabelConfig(analyst_share=0.9, analyst_median_days=0.3)
"""Analysts find most fraud within hours: labels reach later transactions of a short history."""


@dataclass(frozen=True)
class History:
    table: pa.Table
    transactions: pd.DataFrame
    labels: pd.DataFrame
    label_table: pa.Table


def history(
    seed: int,
    days: int = 4,
    customers: int = 120,
    merchants: int = 300,
    start: datetime = START,
    labels: LabelConfig | None = None,
) -> History:
    """A generated history; ``labels`` (default: the generator's) sets how late labels come."""
    # Ids unique per run: Postgres keeps earlier runs' rows (same seed, same ids otherwise).
    config = GeneratorConfig(
        seed=seed, start=start, days=days, customers=customers, merchants=merchants
    )
    if labels is not None:
        config = dataclasses.replace(config, labels=labels)
    data = generate(
        config,
        id_prefix=f"tx{seed}-{uuid.uuid4().hex[:8]}",
    )
    return History(
        data.transactions, data.transactions.to_pandas(), data.labels.to_pandas(), data.labels
    )


def register_model(settings: Settings, data: History, threshold: float, seed: int = 0) -> str:
    """Fit a small XGBoost on the offline features, register it and make it @champion."""
    features = attach_labels(build_features(data.transactions, data.labels), data.labels)
    x = features[feature_names()].to_numpy(np.float64)
    model = XGBClassifier(n_estimators=30, max_depth=4, n_jobs=1, random_state=seed)
    model.fit(x, features["is_fraud"].to_numpy())
    experiment = Experiment(
        model=model,
        kind="xgboost",
        threshold=threshold,
        params={"n_estimators": 30, "max_depth": 4, "seed": seed},
        split=TimeSplit(pd.Timestamp(START), 2, 1, 1),
        lineage={"source": "scorer tests"},
        reports={},
    )
    _, version = register_experiment(settings, experiment, git_sha="test")
    registry.set_champion(settings, version, "scorer test")
    return version


def scratch_topics(settings: Settings, prefix: str) -> dict[str, str]:
    """Fresh source, labels, predictions, alerts and dead-letter topics of one scorer run
    (``scorer_env(..., labels_topic=topics["labels"])`` points the scorer at its labels)."""
    return {
        kind: create_scratch_topic(settings.kafka, f"{prefix}-{kind}")
        for kind in ("source", "labels", "predictions", "alerts", "dead")
    }


def scorer_args(
    topics: dict[str, str], checkpoint: str, *extra: str, trigger_s: int = 1
) -> list[str]:
    """`fraudstream score` arguments for ``scratch_topics``, one micro-batch per ``trigger_s``.

    The card stage's state TTL runs on processing time, so an idle stream still runs a
    (cheap) micro-batch per trigger: a longer trigger spares the CPU of a long wait.
    """
    return [
        "--source",
        topics["source"],
        "--predictions",
        topics["predictions"],
        "--alerts",
        topics["alerts"],
        "--dead-letters",
        topics["dead"],
        "--checkpoint",
        checkpoint,
        "--trigger",
        str(trigger_s),
        *extra,
    ]


def scorer_env(model_name: str, labels_topic: str | None = None, **extra: str) -> dict[str, str]:
    env = {**os.environ, "FRAUDSTREAM_MLFLOW_MODEL_NAME": model_name, **extra}
    if labels_topic is not None:
        env["FRAUDSTREAM_SCORER_LABELS_TOPIC"] = labels_topic
    return env


class ScorerProcess:
    """`fraudstream score` as a child process (its own process group, so it can be killed)."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._out = log.open("ab")
        self.proc = subprocess.Popen(
            [CLI, "score", *args],
            env=env,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self) -> None:
        """SIGKILL the scorer and its Spark JVM (the whole process group): a crash."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)
        self._out.close()

    def wait(self, timeout: float) -> int:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        self._out.close()
        return code

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def wait_until(check: Callable[[], bool], timeout: float, what: str, scorer: Any = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if scorer is not None and not scorer.alive():
            raise AssertionError(f"the scorer exited while waiting for {what}:\n{scorer.output()}")
        time.sleep(1.0)
    tail = scorer.output()[-4000:] if scorer is not None else ""
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{tail}")


def scored_count(settings: Settings, ids: list[str]) -> int:
    with connect(settings.postgres) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM transactions_with_score WHERE transaction_id = ANY(%s)", (ids,)
        )
        return int(cur.fetchone()[0])
