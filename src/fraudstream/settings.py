"""Typed settings, one class per external system.

This is the only module that reads the environment. Every class is frozen and
validated when it is built, so a bad port or a missing secret fails at start
with a message that names the variable to set.

Environment variables use the prefix ``FRAUDSTREAM_`` plus the system, e.g.
``FRAUDSTREAM_KAFKA_PARTITIONS=12`` or ``FRAUDSTREAM_POSTGRES_PORT=5433``.

Secrets: in ``local`` mode (the embedded platform) missing credentials are
generated once and kept in ``<home>/credentials.json`` (mode 0600, never in
git). In any other mode a missing secret is an error.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Port = Annotated[int, Field(ge=1024, le=65535)]
Mode = Literal["local", "kubernetes"]


def _repo_root() -> Path:
    """The checkout this package was installed from in editable mode, else the cwd."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").is_file() and (parent / "src" / "fraudstream").is_dir():
            return parent
    return Path.cwd()


def _default_cache_dir() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "fraudstream"


class PlatformSettings(BaseSettings):
    """Where the embedded platform keeps its state and its downloads."""

    model_config = SettingsConfigDict(env_prefix="FRAUDSTREAM_", frozen=True, extra="ignore")

    mode: Mode = "local"
    home: Path = Field(
        default_factory=lambda: _repo_root() / ".fraudstream",
        description="All state of the embedded platform: data, logs, pid files, credentials.",
    )
    cache_dir: Path = Field(
        default_factory=_default_cache_dir,
        description="Downloads and builds shared by every clone (jars, the MinIO binary).",
    )
    health_timeout_s: float = Field(
        default=120.0, gt=0, description="How long `up` waits per service."
    )
    stop_timeout_s: float = Field(
        default=30.0, gt=0, description="Grace period before SIGKILL on `down`."
    )

    @field_validator("home", "cache_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()


class KafkaSettings(BaseSettings):
    """The Kafka cluster: embedded (3 KRaft nodes on loopback) or external."""

    model_config = SettingsConfigDict(env_prefix="FRAUDSTREAM_KAFKA_", frozen=True, extra="ignore")

    bootstrap_servers: str | None = Field(
        default=None, description="host:port list of an external cluster; unset means embedded."
    )
    host: str = "127.0.0.1"
    nodes: int = Field(default=3, ge=1, le=9)
    client_port: Port = Field(default=19092, description="Node i listens on client_port + i.")
    controller_port: Port = Field(default=19192, description="Node i: controller_port + i.")
    heap_mb: int = Field(default=512, ge=256, le=8192)
    partitions: int = Field(default=6, ge=1, le=1000)
    replication_factor: int = Field(default=3, ge=1)
    min_insync_replicas: int = Field(default=2, ge=1)
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: Path | None = Field(
        default=None, description="PEM file of the cluster CA (Strimzi: the cluster CA Secret)."
    )

    @model_validator(mode="after")
    def _consistent(self) -> KafkaSettings:
        if self.bootstrap_servers is None and self.replication_factor > self.nodes:
            raise ValueError(
                f"replication_factor={self.replication_factor} needs at least that many nodes, "
                f"but FRAUDSTREAM_KAFKA_NODES={self.nodes}"
            )
        if self.min_insync_replicas > self.replication_factor:
            raise ValueError(
                f"min_insync_replicas={self.min_insync_replicas} cannot exceed "
                f"replication_factor={self.replication_factor}"
            )
        if self.controller_port in range(self.client_port, self.client_port + self.nodes):
            raise ValueError("FRAUDSTREAM_KAFKA_CONTROLLER_PORT overlaps the client ports")
        if self.security_protocol.startswith("SASL") and not (
            self.sasl_mechanism and self.sasl_username and self.sasl_password
        ):
            raise ValueError(
                f"security_protocol={self.security_protocol} needs "
                "FRAUDSTREAM_KAFKA_SASL_MECHANISM, FRAUDSTREAM_KAFKA_SASL_USERNAME and "
                "FRAUDSTREAM_KAFKA_SASL_PASSWORD"
            )
        return self

    def client_security(self) -> dict[str, str]:
        """librdkafka security properties for every client (empty for PLAINTEXT)."""
        config: dict[str, str] = {"security.protocol": self.security_protocol}
        if self.sasl_mechanism and self.sasl_username and self.sasl_password:
            config["sasl.mechanism"] = self.sasl_mechanism
            config["sasl.username"] = self.sasl_username
            config["sasl.password"] = self.sasl_password.get_secret_value()
        if self.ssl_ca_location:
            config["ssl.ca.location"] = str(self.ssl_ca_location)
        return config

    @property
    def embedded(self) -> bool:
        return self.bootstrap_servers is None

    def node_client_port(self, node_id: int) -> int:
        """Client port of embedded node ``node_id`` (1-based)."""
        return self.client_port + node_id - 1

    def node_controller_port(self, node_id: int) -> int:
        return self.controller_port + node_id - 1

    @property
    def bootstrap(self) -> str:
        if self.bootstrap_servers:
            return self.bootstrap_servers
        return ",".join(f"{self.host}:{self.node_client_port(i)}" for i in range(1, self.nodes + 1))


class PostgresSettings(BaseSettings):
    """PostgreSQL: the platform database ``fraud`` and MLflow's backend store."""

    model_config = SettingsConfigDict(
        env_prefix="FRAUDSTREAM_POSTGRES_", frozen=True, extra="ignore"
    )

    host: str = "127.0.0.1"
    port: Port = 15432
    database: str = Field(default="fraud", pattern=r"^[a-z_][a-z0-9_]*$")
    mlflow_database: str = Field(default="mlflow", pattern=r"^[a-z_][a-z0-9_]*$")
    user: str = Field(default="fraudstream", pattern=r"^[a-z_][a-z0-9_]*$")
    password: SecretStr | None = None
    bin_dir: Path | None = Field(
        default=None,
        description="Directory with initdb and postgres; found automatically if unset.",
    )

    def dsn(self, database: str | None = None) -> str:
        """libpq connection string; the password is included, so never log it."""
        pw = self.password.get_secret_value() if self.password else ""
        return (
            f"host={self.host} port={self.port} dbname={database or self.database} "
            f"user={self.user} password={pw} connect_timeout=5"
        )

    def url(self, database: str | None = None, driver: str = "postgresql") -> str:
        pw = self.password.get_secret_value() if self.password else ""
        return f"{driver}://{self.user}:{pw}@{self.host}:{self.port}/{database or self.database}"

    def redacted_dsn(self) -> str:
        return f"postgresql://{self.user}:***@{self.host}:{self.port}/{self.database}"


class S3Settings(BaseSettings):
    """Object storage through the generic S3 API (MinIO locally; any S3 server works)."""

    model_config = SettingsConfigDict(env_prefix="FRAUDSTREAM_S3_", frozen=True, extra="ignore")

    endpoint_url: str | None = Field(default=None, description="Unset means the embedded MinIO.")
    host: str = "127.0.0.1"
    port: Port = 19000
    console_port: Port = 19001
    region: str = "us-east-1"
    path_style: bool = True
    access_key: SecretStr | None = None
    secret_key: SecretStr | None = None
    mlflow_bucket: str = Field(default="fraudstream-mlflow", pattern=r"^[a-z0-9][a-z0-9.-]{2,62}$")
    checkpoint_bucket: str = Field(
        default="fraudstream-checkpoints", pattern=r"^[a-z0-9][a-z0-9.-]{2,62}$"
    )
    dataset_bucket: str = Field(
        default="fraudstream-datasets", pattern=r"^[a-z0-9][a-z0-9.-]{2,62}$"
    )

    @property
    def embedded(self) -> bool:
        return self.endpoint_url is None

    @property
    def endpoint(self) -> str:
        return self.endpoint_url or f"http://{self.host}:{self.port}"

    @property
    def buckets(self) -> tuple[str, ...]:
        return (self.mlflow_bucket, self.checkpoint_bucket, self.dataset_bucket)

    def client_env(self) -> dict[str, str]:
        """Environment for S3 clients in child processes (MLflow, boto3, Spark)."""
        env = {"MLFLOW_S3_ENDPOINT_URL": self.endpoint, "AWS_DEFAULT_REGION": self.region}
        if self.access_key and self.secret_key:
            env["AWS_ACCESS_KEY_ID"] = self.access_key.get_secret_value()
            env["AWS_SECRET_ACCESS_KEY"] = self.secret_key.get_secret_value()
        return env


class MlflowSettings(BaseSettings):
    """The MLflow tracking server and model registry."""

    model_config = SettingsConfigDict(env_prefix="FRAUDSTREAM_MLFLOW_", frozen=True, extra="ignore")

    tracking_uri: str | None = Field(default=None, description="Unset means the embedded server.")
    host: str = "127.0.0.1"
    port: Port = 15000
    model_name: str = "fraud-detector"
    model_alias: str = Field(
        default="champion",
        pattern=r"^[A-Za-z][A-Za-z0-9_-]*$",
        description="Registry alias the scorer serves (hot-reloaded when it moves).",
    )
    workers: int = Field(default=1, ge=1, le=8)

    @property
    def embedded(self) -> bool:
        return self.tracking_uri is None

    @property
    def uri(self) -> str:
        return self.tracking_uri or f"http://{self.host}:{self.port}"


class SparkSettings(BaseSettings):
    """Spark as the scorer runs it locally (``local[*]``); on Kubernetes the operator sets these."""

    model_config = SettingsConfigDict(env_prefix="FRAUDSTREAM_SPARK_", frozen=True, extra="ignore")

    master: str = Field(default="local[2]", description="Spark master URL for local runs.")
    ui_port: Port = Field(default=18340, description="The Spark UI of the scorer's driver.")
    shuffle_partitions: int = Field(
        default=1,
        ge=1,
        le=4096,
        description="Partitions of the stateful stage (fixed per checkpoint: Spark keeps the "
        "value a checkpoint was created with).",
    )
    driver_memory: str = Field(default="1g", pattern=r"^[0-9]+[mg]$")


class RetentionSettings(BaseSettings):
    """The hot window: days each day-partitioned table keeps in PostgreSQL (older days are
    dropped whole by `fraudstream retention`; the Parquet lake keeps the history)."""

    model_config = SettingsConfigDict(
        env_prefix="FRAUDSTREAM_RETENTION_", frozen=True, extra="ignore"
    )

    transactions_raw_days: int = Field(
        default=35, ge=1, le=3650, description="Days of raw transactions kept (by event time)."
    )
    transactions_with_score_days: int = Field(
        default=35, ge=1, le=3650, description="Days of scored transactions kept."
    )
    fraud_alerts_days: int = Field(
        default=180,
        ge=1,
        le=3650,
        description="Days of alerts kept (analysts' verdicts on them arrive for weeks).",
    )
    partitions_ahead_days: int = Field(
        default=7,
        ge=1,
        le=366,
        description="Day partitions made in advance by `platform up`, the scorer's start and "
        "the retention job.",
    )

    def days(self, table: str) -> int:
        """The retention of a day-partitioned table, in days."""
        kept: int = getattr(self, f"{table}_days")
        return kept


class ScorerSettings(BaseSettings):
    """The streaming scorer: state layout, model reload, checkpoints, metrics."""

    model_config = SettingsConfigDict(env_prefix="FRAUDSTREAM_SCORER_", frozen=True, extra="ignore")

    metrics_port: Port = Field(default=18290, description="Prometheus endpoint of the driver.")
    buckets: int = Field(
        default=2,
        ge=1,
        le=65536,
        description="Card buckets: grouping keys of the stateful stage (fixed per checkpoint, "
        "recorded in it; 8 before it was recorded).",
    )
    card_state: Literal["packed", "per-card"] = Field(
        default="packed",
        description="How a bucket keeps its card states: packed in one value (faster up to "
        "about 50k cards) or one entry per card (cost per batch independent of the card "
        "count); a new checkpoint records it, an existing one keeps its own.",
    )
    decoded_cards: int = Field(
        default=20_000,
        ge=0,
        le=10_000_000,
        description="Decoded card states each Python worker keeps between micro-batches, so "
        "a card whose stored state it wrote itself is not decoded again (0: none; 2.5 KB "
        "each measured with 6-transaction histories, more with longer ones).",
    )
    reload_interval_s: float = Field(
        default=30.0, gt=0, description="How often the registry alias is polled for a new model."
    )
    checkpoint: str | None = Field(
        default=None,
        description="Checkpoint URI (s3a://, file://); unset means s3a://<checkpoint bucket>/"
        "checkpoints/scorer.",
    )
    trigger_s: float = Field(default=1.0, ge=0, description="Micro-batch trigger interval.")
    max_offsets_per_trigger: int | None = Field(
        default=None, ge=1, description="Cap on records per micro-batch (unset: everything new)."
    )
    labels_topic: str = Field(
        default="transaction_labels",
        min_length=1,
        description="Topic of fraud verdicts the merchant stage reads (merchant-risk features).",
    )
    merchant_delay_s: float = Field(
        default=0.0,
        ge=0,
        le=7 * 86_400,
        description="Event-time delay of the merchant order rule: a merchant bucket scores a "
        "transaction once it has seen an event this much later (0: in the batch that brings it); "
        "merchant features are exact while partitions' skew stays under it (docs/scorer.md).",
    )
    merchant_release_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="Seconds without input after which a merchant bucket scores what the order "
        "rule holds back (the tail of the stream).",
    )
    label_links: bool = Field(
        default=True,
        description="Keep a link from every transaction to its merchant in the merchant state, "
        "so labels that name only their transaction reach their merchant. Set false when every "
        "label source sends its transaction's merchant_id and event_time (the project's feeds "
        "and the API's verdicts do): the merchant stage then skips a state write per "
        "transaction, and a label without them counts only if its transaction arrives after it.",
    )
    shadow: bool = Field(default=False, description="Also score with the challenger, never alert.")
    parquet: bool = Field(default=True, description="Write scored rows as Parquet to S3.")
    online_store: bool = Field(
        default=True,
        description="Publish each batch's card and merchant states to the online store (Redis).",
    )
    retry_budget_s: float = Field(
        default=60.0,
        ge=0,
        le=3600,
        description="Seconds a write or read waits out an unreachable dependency (PostgreSQL, "
        "the object store, Redis, Kafka, the registry), retrying with backoff, before its "
        "micro-batch fails (0: no retry).",
    )
    max_restarts: int = Field(
        default=10,
        ge=0,
        le=1000,
        description="Restarts of a failed streaming query in a row (without a micro-batch "
        "finishing in between) before `fraudstream score` gives up and exits.",
    )
    restart_backoff_max_s: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="Longest wait before restarting a failed query (the waits double from 1 s).",
    )


