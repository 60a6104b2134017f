"""Embedded PostgreSQL from the system's server binaries.

Its own data directory, port and private socket directory under the platform
home. PostgreSQL refuses to run as root, so under root the server runs as the
``postgres`` OS user (created by Debian's package) on a directory it owns.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import signal
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import psycopg2
from psycopg2 import sql

from fraudstream.adapters.partitions import ensure_ahead
from fraudstream.adapters.postgres import migrate
from fraudstream.platform import toolchain
from fraudstream.platform.process import Launch
from fraudstream.platform.service import Health, Service, tcp_open
from fraudstream.settings import Settings

SUPERUSER = "postgres"
# Only used under root; checked to be a real directory owned by root before use.
FALLBACK_ROOT = Path("/var/tmp/fraudstream-postgres")  # noqa: S108


class PostgresServer(Service):
    name = "postgres"
    stop_signal = signal.SIGINT  # "fast" shutdown: SIGTERM would wait for every client

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.pg = settings.postgres

    @property
    def ports(self) -> list[int]:
        return [self.pg.port]

    @property
    def url(self) -> str:
        return self.pg.redacted_dsn()

    @property
    def socket_dir(self) -> Path:
        return self.data_dir / "socket"

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "data"

    @property
    def os_user(self) -> str | None:
        """The OS user the server runs as: ``postgres`` under root, else the caller."""
        return SUPERUSER if os.geteuid() == 0 else None

    def _bin(self, name: str) -> str:
        return str(toolchain.postgres_bin_dir(self.pg.bin_dir) / name)

    def _own(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self.os_user:
            entry = pwd.getpwnam(self.os_user)
            os.chown(path, entry.pw_uid, entry.pw_gid)
            path.chmod(0o700)

    @property
    def data_dir(self) -> Path:
        """``<home>/postgres``, resolved: under root it may be a link to a reachable place."""
        return (self.settings.platform.home / self.name).resolve()

    def _reachable(self, path: Path) -> bool:
        if self.os_user is None:
            return True
        probe = subprocess.run(["test", "-w", str(path)], user=self.os_user, check=False)
        return probe.returncode == 0

    def _relocate(self) -> None:
        """Under root, when the checkout is not traversable by ``postgres`` (a home directory
        with mode 0700, say), keep the server's files in /var/tmp and link them from the home.
        """
        link = self.settings.platform.home / self.name
        digest = hashlib.sha256(str(self.settings.platform.home).encode()).hexdigest()[:12]
        target = FALLBACK_ROOT / digest
        FALLBACK_ROOT.mkdir(mode=0o755, exist_ok=True)
        if FALLBACK_ROOT.is_symlink() or FALLBACK_ROOT.stat().st_uid != 0:
            raise toolchain.ToolchainError(f"{FALLBACK_ROOT} is not a directory owned by root")
        if link.is_dir() and not link.is_symlink():
            link.rmdir()  # only ever empty here: nothing could be initialised in it
        self._own(target)
        link.symlink_to(target, target_is_directory=True)
        if not self._reachable(target):
            raise toolchain.ToolchainError(
                f"the OS user '{self.os_user}' can reach neither {link} nor {target}: PostgreSQL "
                "runs as that user under root. Make the checkout's parent directories traversable "
                f"(chmod o+x) or set FRAUDSTREAM_HOME to a directory '{self.os_user}' can reach."
            )

    def wipe(self) -> None:
        """Delete the server's files when they live outside the home (see ``_relocate``)."""
        if (self.settings.platform.home / self.name).is_symlink():
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def prepare(self) -> None:
        try:
            pwd.getpwnam(SUPERUSER) if self.os_user else None
        except KeyError:
            raise toolchain.ToolchainError(
                "running as root needs the 'postgres' OS user: `apt-get install postgresql` "
                "creates it (or run fraudstream as a normal user)"
            ) from None
        self._own(self.data_dir)
        if not self._reachable(self.data_dir):
            self._relocate()
        self._own(self.socket_dir)
        if (self.pgdata / "PG_VERSION").is_file():
            return
        self._own(self.pgdata)
        toolchain.run_tool(
            [
                self._bin("initdb"),
                "-D",
                str(self.pgdata),
                "-U",
                SUPERUSER,
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--no-locale",
            ],
            "initialising the PostgreSQL data directory",
            user=self.os_user,
            group=self.os_user,
        )

    def launch(self) -> Launch:
        return Launch(
            argv=[
                self._bin("postgres"),
                "-D",
                str(self.pgdata),
                "-c",
                f"port={self.pg.port}",
                "-c",
                f"listen_addresses={self.pg.host}",
                "-c",
                f"unix_socket_directories={self.socket_dir}",
                "-c",
                "max_connections=200",
                "-c",
                "shared_buffers=256MB",
                "-c",
                "log_min_messages=warning",
            ],
            cwd=self.data_dir,
            user=self.os_user,
        )

    def superuser(self) -> psycopg2.extensions.connection:
        """An autocommit connection as the server's superuser, over its Unix socket."""
        conn = psycopg2.connect(
            host=str(self.socket_dir),
            port=self.pg.port,
            user=SUPERUSER,
            dbname="postgres",
            connect_timeout=3,
        )
        conn.autocommit = True
        return conn

    def check(self) -> Health:
        if not tcp_open(self.pg.host, self.pg.port):
            return Health(False, f"port {self.pg.port} closed")
        try:
            conn = self.superuser()
        except psycopg2.OperationalError as exc:
            return Health(False, str(exc).strip().splitlines()[0])
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
        finally:
            conn.close()
        return Health(True, "accepting connections")

    def configure(self) -> None:
        """The platform role (password synced from settings), its databases, then migrations
        and the coming days' partitions."""
        assert self.pg.password is not None
        password = self.pg.password.get_secret_value()
        conn = self.superuser()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (self.pg.user,))
                verb = "ALTER" if cur.fetchone() else "CREATE"
                cur.execute(
                    sql.SQL(verb + " ROLE {} LOGIN CREATEDB PASSWORD %s").format(
                        sql.Identifier(self.pg.user)
                    ),
                    (password,),
                )
                # DROP DATABASE ... WITH (FORCE) (scratch databases) must be able to end every
                # session in the database, autovacuum workers included, which run as no role.
                cur.execute(
                    sql.SQL("GRANT pg_signal_backend TO {}").format(sql.Identifier(self.pg.user))
                )
                for database in (self.pg.database, self.pg.mlflow_database):
                    cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
                    if cur.fetchone() is None:
                        cur.execute(
                            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                                sql.Identifier(database), sql.Identifier(self.pg.user)
                            )
                        )
        finally:
            conn.close()
        migrate(self.pg)
        ensure_ahead(
            self.pg, datetime.now(UTC).date(), self.settings.retention.partitions_ahead_days
        )
