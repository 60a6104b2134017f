"""adapters.retry: which errors are waited out, and the budget that bounds the wait."""

from __future__ import annotations

import socket
import threading
from typing import Any

import psycopg2
import psycopg2.errors
import pytest
import redis
from botocore.exceptions import ClientError, EndpointConnectionError

from fraudstream.adapters.online_store import OnlineStore, OnlineStoreError
from fraudstream.adapters.retry import OutageError, RetryPolicy, retry, transient
from fraudstream.adapters.scorer_metrics import ScorerMetrics
from fraudstream.scoring.run import (
    QuerySupervisor,
    ScorerGaveUpError,
    restart_wait_s,
    restartable,
)
from fraudstream.settings import RedisSettings, ScorerSettings


@pytest.mark.parametrize(
    "error",
    [
        psycopg2.OperationalError("server closed the connection unexpectedly"),
        psycopg2.InterfaceError("connection already closed"),
        redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused."),
        EndpointConnectionError(endpoint_url="http://127.0.0.1:9000"),
        ClientError({"Error": {"Code": "ServiceUnavailable"}}, "PutObject"),
        ConnectionRefusedError(111, "Connection refused"),
        RuntimeError("py4j ... psycopg2.OperationalError: connection to server at ... refused"),
    ],
)
def test_an_unreachable_dependency_is_transient(error: Exception) -> None:
    assert transient(error)


@pytest.mark.parametrize(
    "error",
    [
        psycopg2.OperationalError('FATAL:  password authentication failed for user "x"'),
        psycopg2.errors.UndefinedColumn('column "nope" does not exist'),
        redis.AuthenticationError("invalid username-password pair"),
        ClientError({"Error": {"Code": "InvalidAccessKeyId"}}, "PutObject"),
        ClientError({"Error": {"Code": "NoSuchBucket"}}, "PutObject"),
        ValueError("a bug"),
        OutageError("PostgreSQL: still failing after 60 s"),
        RuntimeError("Job aborted ... OutageError: Redis: still failing: Connection refused"),
    ],
)
def test_credentials_schema_bugs_and_spent_budgets_are_not(error: Exception) -> None:
    assert not transient(error)


def test_the_online_store_says_whether_redis_was_unreachable() -> None:
    with socket.socket() as sock:  # a port nothing listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = OnlineStore(RedisSettings(host="127.0.0.1", port=port, timeout_s=0.5))
    with pytest.raises(OnlineStoreError) as caught:
        store.ping()
    assert transient(caught.value)


def _clock() -> tuple[list[float], object, object]:
    now = [0.0]

    def sleep(s: float) -> None:
        now[0] += s

    return now, sleep, lambda: now[0]


def test_retry_waits_out_a_transient_failure_and_returns_the_answer() -> None:
    now, sleep, clock = _clock()
    failures = [ConnectionRefusedError(), ConnectionRefusedError()]
    dropped: list[BaseException] = []

    def call() -> str:
        if failures:
            raise failures.pop()
        return "ok"

    got = retry(call, RetryPolicy(budget_s=60), "x", dropped.append, sleep, clock)  # type: ignore[arg-type]
    assert got == "ok"
    assert len(dropped) == 2
    assert 0 < now[0] <= 0.5 + 1.0


def test_retry_gives_up_within_its_budget_and_names_the_dependency() -> None:
    now, sleep, clock = _clock()
    attempts = []

    def call() -> None:
        attempts.append(1)
        raise ConnectionRefusedError(111, "Connection refused")

    with pytest.raises(OutageError, match=r"PostgreSQL at db:5432.*Connection refused"):
        retry(call, RetryPolicy(budget_s=30, max_s=4), "PostgreSQL at db:5432", None, sleep, clock)  # type: ignore[arg-type]
    assert now[0] <= 30
    assert len(attempts) > 5


def test_a_permanent_error_is_raised_at_once() -> None:
    attempts = []

    def call() -> None:
        attempts.append(1)
        raise psycopg2.OperationalError('FATAL:  password authentication failed for user "x"')

    with pytest.raises(psycopg2.OperationalError, match="password"):
        retry(call, RetryPolicy(budget_s=60), "x", sleep=lambda _: None)
    assert attempts == [1]


def test_backoff_doubles_up_to_its_cap_with_jitter_below_it() -> None:
    policy = RetryPolicy(first_s=0.5, max_s=8)
    assert [policy.wait_s(n, lambda: 1.0) for n in range(1, 7)] == [0.5, 1, 2, 4, 8, 8]
    assert policy.wait_s(3, lambda: 0.5) == 1.0
    assert [restart_wait_s(n, 60, lambda: 1.0) for n in (1, 2, 7, 8)] == [1, 2, 60, 60]
    assert restart_wait_s(4, 60, lambda: 0.0) == 4


def test_a_query_is_restarted_unless_its_error_cannot_heal() -> None:
    assert restartable("py4j: psycopg2.OperationalError: connection refused")
    assert restartable("OutageError: MinIO: still failing after 60 s")
    assert restartable("java.lang.IllegalStateException: something new")
    assert not restartable('FATAL:  password authentication failed for user "fraud"')
    assert not restartable("IncompatibleModelError: feature set v3")


class _Query:
    def __init__(self, error: str | None) -> None:
        self.error = error

    def exception(self) -> str | None:
        return self.error


class _NoWait(threading.Event):
    def wait(self, timeout: float | None = None) -> bool:
        return self.is_set()


def _supervisor(outcomes: list[Any], max_restarts: int = 3) -> QuerySupervisor:
    def start() -> _Query:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return _Query(outcome)

    return QuerySupervisor(
        start=start,
        watch=lambda _q: None,
        finished_batches=lambda: 0,
        scorer=ScorerSettings(max_restarts=max_restarts),
        metrics=ScorerMetrics(),
        stop=_NoWait(),
    )


def test_a_failed_query_is_started_again_and_each_restart_counted() -> None:
    supervisor = _supervisor(
        [
            "psycopg2.OperationalError: connection refused",
            RuntimeError("Unable to execute HTTP request: Connection refused"),  # a failed start
            None,  # stopped normally
        ]
    )
    supervisor.run()
    assert supervisor.restarts == 2
    assert supervisor.metrics.restarts._value.get() == 2


def test_the_supervisor_gives_up_after_its_limit_or_on_a_permanent_error() -> None:
    with pytest.raises(ScorerGaveUpError, match="3 times in a row"):
        _supervisor(["timed out"] * 5, max_restarts=2).run()
    with pytest.raises(ScorerGaveUpError, match="not transient"):
        _supervisor(['FATAL: password authentication failed for user "x"']).run()
