"""Turn the package's known failures into one readable line and an exit code.

This is the one place a command's failure becomes a message: commands raise, and
``run_guarded`` looks the exception's class up in ``KNOWN`` (no command catches a known
error to print it itself).
"""

from __future__ import annotations

from typing import NamedTuple

import typer
from rich.console import Console

stderr = Console(stderr=True)


class Known(NamedTuple):
    """How a known failure is shown: ``error (label): message``, a hint, the exit status."""

    label: str
    hint: str
    exit_code: int = 1


MONITORING_ERROR_EXIT_CODE = 2
"""Exit status of a failed monitoring run: the monitoring DAG tells it from a breach (0) and
from no breach (99, ``monitor-gate``)."""

# Known failures by class, as "module.Class" so that naming them imports nothing heavy:
# the CLI must start fast even though the model stack takes seconds to import. A tuple
# of two is a failure with exit status 1.
KNOWN: dict[str, tuple[str, str] | Known] = {
    "fraudstream.settings.SettingsError": ("settings", "fix the environment variable named above"),
    "fraudstream.platform.toolchain.ToolchainError": (
        "prerequisite",
        "install what is named above, then run the command again",
    ),
    "fraudstream.platform.runtime.ServiceError": (
        "service",
        "see the log named above; `fraudstream platform logs SERVICE`",
    ),
    "fraudstream.platform.runtime.UnknownServiceError": Known(
        "usage", "name services as `fraudstream platform status` shows them", 2
    ),
    "fraudstream.adapters.partitions.SchemaBehindError": (
        "database schema",
        "run `fraudstream db migrate` (or `fraudstream platform up`), then again",
    ),
    "fraudstream.adapters.postgres.MigrationError": (
        "database schema",
        "restore the migration file or add a new one",
    ),
    "cimpl.KafkaException": ("kafka", "is the platform up? `fraudstream platform status`"),
    "psycopg2.OperationalError": ("postgres", "is the platform up? `fraudstream platform status`"),
    "fraudstream.schema.tables.TableContractError": (
        "input",
        "fix the file or its columns as named above",
    ),
    "fraudstream.screening.RowPolicyError": (
        "row policy",
        "fix or remove the rows named above, or drop --strict to exclude them",
    ),
    "fraudstream.generator.config.ConfigError": ("generator", "change the option named above"),
    "fraudstream.adapters.kafka.DeliveryError": (
        "kafka",
        "is the platform up? `fraudstream platform status`",
    ),
    "fraudstream.demo.DemoError": (
        "demo",
        "read the log named above; `make status` shows the platform",
    ),
    "fraudstream.adapters.registry.RegistryError": (
        "model registry",
        "check the alias or version, or train one with `fraudstream train`",
    ),
    "fraudstream.adapters.online_store.OnlineStoreError": (
        "online store",
        "is the platform up? `fraudstream platform status` (Redis); "
        "`fraudstream score --no-online-store` scores without it",
    ),
    "fraudstream.scoring.sinks.base.SinkError": (
        "scorer output",
        "check the sink named above; the batch is retried from the checkpoint on restart",
    ),
    "fraudstream.api.server.ListenError": (
        "serve",
        "stop the program holding the port, or choose another with --port (FRAUDSTREAM_API_PORT)",
    ),
    "fraudstream.adapters.object_store.LocationError": ("location", "fix the URI named above"),
    "fraudstream.model.training_set.TrainingSetError": (
        "training set",
        "extract it again with `fraudstream extract-training-set`",
    ),
    "fraudstream.monitoring.store.MonitoringError": Known(
        "monitoring",
        "train and promote a champion (`fraudstream train`, `promote`): each run logs its profile",
        MONITORING_ERROR_EXIT_CODE,
    ),
    "fraudstream.scoring.run.NoModelError": (
        "model registry",
        "train a model with `fraudstream train`, then `fraudstream promote` it",
    ),
    "fraudstream.scoring.run.MissingTopicError": (
        "kafka",
        "create the topics with `fraudstream topics ensure`",
    ),
    "fraudstream.scoring.run.CheckpointBucketsError": (
        "checkpoint",
        "keep the checkpoint's bucket count, or start a new checkpoint",
    ),
    "fraudstream.scoring.run.ScorerGaveUpError": (
        "scorer",
        "see the failure above; the next start resumes from the checkpoint",
    ),
    "fraudstream.adapters.scorer_metrics.MetricsPortError": (
        "metrics",
        "stop the other scorer, or set FRAUDSTREAM_SCORER_METRICS_PORT to a free port",
    ),
    "fraudstream.rules.ruleset.RuleSetError": (
        "rules",
        "fix the rule named above (docs/rules.md); `fraudstream rules check FILE` checks a file",
    ),
    "fraudstream.adapters.rule_sets.VersionTakenError": (
        "rules",
        "give the changed rule set a new version; `fraudstream rules active` lists the used ones",
    ),
    "fraudstream.rules.decision.RuleInputError": (
        "rules",
        "the rules read a column the data lacks: add it, or change the rule",
    ),
    "fraudstream.features.codec.StateDecodeError": (
        "feature state",
        "the stored state is from another feature-set version: let the scorer rebuild it",
    ),
}


def _known(exc: BaseException) -> Known | None:
    for cls in type(exc).__mro__:
        found = KNOWN.get(f"{cls.__module__}.{cls.__qualname__}")
        if found:
            return Known(*found)
    return None


def run_guarded(app: typer.Typer) -> int:
    """Run the CLI; a known failure prints `error (kind): message` and a hint, and exits
    with its status (1 unless ``KNOWN`` says otherwise)."""
    try:
        result = app(standalone_mode=False)
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except typer.Abort:
        stderr.print("aborted")
        return 130
    except Exception as exc:
        # Usage errors (bad option, bad parameter): typer ships its own copy of click,
        # so recognise them by behaviour rather than by class.
        show, code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if callable(show) and isinstance(code, int):
            show()
            return code
        known = _known(exc)
        if known is None:
            raise
        stderr.print(f"[bold red]error ({known.label}):[/] {exc}", highlight=False)
        stderr.print(f"[dim]hint: {known.hint}[/]")
        return known.exit_code
    return result if isinstance(result, int) else 0
