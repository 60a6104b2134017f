"""Embedded MLflow tracking server: PostgreSQL backend store, artifacts proxied to S3.

Clients talk only to the server (``mlflow-artifacts:`` URIs); the server holds
the S3 credentials and writes to the MLflow bucket.
"""

from __future__ import annotations

import sys
from pathlib import Path

from fraudstream.platform.process import Launch
from fraudstream.platform.service import Health, Service, http_check


class MlflowServer(Service):
    name = "mlflow"

    @property
    def ports(self) -> list[int]:
        return [self.settings.mlflow.port]

    @property
    def url(self) -> str:
        return self.settings.mlflow.uri

    def launch(self) -> Launch:
        mlflow, s3, pg = self.settings.mlflow, self.settings.s3, self.settings.postgres
        executable = Path(sys.executable).parent / "mlflow"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return Launch(
            argv=[
                str(executable),
                "server",
                "--host",
                mlflow.host,
                "--port",
                str(mlflow.port),
                "--workers",
                str(mlflow.workers),
                "--serve-artifacts",
                "--artifacts-destination",
                f"s3://{s3.mlflow_bucket}/artifacts",
            ],
            env={
                # The backend URI carries the password: pass it in the environment, not argv.
                "MLFLOW_BACKEND_STORE_URI": pg.url(pg.mlflow_database, "postgresql+psycopg2"),
                **s3.client_env(),
                # MLflow's job runner (GenAI evaluation jobs; seven huey consumer processes of
                # about 250 MB each, polling) serves nothing fraudstream uses.
                "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            },
            cwd=self.data_dir,
        )

    def check(self) -> Health:
        return http_check(f"{self.url}/health")
