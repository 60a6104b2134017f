"""The seeded, entity-based transaction generator with fraud scenarios and delayed labels."""

from fraudstream.generator.config import (
    DEFAULT_WEIGHTS,
    SCENARIOS,
    ConfigError,
    GeneratorConfig,
    LabelConfig,
)
from fraudstream.generator.history import (
    LABELS_FILE,
    TRANSACTIONS_FILE,
    Generated,
    generate,
    world_for,
    write_history,
)
from fraudstream.generator.scenarios import Incident

__all__ = [
    "DEFAULT_WEIGHTS",
    "LABELS_FILE",
    "SCENARIOS",
    "TRANSACTIONS_FILE",
    "ConfigError",
    "Generated",
    "GeneratorConfig",
    "Incident",
    "LabelConfig",
    "generate",
    "world_for",
    "write_history",
]