class AirflowSettings(BaseSettings):
    """Airflow 3 in the embedded platform: off unless enabled (``platform up --with-airflow``).

    It runs from its own virtualenv (``make airflow-venv``) with the LocalExecutor and its
    metadata in the platform's PostgreSQL. The admin password and the JWT secret its
    components share are generated into credentials.json in local mode.
    """

    model_config = SettingsConfigDict(
        env_prefix="FRAUDSTREAM_AIRFLOW_", frozen=True, extra="ignore"
    )

    enabled: bool = Field(default=False, description="Start Airflow with the platform.")
    host: str = "127.0.0.1"
    port: Port = Field(default=18180, description="The API server and UI.")
    database: str = Field(default="airflow", pattern=r"^[a-z_][a-z0-9_]*$")
    admin_user: str = Field(default="admin", pattern=r"^[a-z_][a-z0-9_]*$")
    admin_password: SecretStr | None = None
    jwt_secret: SecretStr | None = None
    venv: Path = Field(
        default_factory=lambda: _repo_root() / ".venv-airflow",
        description="Airflow's own virtualenv (make airflow-venv).",
    )
    dags_folder: Path = Field(
        default_factory=lambda: _repo_root() / "dags", description="The DAG files Airflow parses."
    )
    parallelism: int = Field(default=2, ge=1, le=64, description="Tasks running at once.")

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def required_secrets(self) -> tuple[SecretStr, SecretStr]:
        """The admin password and the JWT secret; running Airflow needs both (local mode
        generates them)."""
        if self.admin_password is None or self.jwt_secret is None:
            raise SettingsError(
                "FRAUDSTREAM_AIRFLOW_ADMIN_PASSWORD and FRAUDSTREAM_AIRFLOW_JWT_SECRET must be "
                "set to run Airflow outside local mode; generated credentials are for local "
                "mode only"
            )
        return self.admin_password, self.jwt_secret


