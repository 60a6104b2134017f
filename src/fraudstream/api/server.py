"""Running the API: one process, or N worker processes behind one listening socket.

Python runs one request's code at a time per process, so the API scales over cores
by processes. ``serve`` binds the socket once and hands it to N workers under
uvicorn's supervisor (the ecosystem's process manager: it restarts a worker that
dies and stops them all on SIGINT or SIGTERM); the kernel spreads connections
over the workers. Each worker is a fresh interpreter (spawned, not forked) that
builds its own settings, application, connections and model holder, so every
worker reloads the champion on its own when the alias moves.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import socket
import tempfile
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from fraudstream.settings import load_settings

log = logging.getLogger("fraudstream.api")


class ListenError(RuntimeError):
    """The address cannot be listened on (taken, or not this machine's); names it."""


def worker_app(reload_interval_s: float, metrics_dir: Path | None = None) -> FastAPI:
    """The application of one worker process (uvicorn calls it in the worker)."""
    from fraudstream.api.app import create_app

    return create_app(load_settings(), reload_interval_s, metrics_dir)


def serve(host: str, port: int, workers: int, reload_interval_s: float) -> None:
    """Serve until SIGINT or SIGTERM; ``workers`` processes, each one event loop.

    Raises ListenError when the address cannot be listened on.
    """
    metrics_dir = None
    if workers > 1:
        # prometheus-client reads this variable when a worker imports it (a fresh process),
        # and then keeps its values in files there, which a scrape sums over the workers.
        metrics_dir = Path(tempfile.mkdtemp(prefix="fraudstream-api-metrics-"))
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    factory = functools.partial(worker_app, reload_interval_s, metrics_dir)
    config = uvicorn.Config(
        factory,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        access_log=False,
        # The decision path is a few hundred microseconds: uvicorn's default 2 s
        # keep-alive would make callers that pause reconnect, which costs more.
        timeout_keep_alive=30,
        # A starting worker imports the model stack, holding the interpreter for seconds at
        # a time, so its supervisor's pings go unanswered; with uvicorn's 5 s a busy machine
        # saw starting workers killed as hung and restarted, two or three times each.
        timeout_worker_healthcheck=60,
    )
    listener = _listen(host, port)
    if workers == 1:
        uvicorn.Server(config).run(sockets=[listener])
        return
    from uvicorn.supervisors import Multiprocess

    try:
        Multiprocess(config, sockets=[listener]).run()
    finally:
        assert metrics_dir is not None
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        listener = socket.create_server((host, port), family=family, backlog=2048)
    except OSError as exc:
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    listener.set_inheritable(True)
    return listener
