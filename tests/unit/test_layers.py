"""The package's layers: adapters are plain clients of external systems.

``adapters/`` talks to Kafka, Postgres, S3, Redis, MLflow and Spark and knows nothing
of the use cases built on them: it imports nothing from ``scoring``, ``platform``,
``monitoring``, ``model``, ``rules``, ``services``, ``generator``, ``api`` or ``cli``.
``NOT_YET`` lists known exceptions to be moved up (none now); the test fails when another
module crosses the line, and when a listed one stops crossing it (so the list only shrinks).

``rules/`` sits on the floor of ``model/``: it may read ``schema``, ``features`` and ``model``,
and imports no adapter, scorer, service, API or CLI module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import fraudstream

ADAPTERS = Path(fraudstream.__file__).parent / "adapters"
RULES = ADAPTERS.parent / "rules"
ABOVE = ("scoring", "platform", "monitoring", "model", "rules", "services", "generator")
ABOVE += ("api", "cli")
ABOVE_RULES = ("adapters", "scoring", "platform", "monitoring", "services", "api", "cli")
NOT_YET: dict[str, set[str]] = {}


def _layers_imported(path: Path, above: tuple[str, ...] = ABOVE) -> set[str]:
    """``fraudstream.<layer>`` for every import of a layer in ``above``."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "fraudstream" and len(parts) > 1 and parts[1] in above:
                found.add(f"fraudstream.{parts[1]}")
    return found


def test_adapters_import_no_use_case() -> None:
    crossing = {p.name: layers for p in ADAPTERS.glob("*.py") if (layers := _layers_imported(p))}
    assert crossing == NOT_YET


def test_rules_import_nothing_above_the_model_floor() -> None:
    files = list(RULES.glob("*.py"))
    assert files
    crossing = {p.name: found for p in files if (found := _layers_imported(p, ABOVE_RULES))}
    assert crossing == {}
