"""Running the API: one process, or N worker processes, each with its own listening socket.

Python runs one request's code at a time per process, so the API scales over cores
by processes. ``serve`` runs N workers under uvicorn's supervisor (the ecosystem's
process manager: it restarts a worker that dies and stops them all on SIGINT or
SIGTERM). Each worker is a fresh interpreter (spawned, not forked) that builds its own
settings, application, connections and model holder, so every worker reloads the
champion on its own when the alias moves.

Each worker slot gets a listening socket of its own, all bound to the one port with
``SO_REUSEPORT``, so the kernel spreads new connections over the workers. With one
socket shared by every worker (uvicorn's way), a connection goes to whichever worker
wakes first, and an event loop accepts every pending connection when it wakes: one
worker took 30 of a client's 32 keep-alive connections, and with them nearly all of
its requests, while the other idled. A restarted worker takes over its slot's socket,
whose pending connections wait for it in the kernel's queue.
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
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors.multiprocess import Multiprocess, Process

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
    if workers == 1:
        uvicorn.Server(config).run(sockets=[_listen(host, port)])
        return
    slots = _listen_per_worker(host, port, workers)
    try:
        _SlotSupervisor(config, slots).run()
    finally:
        for listener in slots:
            listener.close()
        assert metrics_dir is not None
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _listen(host: str, port: int, reuse_port: bool = False) -> socket.socket:
    """A listening TCP socket whose connections send small writes at once (``TCP_NODELAY``).

    Made with ``IPPROTO_TCP`` named: asyncio sets ``TCP_NODELAY`` on a connection only when
    its socket says so, and a socket made with protocol 0 (``socket.create_server``) does
    not. Without it, a response written in two parts on a connection reused at once waited
    for the client's delayed ACK: 44 ms at every rate from 750/s up (docs/api.md).
    Linux hands the listener's ``TCP_NODELAY`` on to the connections it accepts as well.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        listener.bind((host, port))
        listener.listen(2048)
    except OSError as exc:
        listener.close()
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    listener.set_inheritable(True)
    return listener


def _listen_per_worker(host: str, port: int, workers: int) -> list[socket.socket]:
    """One listening socket per worker on the one address, the kernel spreading connections.

    A plain bind first: ``SO_REUSEPORT`` would let a second ``serve`` on the same port
    share it silently instead of failing.
    """
    _listen(host, port).close()
    slots = [_listen(host, port, reuse_port=True)]
    bound_port = slots[0].getsockname()[1]  # port 0: the one the kernel chose
    slots += [_listen(host, bound_port, reuse_port=True) for _ in range(workers - 1)]
    return slots


class _SlotSupervisor(Multiprocess):
    """uvicorn's supervisor with worker ``i`` always on listening socket ``i``.

    ``Multiprocess`` gives every worker the same sockets; the methods that start a
    worker are uvicorn's own with the slot's socket passed instead. Changing the number
    of workers at run time (SIGTTIN, SIGTTOU) is not supported: restart ``serve``.
    """

    def __init__(self, config: uvicorn.Config, slots: list[socket.socket]) -> None:
        super().__init__(config, sockets=[])
        self.slots = slots

    def _start(self, slot: int) -> Process:
        process = Process(self.config, [self.slots[slot]])
        process.start()
        return process

    def init_processes(self) -> None:
        self.processes = [self._start(slot) for slot in range(self.processes_num)]

    def keep_subprocess_alive(self) -> None:
        if self.should_exit.is_set():
            return
        for slot, process in enumerate(self.processes):
            if process.is_alive(timeout=self.config.timeout_worker_healthcheck):
                continue
            process.kill()  # hung: kill it
            process.join()
            if process.exitcode == STARTUP_FAILURE:
                # It failed before serving (the app or the model stack is broken): every
                # restart would fail the same way.
                log.error("worker %s failed to start; stopping", process.pid)
                self.should_exit.set()
                return
            if self.should_exit.is_set():
                return
            log.info("worker %s died; starting another on its socket", process.pid)
            self.processes[slot] = self._start(slot)

    def restart_all(self) -> None:
        """SIGHUP: replace each worker, its replacement serving before the old one stops."""
        for slot, old in enumerate(self.processes):
            if self.should_exit.is_set():
                return
            new = self._start(slot)
            if not new.wait_until_ready(self.config.timeout_worker_healthcheck, self.should_exit):
                new.kill()
                new.join()
                if not self.should_exit.is_set():
                    log.error("worker %s was not ready in time; keeping %s", new.pid, old.pid)
                return
            old.terminate()
            old.join()
            self.processes[slot] = new

    def handle_ttin(self) -> None:
        log.warning("SIGTTIN ignored: the number of workers is fixed; restart serve to change it")

    def handle_ttou(self) -> None:
        log.warning("SIGTTOU ignored: the number of workers is fixed; restart serve to change it")
