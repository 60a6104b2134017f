"""Online-store sink: the card and merchant states a micro-batch updated, into Redis.

Runs after the Postgres sink (the scorer's sinks run in order), so the API never reads
a state that includes a transaction whose score is not stored yet. Each partition's
states go out pipelined (``adapters.online_store.OnlineStore.put``); writing a state
again leaves the store as it was.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import pandas as pd

from fraudstream.adapters.online_store import OnlineStore
from fraudstream.scoring.sinks.base import MicroBatch, Sink, worker_client
from fraudstream.settings import RedisSettings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


class OnlineStoreSink(Sink):
    name: ClassVar[str] = "online_store"

    def __init__(self, settings: RedisSettings) -> None:
        self.settings = settings

    def frames(self, batch: MicroBatch) -> list[DataFrame]:
        return [] if batch.states is None else [batch.states]

    def setup(self) -> None:
        key = ("redis", self.settings.host, self.settings.port, self.settings.db)
        self._store = worker_client(key, lambda: OnlineStore(self.settings))

    def write(self, rows: pd.DataFrame) -> None:
        cards = rows["entity"] == "card"
        self._store.put(
            dict(zip(rows.loc[cards, "id"], map(bytes, rows.loc[cards, "state"]), strict=True)),
            dict(zip(rows.loc[~cards, "id"], map(bytes, rows.loc[~cards, "state"]), strict=True)),
        )
