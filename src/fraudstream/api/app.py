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
from fraudstream.api.admission import Admission, AdmissionMiddleware
from fraudstream.api.live import AlertFeed
from fraudstream.api.metrics import ApiMetrics, MetricsMiddleware
from fraudstream.api.model_holder import ModelHolder
from fraudstream.api.queries import Database, drift
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


def create_app(
    settings: Settings, reload_interval_s: float = 30.0, metrics_dir: Path | None = None
) -> FastAPI:
    """The API of one worker; connections open and the model loads when it starts (lifespan).

    Requests beyond ``settings.api.max_in_flight`` at once are refused with 503
    (``admission``); every admitted one is counted and timed (``metrics``). ``metrics_dir``:
    the workers' shared metrics directory when there are several (``api.server``).
    """
    metrics = ApiMetrics(
        lambda: drift(app.state.runtime.db, settings.mlflow.model_name), metrics_dir
    )
    admission = Admission(settings.api.max_in_flight, on_shed=metrics.shed.inc)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        holder = ModelHolder(settings, settings.api.model_alias)
        runtime = ApiRuntime(
            settings=settings,
            db=Database(settings.postgres),
            store=OnlineStore(settings.redis),
            model=holder,
            feed=AlertFeed(settings.kafka),
            metrics=metrics,
            admission=admission,
        )
        app.state.runtime = runtime
        holder.load()
        holder.start(reload_interval_s)
        runtime.feed.start()
        try:
            yield
        finally:
            await runtime.close()

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
    # The last added runs first: admission, then metrics, then the routes.
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(AdmissionMiddleware, admission=admission)
    app.include_router(router)
    static = Path(str(resources.files("fraudstream.api") / "static"))
    app.mount("/dashboard", StaticFiles(directory=static, html=True), name="dashboard")

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/dashboard/")

    return app
