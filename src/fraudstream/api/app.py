"""The FastAPI application factory: lifespan, routes, errors, metrics and the dashboard."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from fraudstream.adapters.online_store import OnlineStore
from fraudstream.api import problems
from fraudstream.api.live import AlertFeed
from fraudstream.api.model_holder import ModelHolder
from fraudstream.api.queries import Database
from fraudstream.api.routes import router
from fraudstream.api.runtime import ApiRuntime
from fraudstream.settings import Settings

log = logging.getLogger("fraudstream.api")
DESCRIPTION = """\
Find a transaction and why it was scored as it was, follow alerts as they arrive,
confirm or reject them (analyst labels feed retraining), see which model is in
production, and score a transaction on demand with the card's current features.

Reads are open; `POST /alerts/{id}/verdict` needs `Authorization: Bearer <token>`.
Errors are `application/problem+json` (RFC 9457). The dashboard is at `/dashboard/`.
"""


def create_app(settings: Settings, reload_interval_s: float = 30.0) -> FastAPI:
    """The API; connections open and the model loads when the app starts (lifespan)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        holder = ModelHolder(settings, settings.api.model_alias)
        runtime = ApiRuntime(
            settings=settings,
            db=Database(settings.postgres),
            store=OnlineStore(settings.redis),
            model=holder,
            feed=AlertFeed(settings.kafka),
        )
        app.state.runtime = runtime
        app.middleware_stack = None  # rebuilt below with the metrics middleware in place
        holder.load()
        holder.start(reload_interval_s)
        runtime.feed.start()
        try:
            yield
        finally:
            runtime.close()

    app = FastAPI(
        title="fraudstream API",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_tags=[
            {"name": "transactions", "description": "Look up and score transactions."},
            {"name": "alerts", "description": "Alerts, the live stream and verdicts."},
            {"name": "model", "description": "The model in production."},
            {"name": "statistics", "description": "Distributions and rates for charts."},
            {"name": "health", "description": "Probes and Prometheus metrics."},
        ],
    )
    problems.install(app)

    @app.middleware("http")
    async def measure(request, call_next):  # type: ignore[no-untyped-def]
        runtime = getattr(request.app.state, "runtime", None)
        if runtime is None:
            return await call_next(request)
        return await runtime.metrics.middleware(request, call_next)

    app.include_router(router)
    static = Path(str(resources.files("fraudstream.api") / "static"))
    app.mount("/dashboard", StaticFiles(directory=static, html=True), name="dashboard")

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/dashboard/")

    return app
