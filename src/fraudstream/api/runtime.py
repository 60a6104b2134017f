"""Everything a running API worker holds: settings, database pool, online store, model, feeds.

One per worker process, built in the application's lifespan: every worker has its own
connections and its own model holder (which reloads the champion on its own).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fraudstream.adapters.online_store import OnlineStore
from fraudstream.api.admission import Admission
from fraudstream.api.live import AlertFeed
from fraudstream.api.metrics import ApiMetrics
from fraudstream.api.model_holder import ModelHolder
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
    feed: AlertFeed
    metrics: ApiMetrics
    admission: Admission
    _producer: Any = None

    def publish_label(self, label: Label) -> None:
        """Send an analyst label to ``transaction_labels`` and wait for the acknowledgement.

        The stream's merchant-risk features and retraining read labels from there.
        Raises RuntimeError when Kafka does not acknowledge within 10 s.
        """
        from confluent_kafka import Producer

        from fraudstream.adapters.kafka import producer_config

        if self._producer is None:
            self._producer = Producer(producer_config(self.settings.kafka, **{"linger.ms": 0}))
        failures: list[str] = []

        def on_delivery(err: Any, _msg: Any) -> None:
            if err is not None:
                failures.append(str(err))

        self._producer.produce(
            TRANSACTION_LABELS.name,
            key=label.transaction_id.encode(),
            value=json.dumps(label.to_json_dict()).encode(),
            on_delivery=on_delivery,
        )
        if self._producer.flush(10) or failures:
            raise RuntimeError(f"Kafka did not acknowledge the label: {failures or 'timeout'}")

    async def close(self) -> None:
        await self.store.aclose()
        self.model.stop()
        self.feed.stop()
        if self._producer is not None:
            self._producer.flush(5)
        self.store.close()
        self.db.close()
