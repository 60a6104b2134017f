"""Embedded Redis: the online store of the latest card and merchant feature states.

Runs Debian's ``redis-server`` (7.x) on loopback with a generated password, its
data (append-only file plus snapshots) under the platform home. The password is
written into a private config file (mode 0600) rather than on the command line,
where ``ps`` would show it. Clients only use the generic Redis settings (host,
port, password, database), so any Redis 6+ can replace it.
"""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

from fraudstream.platform.process import Launch
from fraudstream.platform.service import Health, Service


class RedisServerNotFoundError(RuntimeError):
    """``redis-server`` is not installed."""


def redis_server_binary() -> Path:
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").is_file() else None
    )
    if found is None:
        raise RedisServerNotFoundError(
            "redis-server is not installed: run `make system-deps` "
            "(Debian/Ubuntu: apt-get install redis-server)"
        )
    return Path(found)


class RedisServer(Service):
    name = "redis"

    @property
    def ports(self) -> list[int]:
        return [self.settings.redis.port]

    @property
    def url(self) -> str:
        return self.settings.redis.url

    @property
    def config_path(self) -> Path:
        return self.data_dir / "redis.conf"

    def prepare(self) -> None:
        redis_server_binary()
        (self.data_dir / "data").mkdir(parents=True, exist_ok=True)
        self._write_config()

    def _write_config(self) -> None:
        """The server config; rewritten on every `up` so settings changes take effect."""
        redis = self.settings.redis
        assert redis.password is not None
        lines = [
            f"bind {redis.host}",
            f"port {redis.port}",
            "protected-mode yes",
            f"requirepass {redis.password.get_secret_value()}",
            f"dir {self.data_dir / 'data'}",
            "appendonly yes",
            "appendfsync everysec",
            "save 300 1",
            f"maxmemory {redis.maxmemory_mb}mb",
            # States carry a TTL; under memory pressure the least recently used goes first
            # (an evicted card is scored as a new one until the stream writes it again).
            "maxmemory-policy allkeys-lru",
            "daemonize no",
            "supervised no",
            "loglevel notice",
            'logfile ""',
        ]
        tmp = self.config_path.with_suffix(".tmp")
        tmp.write_text("\n".join(lines) + "\n")
        tmp.chmod(0o600)
        tmp.replace(self.config_path)

    def launch(self) -> Launch:
        return Launch(argv=[str(redis_server_binary()), str(self.config_path)], cwd=self.data_dir)

    def check(self) -> Health:
        """AUTH then PING over a raw socket (no client library needed by the supervisor)."""
        redis = self.settings.redis
        assert redis.password is not None
        secret = redis.password.get_secret_value().encode()
        auth = b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n" % (len(secret), secret)
        try:
            with socket.create_connection((redis.host, redis.port), timeout=1.0) as conn:
                conn.sendall(auth + b"*1\r\n$4\r\nPING\r\n")
                reply = b""
                while reply.count(b"\r\n") < 2:
                    chunk = conn.recv(256)
                    if not chunk:
                        break
                    reply += chunk
        except OSError as exc:
            return Health(False, f"no answer on {redis.host}:{redis.port}: {exc}")
        if reply.startswith(b"+OK\r\n+PONG"):
            return Health(True, "PONG")
        return Health(False, f"unexpected reply {reply[:60]!r}")
