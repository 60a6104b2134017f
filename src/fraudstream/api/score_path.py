"""``POST /score`` answered in plain ASGI, ahead of FastAPI's routing: the decision's hot path.

At authorisation rates the framework around a decision cost more than the decision:
route matching over every route, the dependency solver, request and response objects,
and the exception middleware. ``ScorePath`` sits behind admission and metrics and
answers ``POST /score`` itself: the bearer token (``auth.authorise``, the same roles and
problems), the body's bytes, ``score_transaction``, one response. Everything else
goes on to FastAPI, which still declares ``/score`` for the OpenAPI document and answers
it the same way should a request reach it.

Errors are the same problem+json the application's handlers send: 401/403 from the
token, 422 from the validator, 503 without a model or when the online store is
away (with ``Retry-After``), and 500 (logged, never leaked) for anything else.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

import orjson

from fraudstream.adapters.online_store import OnlineStoreError
from fraudstream.api.admission import ASGIApp, Receive, Scope, Send
from fraudstream.api.auth import authorise, bearer_token
from fraudstream.api.problems import PROBLEM_JSON, ProblemError, problem_body
from fraudstream.api.runtime import ApiRuntime
from fraudstream.features.events import from_record
from fraudstream.validation import Rejection, TransactionValidator

log = logging.getLogger("fraudstream.api")
PATH = "/score"
_validator = TransactionValidator()
_JSON_HEADER = (b"content-type", b"application/json")
_PROBLEM_HEADER = (b"content-type", PROBLEM_JSON.encode())


async def score_transaction(rt: ApiRuntime, body: bytes) -> bytes:
    """The decision on one canonical transaction's JSON, encoded (orjson, once).

    The body's bytes go to the stream's validator as they are (one parse, one
    validation), the states come from Redis without blocking the event loop, and the
    decision waits for its turn (``admission.Turns``).
    Raises ProblemError (422 invalid, 503 no model) and OnlineStoreError.
    """
    scorer = rt.model.scorer
    if scorer is None:
        raise ProblemError(503, "Unavailable", f"no model to score with: {rt.model.detail}")
    parsed = _validator.validate(body, datetime.now(UTC))
    if isinstance(parsed, Rejection):
        raise ProblemError(422, "Invalid transaction", parsed.message, reason=parsed.reason.value)
    start = time.perf_counter()
    txn = from_record(parsed)
    states = await rt.store.get_async(txn.card_id, txn.merchant_id)
    await rt.turns.take()  # one decision per pass of the loop (``admission.Turns``)
    decision = scorer.decide(txn, states, parsed, rt.rules.current)
    rt.metrics.score_duration.observe(time.perf_counter() - start)
    return orjson.dumps(decision, option=orjson.OPT_SERIALIZE_NUMPY)


class ScorePath:
    """Answers ``POST /score``; passes every other request on (pure ASGI)."""

    def __init__(self, app: ASGIApp, route: Any) -> None:
        """``route``: FastAPI's declaration of ``POST /score`` (the metrics label it)."""
        self.app, self.route = app, route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        scope["route"] = self.route  # as FastAPI's router would have set it
        state = scope["app"].state
        try:
            # The token first, as FastAPI runs the routes' auth before anything else.
            authorise(state.settings.api, bearer_token(_header(scope, b"authorization")))
            body = await _body(receive)
            if body is None:  # the client went away
                return
            answer = await score_transaction(state.runtime, body)
        except ProblemError as problem:
            await _problem(send, problem)
            return
        except OnlineStoreError as exc:
            # Redis restarting or failing over: the caller may retry (the client reconnects).
            retry = ProblemError(
                503, "Unavailable", f"{exc}; retry shortly", headers={"Retry-After": "1"}
            )
            await _problem(send, retry)
            return
        except Exception:
            log.exception("unhandled error on POST %s", PATH)
            await _problem(
                send,
                ProblemError(500, "Internal error", "the server failed; its log has the details"),
            )
            return
        await _respond(send, 200, [_JSON_HEADER], answer)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def _body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _problem(send: Send, problem: ProblemError) -> None:
    body = orjson.dumps(
        problem_body(
            problem.status, problem.title, problem.detail, PATH, problem.kind, **problem.extra
        )
    )
    headers = [_PROBLEM_HEADER]
    headers += [(k.lower().encode(), v.encode("latin-1")) for k, v in problem.headers.items()]
    await _respond(send, problem.status, headers, body)


async def _respond(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
