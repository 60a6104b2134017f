"""The seeded, entity-based transaction generator with fraud scenarios and delayed labels."""

from fraudstream.generator.config import (
    DEFAULT_LABEL_REGIME,
    DEFAULT_WEIGHTS,
    LABEL_REGIMES,
    SCENARIOS,
    ConfigError,
    GeneratorConfig,
    LabelConfig,
    label_regime,
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
    "DEFAULT_LABEL_REGIME",
    "DEFAULT_WEIGHTS",
    "LABELS_FILE",
    "LABEL_REGIMES",
    "SCENARIOS",
    "TRANSACTIONS_FILE",
    "ConfigError",
    "Generated",
    "GeneratorConfig",
    "Incident",
    "LabelConfig",
    "generate",
    "label_regime",
    "world_for",
    "write_history",
]
