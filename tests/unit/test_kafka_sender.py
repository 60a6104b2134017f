"""adapters.kafka.Sender against a port where no broker listens: an unacknowledged record is
reported by the flush after it, once, so a long-lived sender (the API's) is not stuck on it."""

from __future__ import annotations

import socket

import pytest

from fraudstream.adapters.kafka import DeliveryError, Sender
from fraudstream.settings import KafkaSettings


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_failed_record_is_reported_by_the_next_flush_only() -> None:
    kafka = KafkaSettings(bootstrap_servers=f"127.0.0.1:{_closed_port()}")
    sender = Sender(
        kafka, **{"delivery.timeout.ms": 1500, "linger.ms": 0, "request.timeout.ms": 1000}
    )
    sender.send("nowhere", b"k", b"v")
    with pytest.raises(DeliveryError, match="1 record\\(s\\) were not acknowledged"):
        sender.flush(30)
    sender.flush(5)  # nothing sent since: nothing to report
    assert (sender.acked, sender.failed) == (0, 0)


def test_a_sender_that_never_sent_opens_nothing_and_flushes_at_once() -> None:
    sender = Sender(KafkaSettings(bootstrap_servers=f"127.0.0.1:{_closed_port()}"))
    sender.flush(0.1)
    assert sender.acked == 0
