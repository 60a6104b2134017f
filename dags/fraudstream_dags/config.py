"""Settings of the DAGs, read from the environment of the Airflow process that parses them.

Reading environment variables is the only thing done at parse time (no network, no files).
The embedded platform sets the local ones when it starts Airflow; on Kubernetes the Airflow
chart's values set the ``kubernetes`` ones (see docs/orchestration.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal

Runtime = Literal["local", "kubernetes"]


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


@dataclass(frozen=True)
class PodDefaults:
    """How a training pod looks on Kubernetes; names follow charts/fraud-platform.

    The ``*_secret`` fields are names of Kubernetes Secrets, never their contents.
    """

    image: str = "fraudstream/trainer:0.1.0"
    namespace: str = "fraudstream"
    service_account: str = "fraud-platform-trainer"
    config_map: str = "fraud-platform-env"
    kafka_user: str = "fraudstream-trainer"
    kafka_ca_secret: str = "fraudstream-cluster-ca-cert"  # noqa: S105 (a name)
    postgres_secret: str = "fraudstream-postgres-app"  # noqa: S105 (a name)
    s3_secret: str = "fraudstream-s3"  # noqa: S105 (a name)
    s3_access_key_key: str = "access-key"
    s3_secret_key_key: str = "secret-key"  # noqa: S105 (a name)
    image_pull_policy: str = "IfNotPresent"
    startup_timeout_s: int = 600


@dataclass(frozen=True)
class DagConfig:
    """Everything a DAG file needs to build its tasks."""

    runtime: Runtime
    cli: str
    dataset_bucket: str
    retries: int
    retry_delay_s: int
    pods: PodDefaults = field(default_factory=PodDefaults)
    retrain_candidates: int = 20
    """Default of fraud_retrain's ``candidates``: a small cluster trains with fewer."""
    retrain_smote: bool = True
    """Default of fraud_retrain's ``smote`` (the SMOTE arm of the ablation doubles the work)."""

    @classmethod
    def from_env(cls) -> DagConfig:
        """``FRAUDSTREAM_MODE=kubernetes`` selects pods; anything else runs local processes."""
        runtime: Runtime = (
            "kubernetes" if _env("FRAUDSTREAM_MODE", "local") == "kubernetes" else "local"
        )
        defaults = PodDefaults()
        pods = PodDefaults(
            image=_env("FRAUDSTREAM_TRAINER_IMAGE", defaults.image),
            namespace=_env("FRAUDSTREAM_TRAINER_NAMESPACE", defaults.namespace),
            service_account=_env("FRAUDSTREAM_TRAINER_SERVICE_ACCOUNT", defaults.service_account),
            config_map=_env("FRAUDSTREAM_TRAINER_CONFIG_MAP", defaults.config_map),
            kafka_user=_env("FRAUDSTREAM_TRAINER_KAFKA_USER", defaults.kafka_user),
            # Set but empty: the Kafka listener has no TLS, so no CA is mounted.
            kafka_ca_secret=os.environ.get(
                "FRAUDSTREAM_TRAINER_KAFKA_CA_SECRET", defaults.kafka_ca_secret
            ),
            postgres_secret=_env("FRAUDSTREAM_TRAINER_POSTGRES_SECRET", defaults.postgres_secret),
            s3_secret=_env("FRAUDSTREAM_TRAINER_S3_SECRET", defaults.s3_secret),
            s3_access_key_key=_env("FRAUDSTREAM_TRAINER_S3_ACCESS_KEY_KEY", "access-key"),
            s3_secret_key_key=_env("FRAUDSTREAM_TRAINER_S3_SECRET_KEY_KEY", "secret-key"),
        )
        return cls(
            runtime=runtime,
            cli=_env("FRAUDSTREAM_CLI", "fraudstream"),
            dataset_bucket=_env("FRAUDSTREAM_S3_DATASET_BUCKET", "fraudstream-datasets"),
            retries=int(_env("FRAUDSTREAM_DAG_RETRIES", "2")),
            retry_delay_s=int(_env("FRAUDSTREAM_DAG_RETRY_DELAY_S", "300")),
            pods=pods,
            retrain_candidates=int(_env("FRAUDSTREAM_RETRAIN_CANDIDATES", "20")),
            retrain_smote=_env("FRAUDSTREAM_RETRAIN_SMOTE", "true").lower() in ("1", "true", "yes"),
        )