_SECRET_FIELDS = {
    "postgres_password": 24,
    "s3_access_key": 12,
    "s3_secret_key": 32,
    "redis_password": 32,
    "api_token": 32,
    "api_read_token": 32,
    "airflow_admin_password": 16,
    "airflow_jwt_secret": 48,
}


def _local_credentials(home: Path) -> dict[str, str]:
    """Development credentials for the embedded platform, generated once.

    Kept beside the platform state with mode 0600; `platform reset` removes them
    together with the data they protect.
    """
    path = home / "credentials.json"
    stored: dict[str, str] = {}
    if path.is_file():
        stored = json.loads(path.read_text())
    missing = {k: n for k, n in _SECRET_FIELDS.items() if k not in stored}
    if missing:
        for key, nbytes in missing.items():
            token = secrets.token_hex(nbytes // 2)
            stored[key] = f"fs{token}" if key == "s3_access_key" else token
        home.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(stored, indent=2))
        tmp.chmod(0o600)
        tmp.replace(path)
    return stored


class RedisSettings(BaseSettings):
    """The online store (Redis): the latest feature state of every card and merchant.

    Embedded locally (``redis-server`` started by the platform); on Kubernetes a
    Redis release, or any Redis 6+ reached by host, port, password and database.
    """

    model_config = SettingsConfigDict(env_prefix="FRAUDSTREAM_REDIS_", frozen=True, extra="ignore")

    host: str = "127.0.0.1"
    port: Port = 16379
    password: SecretStr | None = None
    db: int = Field(default=0, ge=0, le=15)
    key_prefix: str = Field(
        default="fs", pattern=r"^[A-Za-z0-9_.-]+$", description="Prefix of every key written."
    )
    maxmemory_mb: int = Field(
        default=256, ge=16, description="Memory cap of the embedded server (LRU eviction)."
    )
    timeout_s: float = Field(default=2.0, gt=0, description="Socket timeout of every call.")

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/{self.db}"


