"""Airflow 3 in the embedded platform: API server (and UI), scheduler and DAG processor.

Airflow runs from its own virtualenv (``.venv-airflow``, from ``airflow/requirements.lock``)
because it pins its own FastAPI, SQLAlchemy and pydantic. The three components are
supervised like every other service; they share one configuration, passed entirely in the
environment (nothing is written to ``airflow.cfg``):

- LocalExecutor, metadata in the ``airflow`` database of the platform's PostgreSQL;
- the DAGs folder is the repository's ``dags/``; tasks run the main virtualenv's
  ``fraudstream`` (``FRAUDSTREAM_CLI``) with the platform's settings in their environment;
- the simple auth manager with one admin user whose generated password is in
  ``credentials.json`` and in a passwords file only Airflow reads (mode 0600);
- one JWT secret for every component, so the scheduler's task runners can call the
  API server's execution API.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import psycopg2
from psycopg2 import sql

from fraudstream.platform import toolchain
from fraudstream.platform.process import Launch
from fraudstream.platform.service import Health, Service, http_check
from fraudstream.settings import AirflowSettings, Settings

SIMPLE_AUTH_MANAGER = (
    "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
)


class AirflowConfig:
    """The environment every Airflow component and ``airflow db migrate`` run with."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.airflow: AirflowSettings = settings.airflow
        self.airflow.required_secrets()  # local mode generates them; elsewhere they are set
        self.home = settings.platform.home / "airflow"

    @property
    def binary(self) -> Path:
        return self.airflow.venv / "bin" / "airflow"

    @property
    def passwords_file(self) -> Path:
        return self.home / "simple_auth_manager_passwords.json"

    def check_installed(self) -> None:
        if not self.binary.is_file():
            raise toolchain.ToolchainError(
                f"Airflow is not installed at {self.airflow.venv}: run `make airflow-venv` "
                "(its own virtualenv from airflow/requirements.lock)"
            )

    def env(self) -> dict[str, str]:
        af, pg, platform = self.airflow, self.settings.postgres, self.settings.platform
        assert af.admin_password is not None
        assert af.jwt_secret is not None
        return {
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(af.dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(af.parallelism),
            "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{af.admin_user}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.passwords_file),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{af.url}/execution/",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": pg.url(af.database, "postgresql+psycopg2"),
            "AIRFLOW__API__BASE_URL": af.url,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API_AUTH__JWT_SECRET": af.jwt_secret.get_secret_value(),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.home / "logs"),
            # Tasks call the package's CLI with the platform's settings.
            "FRAUDSTREAM_CLI": str(Path(sys.executable).parent / "fraudstream"),
            "FRAUDSTREAM_HOME": str(platform.home),
            "FRAUDSTREAM_MODE": platform.mode,
            "PYTHONUNBUFFERED": "1",
        }

    def prepare(self) -> None:
        """The home and the admin's password file (rewritten from credentials.json each time)."""
        self.check_installed()
        self.home.mkdir(parents=True, exist_ok=True)
        assert self.airflow.admin_password is not None
        tmp = self.passwords_file.with_suffix(".tmp")
        tmp.write_text(
            json.dumps({self.airflow.admin_user: self.airflow.admin_password.get_secret_value()})
        )
        tmp.chmod(0o600)
        tmp.replace(self.passwords_file)

    def ensure_database(self) -> None:
        """Create the ``airflow`` database (owned by the platform role) if missing, then migrate.

        ``airflow db migrate`` is idempotent; the first run takes about half a minute.
        """
        pg = self.settings.postgres
        conn = psycopg2.connect(pg.dsn())
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", (self.airflow.database,)
                )
                if cur.fetchone() is None:
                    cur.execute(
                        sql.SQL("CREATE DATABASE {} OWNER {}").format(
                            sql.Identifier(self.airflow.database), sql.Identifier(pg.user)
                        )
                    )
        finally:
            conn.close()
        toolchain.run_tool(
            [str(self.binary), "db", "migrate"],
            "migrating Airflow's metadata database",
            env={**os.environ, **self.env()},
            timeout=600,
        )

    def health(self) -> dict[str, Any] | None:
        """The API server's health document, or None when it does not answer."""
        url = f"{self.airflow.url}/api/v2/monitor/health"
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 (loopback URL)
                doc: dict[str, Any] = json.loads(resp.read())
                return doc
        except (urllib.error.URLError, OSError, ValueError):
            return None


class _AirflowComponent(Service):
    """One Airflow command (``airflow <command>``) run with the shared configuration."""

    command: list[str]
    component: str  # its key in the health document

    def __init__(self, settings: Settings, config: AirflowConfig) -> None:
        super().__init__(settings)
        self.config = config

    @property
    def data_dir(self) -> Path:
        return self.config.home

    @property
    def ports(self) -> list[int]:
        return []

    @property
    def url(self) -> str:
        return self.config.airflow.url

    def launch(self) -> Launch:
        return Launch(
            argv=[str(self.config.binary), *self.command],
            env=self.config.env(),
            cwd=self.config.home,
        )

    def check(self) -> Health:
        doc = self.config.health()
        if doc is None:
            return Health(False, f"the API server at {self.url} does not answer")
        status = (doc.get(self.component) or {}).get("status")
        return Health(status == "healthy", f"{self.component}: {status or 'no heartbeat yet'}")


class AirflowApiServer(_AirflowComponent):
    """The REST API, the execution API for task runners, and the UI."""

    name = "airflow-api-server"
    component = "metadatabase"

    @property
    def ports(self) -> list[int]:
        return [self.config.airflow.port]

    @property
    def command(self) -> list[str]:  # type: ignore[override]
        af = self.config.airflow
        return ["api-server", "--host", af.host, "--port", str(af.port), "--workers", "1"]

    def prepare(self) -> None:
        self.config.prepare()

    def check(self) -> Health:
        health = http_check(f"{self.url}/api/v2/monitor/health")
        return health if not health.ok else Health(True, "answering")


class AirflowScheduler(_AirflowComponent):
    name = "airflow-scheduler"
    command = ["scheduler"]  # noqa: RUF012 (class constant)
    component = "scheduler"


class AirflowDagProcessor(_AirflowComponent):
    name = "airflow-dag-processor"
    command = ["dag-processor"]  # noqa: RUF012 (class constant)
    component = "dag_processor"


class EmbeddedAirflow:
    """The Airflow components as the supervisor sees them.

    ``enabled`` (``platform up --with-airflow`` or ``FRAUDSTREAM_AIRFLOW_ENABLED=1``) makes
    `up` start them; without it they still count as platform services while they have a
    process record, so `status` shows them and `down` stops them.
    """

    def __init__(self, settings: Settings, enabled: bool | None = None) -> None:
        self.config = AirflowConfig(settings)
        self.enabled = self.config.airflow.enabled if enabled is None else enabled
        self.services: list[Service] = [
            AirflowApiServer(settings, self.config),
            AirflowScheduler(settings, self.config),
            AirflowDagProcessor(settings, self.config),
        ]

    def active(self, run_dir: Path) -> list[Service]:
        """The components to supervise: all when enabled, else those that were started."""
        if self.enabled:
            return list(self.services)
        return [s for s in self.services if (run_dir / f"{s.name}.json").is_file()]

    def login(self) -> tuple[str, str]:
        """(user, password) of the UI's admin (development credentials, local mode)."""
        af = self.config.airflow
        assert af.admin_password is not None
        return af.admin_user, af.admin_password.get_secret_value()
