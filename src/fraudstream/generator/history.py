"""Generate a period of transactions with fraud and labels, and write it as Parquet."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fraudstream.generator.config import SCENARIOS, GeneratorConfig
from fraudstream.generator.draft import US_PER_DAY, US_PER_S, Draft, to_table
from fraudstream.generator.genuine import genuine
from fraudstream.generator.labels import make_labels
from fraudstream.generator.scenarios import Context, Incident, fraud
from fraudstream.generator.world import World, build_world

TRANSACTIONS_FILE = "transactions.parquet"
LABELS_FILE = "labels.parquet"
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Generated:
    """One generated period.

    ``transactions``: the canonical contract, sorted by event time.
    ``labels``: the label contract, sorted by label time.
    ``scenario``: the ground truth per transaction row (None for genuine), kept
    out of the transaction table on purpose; it includes under-reported fraud.
    ``incidents``: what each scenario did, for inspection and tests.
    """

    transactions: pa.Table
    labels: pa.Table
    scenario: np.ndarray
    incidents: list[Incident]


def _streams(seed: int) -> dict[str, np.random.Generator]:
    """Independent random streams, so changing one knob does not reshuffle the rest."""
    names = ("world", "genuine", *SCENARIOS, "labels")
    children = np.random.SeedSequence(seed).spawn(len(names))
    return {
        n: np.random.Generator(np.random.PCG64(c)) for n, c in zip(names, children, strict=True)
    }


def fraud_targets(config: GeneratorConfig, genuine_count: int) -> dict[str, int]:
    """Fraud transactions per scenario so that fraud / all == fraud_rate (largest remainder)."""
    total = round(genuine_count * config.fraud_rate / (1.0 - config.fraud_rate))
    weights = config.normalised_weights()
    exact = {s: total * w for s, w in weights.items()}
    targets = {s: int(v) for s, v in exact.items()}
    rest = sorted(SCENARIOS, key=lambda s: exact[s] - targets[s], reverse=True)
    for s in rest[: total - sum(targets.values())]:
        targets[s] += 1
    return targets


def world_for(config: GeneratorConfig) -> World:
    """The world of ``config.seed`` (the same one ``generate`` builds)."""
    config.check()
    rng = _streams(config.seed)["world"]
    return build_world(rng, config.customers, config.merchants, config.tx_per_customer_per_day)


def generate(
    config: GeneratorConfig,
    world: World | None = None,
    first_id: int = 0,
    id_prefix: str | None = None,
    progress: Progress | None = None,
) -> Generated:
    """Simulate ``config.days`` from ``config.start``; deterministic for ``config.seed``.

    Pass ``world`` to continue an existing world (the live stream does, one
    period after another, with a different seed per period). Transaction ids are
    ``{id_prefix}-{n:010d}`` (prefix ``tx{seed}`` by default), numbered from ``first_id``.
    """
    config.check()
    note = progress or (lambda _step: None)
    rng = _streams(config.seed)
    if world is None:
        note("world")
        world = world_for(config)
    start_us = int(config.start.timestamp() * US_PER_S)
    note("genuine")
    g = genuine(rng["genuine"], world, start_us, config.days, config.account_verification_rate)
    parts, incidents = [g], []
    end_us = start_us + int(config.days * US_PER_DAY)
    for name, target in fraud_targets(config, len(g)).items():
        note(name)
        ctx = Context(rng[name], world, g, start_us, end_us)
        draft, made = fraud(ctx, name, target)
        parts.append(draft)
        incidents += made
    note("assemble")
    draft = Draft.concat(parts)
    draft = draft.take(np.argsort(draft.event_us, kind="stable"))
    table = to_table(draft, world, first_id, id_prefix or f"tx{config.seed}")
    labels = make_labels(
        rng["labels"], config.labels, table.select(["transaction_id", "merchant_id", "event_time"]),
        draft.event_us, draft.scenario,
    )  # fmt: skip
    names = np.array([None, *SCENARIOS], dtype=object)
    return Generated(table, labels, names[draft.scenario], incidents)


def write_history(data: Generated, out: Path) -> tuple[Path, Path]:
    """Write ``transactions.parquet`` and ``labels.parquet`` into ``out`` (created; files replaced).

    Two single files, not partitioned directories; row groups of 128k rows.
    """
    out.mkdir(parents=True, exist_ok=True)
    paths = (out / TRANSACTIONS_FILE, out / LABELS_FILE)
    for table, path in zip((data.transactions, data.labels), paths, strict=True):
        tmp = path.with_suffix(".parquet.tmp")
        pq.write_table(table, tmp, row_group_size=128_000, compression="zstd")
        tmp.replace(path)
    return paths
