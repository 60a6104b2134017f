"""The FastAPI application factory: lifespan, routes, errors, metrics and the dashboard."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from fraudstream.adapters.online_store import OnlineStore
from fraudstream.api import problems
from fraudstream.api.admission import Admission, AdmissionMiddleware
from fraudstream.api.live import AlertFeed
from fraudstream.api.metrics import ApiMetrics, MetricsMiddleware
from fraudstream.api.model_holder import ModelHolder, RulesHolder
from fraudstream.api.queries import Database, drift
from fraudstream.api.routes import probes, router
from fraudstream.api.runtime import ApiRuntime
from fraudstream.api.score_path import PATH as SCORE_PATH
from fraudstream.api.score_path import ScorePath
from fraudstream.settings import Settings

log = logging.getLogger("fraudstream.api")
DESCRIPTION = """\
Find a transaction and why it was scored as it was, follow alerts as they arrive,
confirm or reject them (analyst labels feed retraining), see which model is in
production, score a transaction on demand with the card's current features and the
active fraud rules, and read or activate the rule set.

Every endpoint but the health checks and the metrics needs `Authorization: Bearer <token>`:
the analyst's read-only token, or the writer's, which `POST /alerts/{id}/verdict` and
`PUT /rules` require.
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
        rules = RulesHolder(settings)
        runtime = ApiRuntime(
            settings=settings,
            db=Database(settings.postgres),
            store=OnlineStore(settings.redis),
            model=holder,
            rules=rules,
            feed=AlertFeed(settings.kafka),
            metrics=metrics,
            admission=admission,
        )
        app.state.runtime = runtime
        holder.load()
        holder.start(reload_interval_s)
        rules.load()
        rules.start(reload_interval_s)
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
        # The API's metrics are Prometheus's (``metrics``). FastAPI's native OpenTelemetry,
        # on by default, looked the global providers up on every request to find none.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        openapi_tags=[
            {"name": "transactions", "description": "Look up and score transactions."},
            {"name": "alerts", "description": "Alerts, the live stream and verdicts."},
            {"name": "model", "description": "The model in production."},
            {
                "name": "rules",
                "description": "The fraud rules beside the model, and their history.",
            },
            {"name": "statistics", "description": "Distributions and rates for charts."},
            {"name": "health", "description": "Probes and Prometheus metrics."},
        ],
    )
    problems.install(app)
    # The last added runs first: admission, then metrics, then POST /score's own path
    # (score_path), then FastAPI's routes.
    score_route = next(r for r in router.routes if getattr(r, "path", None) == SCORE_PATH)
    app.add_middleware(ScorePath, route=score_route)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(AdmissionMiddleware, admission=admission)
    app.state.settings = settings  # the tokens, for ``auth`` (before the lifespan has run)
    app.include_router(router)
    app.include_router(probes)
    static = Path(str(resources.files("fraudstream.api") / "static"))
    app.mount("/dashboard", StaticFiles(directory=static, html=True), name="dashboard")

    # A page like /docs and the dashboard's files, not an API endpoint: it holds no data.
    app.add_route("/", _to_dashboard, include_in_schema=False)
    return app


async def _to_dashboard(_request: Request) -> Response:
    return RedirectResponse("/dashboard/")