class ApiSettings(BaseSettings):
    """The API and dashboard (`fraudstream serve`)."""

    model_config = SettingsConfigDict(env_prefix="FRAUDSTREAM_API_", frozen=True, extra="ignore")

    host: str = "127.0.0.1"
    port: Port = 18100
    token: SecretStr | None = Field(
        default=None,
        description="Bearer token of the writer role: every endpoint, verdicts included.",
    )
    read_token: SecretStr | None = Field(
        default=None,
        description="Bearer token of the read-only analyst role: every endpoint but the writes "
        "(unset outside local mode: no analyst role).",
    )
    model_alias: str = Field(
        default="champion",
        pattern=r"^[A-Za-z][A-Za-z0-9_-]*$",
        description="Registry alias POST /score serves.",
    )
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Worker processes of `fraudstream serve`, each with its own model and "
        "connections: one per core the API may use.",
    )
    max_in_flight: int = Field(
        default=16,
        ge=1,
        le=10_000,
        description="Requests one worker handles at once; it refuses more with 503 and "
        "Retry-After. Bounds the queueing delay to about this many decisions (docs/api.md).",
    )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def required_token(self) -> SecretStr:
        """The writer's token; the API refuses to start without one (local mode generates it)."""
        if self.token is None:
            raise SettingsError(
                "FRAUDSTREAM_API_TOKEN must be set to serve the API outside local mode "
                "(from a Kubernetes Secret); generated credentials are for local mode only"
            )
        return self.token


