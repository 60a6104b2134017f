"""Everything a running API worker holds: settings, database pool, online store, model, rules,
feeds.

One per worker process, built in the application's lifespan: every worker has its own
connections and its own model and rule set holders (which reload the champion and the
active rule set on their own).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field

from fraudstream.adapters.kafka import DeliveryError, Sender
from fraudstream.adapters.online_store import OnlineStore
from fraudstream.api.admission import Admission, Turns
from fraudstream.api.live import AlertFeed
from fraudstream.api.metrics import ApiMetrics
from fraudstream.api.model_holder import ModelHolder, RulesHolder
from fraudstream.api.queries import Database
from fraudstream.schema import Label
from fraudstream.settings import Settings
from fraudstream.topics import TRANSACTION_LABELS


@dataclass
class ApiRuntime:
    settings: Settings
    db: Database
    store: OnlineStore
    model: ModelHolder
    rules: RulesHolder
    feed: AlertFeed
    metrics: ApiMetrics
    admission: Admission
    turns: Turns = field(default_factory=Turns)
    _sender: Sender | None = None

    def publish_label(self, label: Label) -> None:
        """Send an analyst label to ``transaction_labels`` and wait for the acknowledgement.

        The stream's merchant-risk features and retraining read labels from there.
        Raises ``DeliveryError`` (a RuntimeError) when Kafka does not acknowledge within 10 s.
        """
        if self._sender is None:
            self._sender = Sender(self.settings.kafka, **{"linger.ms": 0})
        value = json.dumps(label.to_json_dict()).encode()
        self._sender.send(TRANSACTION_LABELS.name, label.transaction_id.encode(), value)
        self._sender.flush(10)

    async def close(self) -> None:
        await self.store.aclose()
        self.model.stop()
        self.rules.stop()
        self.feed.stop()
        if self._sender is not None:
            with contextlib.suppress(DeliveryError):
                self._sender.flush(5)
        self.store.close()
        self.db.close()
