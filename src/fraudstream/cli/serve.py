"""`fraudstream serve`: the API and the dashboard (uvicorn, one process)."""

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
    reload_interval: Annotated[
        float, typer.Option(help="Seconds between checks of the champion alias.")
    ] = 30.0,
) -> None:
    """Serve the API and the dashboard until Ctrl-C.

    Prints the dashboard URL with the write token in its fragment (the part after
    `#`, which browsers never send to a server): open it to confirm or reject alerts.
    """
    import uvicorn

    from fraudstream.api.app import create_app

    settings = load_settings()
    token = settings.api.required_token().get_secret_value()
    host = host or settings.api.host
    port = port or settings.api.port
    app = create_app(settings, reload_interval_s=reload_interval)
    console.print(f"dashboard: http://{host}:{port}/dashboard/#token={token}")
    console.print(f"API docs:  http://{host}:{port}/docs")
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False)