def _service_secrets(
    platform: PlatformSettings, redis: RedisSettings, api: ApiSettings, airflow: AirflowSettings
) -> tuple[RedisSettings, ApiSettings, AirflowSettings]:
    """Fill the Redis password, the API tokens and Airflow's secrets from the local credentials.

    Outside local mode they stay as given: only the commands that use them require them
    (``ApiSettings.required_token`` for `fraudstream serve`, ``AirflowSettings.required_secrets``
    for the embedded Airflow), so a training pod needs no API token, and a Redis without a
    password is reachable.
    """
    if platform.mode != "local":
        return redis, api, airflow
    creds = _local_credentials(platform.home)
    redis = redis.model_copy(
        update={"password": redis.password or SecretStr(creds["redis_password"])}
    )
    api = api.model_copy(
        update={
            "token": api.token or SecretStr(creds["api_token"]),
            "read_token": api.read_token or SecretStr(creds["api_read_token"]),
        }
    )
    airflow = airflow.model_copy(
        update={
            "admin_password": airflow.admin_password or SecretStr(creds["airflow_admin_password"]),
            "jwt_secret": airflow.jwt_secret or SecretStr(creds["airflow_jwt_secret"]),
        }
    )
    return redis, api, airflow


@dataclass(frozen=True)
class Settings:
    """Every system's settings, with secrets resolved for the current mode."""

    platform: PlatformSettings
    kafka: KafkaSettings
    postgres: PostgresSettings
    s3: S3Settings
    mlflow: MlflowSettings
    redis: RedisSettings
    api: ApiSettings
    scorer: ScorerSettings
    spark: SparkSettings
    airflow: AirflowSettings
    retention: RetentionSettings

    @cached_property
    def log_dir(self) -> Path:
        return self.platform.home / "logs"

    def connection_info(self) -> dict[str, Any]:
        """Connection settings for scripts; secrets are left out."""
        return {
            "kafka_bootstrap_servers": self.kafka.bootstrap,
            "postgres_dsn": self.postgres.redacted_dsn(),
            "s3_endpoint": self.s3.endpoint,
            "mlflow_tracking_uri": self.mlflow.uri,
            "state_dir": str(self.platform.home),
        }


