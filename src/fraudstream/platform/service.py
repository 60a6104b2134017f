"""What every embedded service provides to the supervisor, and the probes it uses."""

from __future__ import annotations

import signal
import socket
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from fraudstream.platform.process import Launch
from fraudstream.settings import Settings


@dataclass(frozen=True)
class Health:
    ok: bool
    detail: str


class Service(ABC):
    """One supervised process of the embedded platform.

    The supervisor calls ``prepare`` (idempotent: install, initialise data), then
    starts ``launch()`` detached, polls ``check`` until healthy, and finally calls
    ``configure`` (idempotent: roles, buckets, topics...).
    """

    name: str
    stop_signal: int = signal.SIGTERM

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @property
    def data_dir(self) -> Path:
        return self.settings.platform.home / self.name

    @property
    def log_path(self) -> Path:
        return self.settings.log_dir / f"{self.name}.log"

    @property
    @abstractmethod
    def ports(self) -> list[int]:
        """Every port this service listens on; `down` verifies they are all closed."""

    @property
    @abstractmethod
    def url(self) -> str:
        """Where a person or a client reaches it."""

    def prepare(self) -> None:
        """Install binaries and initialise the data directory (idempotent)."""

    @abstractmethod
    def launch(self) -> Launch:
        """The command line, environment and user that run the service."""

    @abstractmethod
    def check(self) -> Health:
        """A quick health probe (a couple of seconds at most)."""

    def configure(self) -> None:
        """Runs after the service is healthy on every `up` (idempotent)."""

    def wipe(self) -> None:
        """`reset`: delete what the service keeps outside the platform home (usually nothing)."""


def tcp_open(host: str, port: int, timeout_s: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def http_check(url: str, timeout_s: float = 2.0) -> Health:
    """GET ``url``; healthy on HTTP 200."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310 (loopback URL)
            return Health(resp.status == 200, f"HTTP {resp.status}")
    except urllib.error.HTTPError as exc:
        return Health(False, f"HTTP {exc.code} from {url}")
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return Health(False, f"no answer from {url}: {reason}")
