"""The canonical transaction and label contracts (JSON Schema is the source)."""

from fraudstream.schema.contract import (
    FieldSpec,
    arrow_schema,
    field_names,
    fields,
    json_schema,
    required_names,
    spark_schema,
)
from fraudstream.schema.model import (
    SCHEMA_VERSION,
    Label,
    Transaction,
    epoch_us,
    format_timestamp,
    from_epoch_us,
    parse_timestamp,
)

__all__ = [
    "SCHEMA_VERSION",
    "FieldSpec",
    "Label",
    "Transaction",
    "arrow_schema",
    "epoch_us",
    "field_names",
    "fields",
    "format_timestamp",
    "from_epoch_us",
    "json_schema",
    "parse_timestamp",
    "required_names",
    "spark_schema",
]
