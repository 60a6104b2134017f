"""Admission control: a bounded number of requests in flight per worker, the excess refused.

Past its capacity a server that queues every request answers none of them in time:
each waits behind all the others. A worker therefore admits at most ``limit``
requests at once (from the moment the application sees one until its answer is
sent) and answers any other at once with ``503`` problem+json and ``Retry-After``,
so that a caller falls back to its own rules instead of waiting out its budget.
The refusal is built before the first request and sent without routing, parsing or
touching a database: it costs microseconds.

Probes, metrics and the live alert stream are always admitted: a saturated worker
must still say so, be scraped, and keep the dashboards' subscriptions (which are
connections, not work).

Pure ASGI (no ``BaseHTTPMiddleware``, whose task and stream per request cost more
than the decision it guards). One instance per worker process; its counters are
read by ``/health/ready`` and the metrics.

A refusal is only as quick as the event loop that sends it, so admitted decisions
take ``Turns``: one per pass of the loop, with the sockets polled between two of them.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from fraudstream.api.problems import PROBLEM_JSON, problem_body

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Paths admitted whatever the load (prefixes).
ALWAYS_ADMITTED = ("/health/", "/metrics", "/alerts/stream")
RETRY_AFTER_S = 1


class Admission:
    """The in-flight count of one worker, its limit, and what was refused."""

    def __init__(self, limit: int, on_shed: Callable[[], None] = lambda: None) -> None:
        if limit < 1:
            raise ValueError(f"the in-flight limit must be at least 1, not {limit}")
        self.limit = limit
        self.in_flight = 0
        self.shed = 0
        self.on_shed = on_shed

    @property
    def saturated(self) -> bool:
        return self.in_flight >= self.limit

    def describe(self) -> str:
        """The saturation check of ``/health/ready``."""
        state = "saturated, refusing" if self.saturated else "ok"
        return f"{state}: {self.in_flight} of {self.limit} in flight, {self.shed} refused so far"


class AdmissionMiddleware:
    """Admits up to ``admission.limit`` requests at once; answers the rest with 503."""

    def __init__(self, app: ASGIApp, admission: Admission) -> None:
        self.app, self.admission = app, admission
        self._headers = [
            (b"content-type", PROBLEM_JSON.encode()),
            (b"retry-after", str(RETRY_AFTER_S).encode()),
            (b"cache-control", b"no-store"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        admission = self.admission
        if scope["type"] != "http" or scope["path"].startswith(ALWAYS_ADMITTED):
            await self.app(scope, receive, send)
            return
        if admission.in_flight >= admission.limit:
            admission.shed += 1
            admission.on_shed()
            await self._refuse(scope, send)
            return
        admission.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            admission.in_flight -= 1

    async def _refuse(self, scope: Scope, send: Send) -> None:
        body = orjson.dumps(
            problem_body(
                503,
                "Overloaded",
                f"this worker has {self.admission.limit} requests in flight, its limit; "
                f"retry after {RETRY_AFTER_S} s or decide without this service",
                scope["path"],
                kind="overloaded",
            )
        )
        headers = [*self._headers, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class Turns:
    """One decision per pass of the event loop, so that nothing waits behind a run of them.

    In each pass asyncio polls its sockets once, then runs every callback that is ready.
    When the online store answers several admitted requests at once, their decisions
    (a few hundred microseconds of CPU each) were all ready in one pass and ran back to
    back; a request that arrived meanwhile, even one to be refused at once, was read only
    after all of them. Measured on a worker with a core of its own at twice its capacity,
    the refusals' p99 was 7-8 ms with runs of up to 8 decisions (docs/api.md).

    ``take`` returns at once for the first decision of a pass; any other waits, in
    arrival order, and gets a later pass of its own. So between two decisions the loop
    reads, refuses or admits what came in, and a refusal waits for about one decision.
    Waiting costs no CPU: the worker does the same decisions, in a different order.
    One instance per worker (its event loop); a turn left held by a loop that stopped
    (an application served by one loop after another, as a test client does) is dropped.
    """

    def __init__(self) -> None:
        self._taken = False
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None

    async def take(self) -> None:
        """Wait for this pass's turn; return when the caller may decide."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new loop: nothing of the old one's will run again
            self._loop, self._taken = loop, False
            self._waiting.clear()
        if not self._taken:
            self._hold()
            return
        turn = loop.create_future()
        self._waiting.append(turn)
        await turn

    def _hold(self) -> None:
        self._taken = True
        assert self._loop is not None
        self._loop.call_soon(self._hand_on)

    def _hand_on(self) -> None:
        """Runs in the next pass: the turn goes to the longest waiting, if any."""
        self._taken = False
        while self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():  # not the request of a client that went away
                turn.set_result(None)
                self._hold()
                return
