"""The text the scorer's Postgres sink loads: COPY lines and the features column."""

from __future__ import annotations

import json
import math
import struct
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import numpy as np

from fraudstream.adapters.postgres import copy_text, copy_text_rows
from fraudstream.features.catalogue import feature_names
from fraudstream.scoring.batch import ScoredBatch


def _reference(rows: list[tuple[Any, ...]]) -> str:
    """COPY's text format one value at a time: what the column-wise formatting must equal."""
    return "".join("\t".join(map(copy_text, row)) + "\n" for row in rows)


def test_copy_lines_equal_the_value_by_value_format() -> None:
    when = datetime(2026, 3, 2, 10, 15, 30, 123456, tzinfo=UTC)
    rows = [
        ("t1", "plain", 12.5, 3, True, when, None, "x"),
        ("t2", "tab\there", -0.0, 0, False, when + timedelta(days=1), 1.5, None),
        ("t3", "back\\slash\nnew\rline", 1e-300, -7, True, when, math.nan, "y"),
        ("t4", "", float("inf"), 10**20, False, when, 2.0, "z"),
    ]
    text = copy_text_rows(rows)
    assert text == _reference(rows)
    lines = text.split("\n")
    assert lines[1].split("\t")[1] == "tab\\there"
    assert lines[2].split("\t")[1] == "back\\\\slash\\nnew\\rline"
    assert lines[0].split("\t")[6] == "\\N"
    assert copy_text_rows([]) == ""


def test_a_tuple_is_a_quoted_text_array() -> None:
    rows = [("t1", ("burst", "block")), ("t2", None), ("t3", ('say "hi"', "back\\slash", None))]
    text = copy_text_rows(rows)
    assert text == _reference(rows)
    lines = text.split("\n")
    assert lines[0] == 't1\t{"burst","block"}'
    assert lines[1] == "t2\t\\N"
    # Array quoting first (\" and \\), then COPY's escaping doubles every backslash.
    assert lines[2] == 't3\t{"say \\\\"hi\\\\"","back\\\\\\\\slash",NULL}'


def test_copy_lines_of_a_string_holding_nul_keep_the_row_count() -> None:
    # Postgres refuses NUL in text; the formatting must not shift other rows' values.
    rows = [("a\x00b", 1), ("c", 2)]
    assert copy_text_rows(rows) == _reference(rows)


def test_features_json_gives_back_every_value_bit_for_bit() -> None:
    rng = np.random.default_rng(3)
    matrix = rng.normal(size=(40, len(feature_names()))) * 10.0 ** rng.integers(-8, 8, (40, 1))
    matrix[::3, 4] = np.nan
    matrix[1, :] = np.nan
    matrix[2, 0] = -0.0
    batch = ScoredBatch(
        rows=cast(Any, [None] * 40),
        features=matrix,
        late=[False] * 40,
        champion=cast(Any, None),
        scores=cast(Any, None),
        shadow=None,
        shadow_scores=None,
        scored_at=datetime(2026, 3, 2, tzinfo=UTC),
    )
    texts = [batch.features_json(i) for i in range(40)]
    for i, text in enumerate(texts):
        expected = {
            n: (None if math.isnan(v) else v)
            for n, v in zip(feature_names(), matrix[i].tolist(), strict=True)
        }
        parsed = json.loads(text)  # the standard parser, as Postgres and consumers read it
        assert list(parsed) == list(expected), "every feature, in catalogue order"
        for name, value in expected.items():
            got = parsed[name]
            if value is None:
                assert got is None, name
            else:  # the same double, sign of zero included
                assert struct.pack("<d", float(got)) == struct.pack("<d", value), name
    assert json.loads(texts[1]) == dict.fromkeys(feature_names())
