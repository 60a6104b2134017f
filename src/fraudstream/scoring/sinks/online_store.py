"""Online-store sink: the card and merchant states a micro-batch updated, into Redis.

Runs as a job of its own once the batch's scoring tasks (and so the Postgres sink) are
done, so the API never reads a state that includes a transaction whose score is not
stored yet. Each partition's states go out pipelined
(``adapters.online_store.OnlineStore.put``); writing a state again leaves the store as
it was, so a put that failed on a lost connection is retried (redis-py reconnects) up to
the retry budget.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from fraudstream.adapters.online_store import OnlineStore
from fraudstream.adapters.retry import RetryPolicy, retry
from fraudstream.scoring.sinks.base import Partition, Sink, worker_client
from fraudstream.settings import RedisSettings


class OnlineStoreSink(Sink):
    name: ClassVar[str] = "online_store"
    reads: ClassVar[Literal["states"]] = "states"

    def __init__(self, settings: RedisSettings, retry: RetryPolicy | None = None) -> None:
        self.settings = settings
        self.retry = retry or RetryPolicy()

    def setup(self) -> None:
        key = ("redis", self.settings.host, self.settings.port, self.settings.db)
        self._store = worker_client(key, lambda: OnlineStore(self.settings))

    def write(self, part: Partition) -> None:
        rows = part.states
        if rows is None:
            return
        cards = rows["entity"] == "card"
        card_states = dict(
            zip(rows.loc[cards, "id"], map(bytes, rows.loc[cards, "state"]), strict=True)
        )
        merchant_states = dict(
            zip(rows.loc[~cards, "id"], map(bytes, rows.loc[~cards, "state"]), strict=True)
        )
        retry(
            lambda: self._store.put(card_states, merchant_states),
            self.retry,
            f"Redis at {self.settings.host}:{self.settings.port}",
        )
