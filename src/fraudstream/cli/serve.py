"""`fraudstream serve`: the API and the dashboard (uvicorn; one worker process per core)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from fraudstream.settings import load_settings

serve_app = typer.Typer(no_args_is_help=False)
console = Console()


@serve_app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (FRAUDSTREAM_API_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (FRAUDSTREAM_API_PORT).")] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=64,
            help="Worker processes, each with its own model and connections; one per core "
            "(FRAUDSTREAM_API_WORKERS, default 1).",
        ),
    ] = None,
    reload_interval: Annotated[
        float, typer.Option(help="Seconds between checks of the champion alias (every worker).")
    ] = 30.0,
) -> None:
    """Serve the API and the dashboard until Ctrl-C.

    Prints the dashboard URL with the writer's token in its fragment (the part after
    `#`, which browsers never send to a server): open it to confirm or reject alerts.
    Every endpoint but health and metrics needs a token; in local mode the analyst's
    read-only one is printed too.
    Each worker admits FRAUDSTREAM_API_MAX_IN_FLIGHT requests at once and refuses more
    with 503 (docs/api.md, Capacity and overload).
    """
    from fraudstream.api.server import serve as run

    settings = load_settings()
    token = settings.api.required_token().get_secret_value()
    host = host or settings.api.host
    port = port or settings.api.port
    workers = workers or settings.api.workers
    console.print(f"dashboard: http://{host}:{port}/dashboard/#token={token}")
    if settings.platform.mode == "local" and settings.api.read_token is not None:
        read_only = settings.api.read_token.get_secret_value()
        console.print(f"read-only: http://{host}:{port}/dashboard/#token={read_only}")
    console.print(f"API docs:  http://{host}:{port}/docs")
    console.print(
        f"workers:   {workers}, each admitting {settings.api.max_in_flight} requests at once"
    )
    run(host, port, workers, reload_interval)
