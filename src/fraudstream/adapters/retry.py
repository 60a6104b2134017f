"""Transient failures of the systems the adapters talk to, and the one way they are retried.

A dependency that restarts (PostgreSQL, MinIO, Redis, the MLflow server, a Kafka broker)
refuses connections or drops them for seconds. ``transient`` says whether an error is of
that kind; ``retry`` calls a function again after each such error, waiting a bounded
exponential backoff with full jitter, until it succeeds or the policy's budget (seconds
since the first failure) is spent, and then raises ``OutageError``. Any other error (bad
credentials, a missing table or column, a refused model) is raised at once: waiting
cannot fix it, and it is reported as it is.

Errors that crossed Spark's JVM arrive as text (a Py4J or streaming-query exception
whose message carries the Python traceback); ``transient`` reads their message for the
same markers. An ``OutageError`` is never transient: its budget is already spent.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class OutageError(RuntimeError):
    """A dependency stayed unreachable for the whole retry budget; names it and the cause."""


@dataclass(frozen=True)
class RetryPolicy:
    """How long and how often to retry one call.

    ``budget_s``: seconds from the first failure after which no new attempt starts
    (0: no retry). The waits grow ``first_s``, 2x, 4x... up to ``max_s``; each is drawn
    uniformly below that bound (full jitter), so workers that failed together do not
    come back together.
    """

    budget_s: float = 60.0
    first_s: float = 0.5
    max_s: float = 8.0

    def wait_s(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """The wait before retry number ``attempt`` (1 for the first retry)."""
        bound = min(self.max_s, self.first_s * 2.0 ** (attempt - 1))
        return max(0.05, bound * rand())


# Exception classes (by module-qualified name, so no client library is imported here)
# whose instances are never transient, even where they subclass a connection error.
_PERMANENT_TYPES = (
    "redis.exceptions.AuthenticationError",
    "redis.exceptions.AuthenticationWrongNumberOfArgsError",
    "redis.exceptions.ResponseError",
    "psycopg2.ProgrammingError",
    "psycopg2.DataError",
    "psycopg2.IntegrityError",
    "psycopg2.NotSupportedError",
)
_TRANSIENT_TYPES = (
    "builtins.ConnectionError",
    "builtins.TimeoutError",
    "builtins.BrokenPipeError",
    "psycopg2.OperationalError",
    "psycopg2.InterfaceError",
    "redis.exceptions.ConnectionError",
    "redis.exceptions.TimeoutError",
    "botocore.exceptions.EndpointConnectionError",
    "botocore.exceptions.ConnectionClosedError",
    "botocore.exceptions.ConnectTimeoutError",
    "botocore.exceptions.ReadTimeoutError",
    "urllib3.exceptions.HTTPError",
    "requests.exceptions.ConnectionError",
    "requests.exceptions.Timeout",
)
# Said by an error about credentials, permissions or the schema: never worth a retry.
_PERMANENT_TEXT = (
    "password authentication failed",
    "authentication failed",
    "invalidaccesskeyid",
    "signaturedoesnotmatch",
    "accessdenied",
    "access denied",
    "permission denied",
    '" does not exist',
    "nosuchbucket",
    "undefinedcolumn",
    "undefinedtable",
    "incompatiblemodelerror",
    "feature-set version",
)
# Said by an error (or a traceback carried through Spark) when a system was unreachable.
_TRANSIENT_TEXT = (
    "connection refused",
    "connection reset",
    "connection aborted",
    "connection already closed",
    "server closed the connection unexpectedly",
    "terminating connection due to administrator command",
    "the database system is starting up",
    "the database system is shutting down",
    "could not connect to server",
    "connection to server at",
    "broken pipe",
    "max retries exceeded",
    "read timed out",
    "timed out",
    "temporarily unavailable",
    "service unavailable",
    "serviceunavailable",
    "slowdown",
    "xminioservernotinitialized",
    "server not initialized",
    "endpointconnectionerror",
    "could not connect to the endpoint url",
    "psycopg2.operationalerror",
    "psycopg2.interfaceerror",
    "redis.exceptions.connectionerror",
    "redis.exceptions.timeouterror",
    "error while reading from",
    "error 111",
    "unable to execute http request",
    "sdkclientexception",
    "all brokers down",
    "_transport",
    "_msg_timed_out",
)
_BOTO_TRANSIENT_CODES = {
    "ServiceUnavailable", "SlowDown", "InternalError", "RequestTimeout", "503", "500",
    "XMinioServerNotInitialized", "XMinioStorageFull",
}  # fmt: skip


def _qualified(cls: type) -> str:
    module = cls.__module__
    # psycopg2's classes live in its C extension (``psycopg2.extensions``/``_psycopg``).
    if module.startswith("psycopg2"):
        module = "psycopg2"
    return f"{module}.{cls.__qualname__}"


def transient(exc: BaseException) -> bool:
    """True when ``exc`` looks like a dependency being briefly unreachable, not a fault of
    the request itself (credentials, schema, a missing object or model)."""
    if isinstance(exc, OutageError):
        return False
    explicit = getattr(exc, "transient", None)
    if isinstance(explicit, bool):  # an adapter's own error that knows its cause
        return explicit
    names = {_qualified(c) for c in type(exc).__mro__}
    text = f"{type(exc).__name__}: {exc}".lower()
    if "outageerror" in text:  # one carried through Spark: its budget is spent too
        return False
    if names & set(_PERMANENT_TYPES) or any(marker in text for marker in _PERMANENT_TEXT):
        return False
    response = getattr(exc, "response", None)
    if "botocore.exceptions.ClientError" in names and isinstance(response, dict):
        code = str(response.get("Error", {}).get("Code", ""))
        status = str(response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
        return code in _BOTO_TRANSIENT_CODES or status in ("500", "502", "503", "504")
    kafka_error = exc.args[0] if exc.args else None
    retriable = getattr(kafka_error, "retriable", None)
    if callable(retriable) and retriable():
        return True
    if names & set(_TRANSIENT_TYPES):
        return True
    return any(marker in text for marker in _TRANSIENT_TEXT)


def retry(
    call: Callable[[], T],
    policy: RetryPolicy,
    what: str,
    on_failure: Callable[[BaseException], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """``call()``, again after each transient failure, within ``policy.budget_s``.

    ``on_failure`` runs after every failed attempt (transient or not), before the wait:
    drop a broken connection there so the next attempt makes a new one. A permanent
    error is raised as it is; a transient one still failing when the budget is spent
    raises ``OutageError`` naming ``what`` and the last cause.
    """
    started: float | None = None
    attempt = 0
    while True:
        try:
            return call()
        except Exception as exc:
            if on_failure is not None:
                on_failure(exc)
            if not transient(exc):
                raise
            now = clock()
            started = now if started is None else started
            attempt += 1
            wait = policy.wait_s(attempt)
            if now - started + wait > policy.budget_s:
                raise OutageError(
                    f"{what}: still failing after {now - started:.0f} s and {attempt} attempts "
                    f"(retry budget {policy.budget_s:.0f} s): {type(exc).__name__}: {exc}"
                ) from exc
            log.warning(
                "%s failed (attempt %d, %s: %s); retrying in %.1f s",
                what, attempt, type(exc).__name__, str(exc).splitlines()[0][:200] if str(exc)
                else "", wait,
            )  # fmt: skip
            sleep(wait)
