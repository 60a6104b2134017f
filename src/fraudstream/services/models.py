"""The model's lifecycle in the registry: register a trained experiment, promote a version.

``adapters.registry`` is the MLflow and ``model_metadata`` client; this module decides what
a registered version carries (the training report, the lineage, the drift profile
``fraudstream monitor`` compares traffic with) and what a promotion does, in which order.
"""

from __future__ import annotations

import json
from typing import Any

from fraudstream.adapters import registry
from fraudstream.adapters.kafka import Sender
from fraudstream.features.catalogue import FEATURE_SET_VERSION
from fraudstream.model.events import alias_moved
from fraudstream.model.experiment import Experiment, scores_of
from fraudstream.monitoring.profile import PROFILE_ARTIFACT, build_profile
from fraudstream.settings import Settings


def register_experiment(
    settings: Settings,
    experiment: Experiment,
    git_sha: str,
    run_key: str | None = None,
    summary: dict[str, Any] | None = None,
) -> tuple[str, str]:
    """Log the experiment as an MLflow run and register its model as ``challenger``.

    Returns (run_id, version). ``summary`` is logged as ``report/train_summary.json`` so a
    keyed retry can print what the first attempt printed.
    """
    documents: dict[str, Any] = {
        "report/test_report.json": experiment.reports,
        "report/lineage.json": experiment.lineage,
    }
    if summary is not None:
        documents[registry.SUMMARY_ARTIFACT] = summary
    if experiment.train_features is not None:
        documents[PROFILE_ARTIFACT] = build_profile(
            experiment.train_features,
            scores_of(experiment.model, experiment.train_features),
            experiment.threshold,
        ).to_dict()
    run = registry.TrainingRun(
        model=experiment.model,
        model_kind=experiment.kind,
        threshold=experiment.threshold,
        params={**experiment.params, **experiment.lineage, "git_sha": git_sha},
        metrics=experiment.metrics,
        tags={"git_sha": git_sha},
        documents=documents,
        figures=experiment.figures,
    )
    return registry.log_training_run(settings, run, run_key)


def promote(
    settings: Settings, promotion: registry.Promotion, threshold: float, events_topic: str
) -> dict[str, Any]:
    """Move ``champion``, publish ``alias_moved`` (acks=all), then record the promotion.

    Order matters for retries with the same ``request_key``: the history row is
    written last, so a request that failed half way is redone whole (the alias
    move is idempotent; the event may then be delivered twice, which consumers
    tolerate), and a request that completed is found by ``registry.promotion_for_key``.
    Returns the published event.
    """
    name = settings.mlflow.model_name
    registry.set_champion(settings, promotion.version, promotion.reason)
    event = alias_moved(
        name,
        registry.CHAMPION,
        promotion.version,
        promotion.previous_version,
        FEATURE_SET_VERSION,
        threshold,
        promotion.reason,
    )
    sender = Sender(settings.kafka)
    sender.send(events_topic, name.encode(), json.dumps(event).encode())
    sender.flush(30.0)
    registry.record_promotion(settings, promotion, event["at"])
    return event
