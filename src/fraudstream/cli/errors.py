"""Turn the package's known failures into one readable line and an exit code."""

from __future__ import annotations

import typer
from confluent_kafka import KafkaException
from psycopg2 import OperationalError
from rich.console import Console

from fraudstream.adapters.postgres import MigrationError
from fraudstream.adapters.registry import RegistryError
from fraudstream.adapters.transaction_stream import DeliveryError
from fraudstream.generator import ConfigError
from fraudstream.platform.runtime import ServiceError
from fraudstream.platform.toolchain import ToolchainError
from fraudstream.schema.tables import TableContractError
from fraudstream.settings import SettingsError

stderr = Console(stderr=True)

KNOWN = {
    SettingsError: ("settings", "fix the environment variable named above"),
    ToolchainError: ("prerequisite", "install what is named above, then run the command again"),
    ServiceError: ("service", "see the log named above; `fraudstream platform logs SERVICE`"),
    MigrationError: ("database schema", "restore the migration file or add a new one"),
    KafkaException: ("kafka", "is the platform up? `fraudstream platform status`"),
    OperationalError: ("postgres", "is the platform up? `fraudstream platform status`"),
    TableContractError: ("input", "fix the file or its columns as named above"),
    ConfigError: ("generator", "change the option named above"),
    DeliveryError: ("kafka", "is the platform up? `fraudstream platform status`"),
    RegistryError: (
        "model registry",
        "check the alias or version, or train one with `fraudstream train`",
    ),
}


def run_guarded(app: typer.Typer) -> int:
    """Run the CLI; a known failure prints `error (kind): message` and a hint, exit 1."""
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
        for kind, (label, hint) in KNOWN.items():
            if isinstance(exc, kind):
                stderr.print(f"[bold red]error ({label}):[/] {exc}", highlight=False)
                stderr.print(f"[dim]hint: {hint}[/]")
                return 1
        raise
    return result if isinstance(result, int) else 0