class SettingsError(RuntimeError):
    """Settings could not be built; the message names the variable to fix."""


def _describe(exc: ValidationError, prefix: str) -> str:
    lines = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "(settings)"
        var = f"{prefix}{field}".upper() if err["loc"] else prefix.rstrip("_")
        lines.append(f"{var}: {err['msg']} (got {err.get('input')!r})")
    return "; ".join(lines)


_S = TypeVar("_S", bound=BaseSettings)


def _build(cls: type[_S]) -> _S:
    """One settings class from the environment; a bad value is a SettingsError naming it."""
    try:
        return cls()
    except ValidationError as exc:
        raise SettingsError(_describe(exc, str(cls.model_config.get("env_prefix", "")))) from None


def load_settings() -> Settings:
    """Build every system's settings from the environment and, in local mode, the credentials
    file: the one place a program gets its settings, so a bad value anywhere fails at start.

    Raises SettingsError with a readable message instead of a pydantic traceback.
    """
    platform = _build(PlatformSettings)
    kafka = _build(KafkaSettings)
    postgres, s3 = _with_secrets(platform, _build(PostgresSettings), _build(S3Settings))
    mlflow = _build(MlflowSettings)
    redis, api, airflow = _service_secrets(
        platform, _build(RedisSettings), _build(ApiSettings), _build(AirflowSettings)
    )
    return Settings(
        platform=platform,
        kafka=kafka,
        postgres=postgres,
        s3=s3,
        mlflow=mlflow,
        redis=redis,
        api=api,
        scorer=_build(ScorerSettings),
        spark=_build(SparkSettings),
        airflow=airflow,
        retention=_build(RetentionSettings),
    )


def _with_secrets(
    platform: PlatformSettings, postgres: PostgresSettings, s3: S3Settings
) -> tuple[PostgresSettings, S3Settings]:
    needed = {
        "postgres_password": (postgres.password, "FRAUDSTREAM_POSTGRES_PASSWORD"),
        "s3_access_key": (s3.access_key, "FRAUDSTREAM_S3_ACCESS_KEY"),
        "s3_secret_key": (s3.secret_key, "FRAUDSTREAM_S3_SECRET_KEY"),
    }
    missing = [var for value, var in needed.values() if value is None]
    if not missing:
        return postgres, s3
    if platform.mode != "local":
        raise SettingsError(
            f"{', '.join(missing)} must be set in {platform.mode} mode "
            "(from a Kubernetes Secret); generated credentials are for local mode only"
        )
    creds = _local_credentials(platform.home)
    postgres = postgres.model_copy(
        update={"password": postgres.password or SecretStr(creds["postgres_password"])}
    )
    s3 = s3.model_copy(
        update={
            "access_key": s3.access_key or SecretStr(creds["s3_access_key"]),
            "secret_key": s3.secret_key or SecretStr(creds["s3_secret_key"]),
        }
    )
    return postgres, s3
