from __future__ import annotations

from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from fraudstream.settings import (
    KafkaSettings,
    PostgresSettings,
    SettingsError,
    load_settings,
)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FRAUDSTREAM_HOME", str(tmp_path / "state"))
    return tmp_path / "state"


def kubernetes_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment of a pod: Kubernetes mode with the Secrets every pod mounts."""
    monkeypatch.setenv("FRAUDSTREAM_MODE", "kubernetes")
    monkeypatch.setenv("FRAUDSTREAM_POSTGRES_PASSWORD", "from-a-secret")
    monkeypatch.setenv("FRAUDSTREAM_S3_ACCESS_KEY", "ak")
    monkeypatch.setenv("FRAUDSTREAM_S3_SECRET_KEY", "sk")


def test_local_defaults_need_no_configuration(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("FRAUDSTREAM_KAFKA_CLIENT_PORT", "FRAUDSTREAM_POSTGRES_PORT"):
        monkeypatch.delenv(var, raising=False)
    s = load_settings()
    assert s.kafka.bootstrap == "127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094"
    assert s.kafka.partitions == 6
    assert (s.kafka.replication_factor, s.kafka.min_insync_replicas) == (3, 2)
    assert s.postgres.database == "fraud"
    assert s.platform.home == home.resolve()
    assert s.postgres.password is not None
    assert len(s.postgres.password.get_secret_value()) >= 20


def test_generated_credentials_are_stable_and_private(home: Path) -> None:
    first = load_settings()
    second = load_settings()
    assert first.postgres.password == second.postgres.password
    assert first.s3.secret_key == second.s3.secret_key
    creds = home / "credentials.json"
    assert creds.stat().st_mode & 0o777 == 0o600


def test_every_port_can_be_overridden(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAUDSTREAM_KAFKA_CLIENT_PORT", "30092")
    monkeypatch.setenv("FRAUDSTREAM_KAFKA_CONTROLLER_PORT", "30192")
    monkeypatch.setenv("FRAUDSTREAM_POSTGRES_PORT", "30432")
    monkeypatch.setenv("FRAUDSTREAM_S3_PORT", "30000")
    monkeypatch.setenv("FRAUDSTREAM_MLFLOW_PORT", "30500")
    s = load_settings()
    assert s.kafka.bootstrap.split(",")[2] == "127.0.0.1:30094"
    assert s.kafka.node_controller_port(3) == 30194
    assert s.postgres.port == 30432
    assert s.s3.endpoint == "http://127.0.0.1:30000"
    assert s.mlflow.uri == "http://127.0.0.1:30500"


def test_external_systems_replace_embedded_ones(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FRAUDSTREAM_KAFKA_BOOTSTRAP_SERVERS", "kafka.example:9092")
    monkeypatch.setenv("FRAUDSTREAM_S3_ENDPOINT_URL", "https://s3.example")
    s = load_settings()
    assert s.kafka.bootstrap == "kafka.example:9092"
    assert not s.kafka.embedded
    assert s.s3.endpoint == "https://s3.example"


def test_bad_port_names_the_variable(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAUDSTREAM_POSTGRES_PORT", "80")
    with pytest.raises(SettingsError, match="FRAUDSTREAM_POSTGRES_PORT"):
        load_settings()


def test_non_numeric_value_is_a_clear_error(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAUDSTREAM_KAFKA_PARTITIONS", "many")
    with pytest.raises(SettingsError, match=r"FRAUDSTREAM_KAFKA_PARTITIONS.*integer"):
        load_settings()


def test_replication_cannot_exceed_nodes() -> None:
    with pytest.raises(ValueError, match="at least that many nodes"):
        KafkaSettings(nodes=1)


def test_min_insync_cannot_exceed_replication() -> None:
    with pytest.raises(ValueError, match="cannot exceed"):
        KafkaSettings(min_insync_replicas=4)


def test_secrets_are_required_outside_local_mode(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FRAUDSTREAM_MODE", "kubernetes")
    with pytest.raises(SettingsError, match="FRAUDSTREAM_POSTGRES_PASSWORD"):
        load_settings()
    assert not (home / "credentials.json").exists()


def test_secrets_from_environment_are_used_as_given(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kubernetes_mode(monkeypatch)
    s = load_settings()
    assert s.postgres.password is not None
    assert s.postgres.password.get_secret_value() == "from-a-secret"
    # Only the commands that use them need the Redis password and the API token.
    assert s.redis.password is None
    with pytest.raises(SettingsError, match="FRAUDSTREAM_API_TOKEN"):
        s.api.required_token()
    monkeypatch.setenv("FRAUDSTREAM_API_TOKEN", "tok")
    assert load_settings().api.required_token().get_secret_value() == "tok"


def test_settings_are_frozen() -> None:
    pg = PostgresSettings()
    with pytest.raises(ValueError, match="frozen"):
        pg.port = 1  # type: ignore[misc]


def test_connection_info_has_no_secrets(home: Path) -> None:
    s = load_settings()
    assert s.postgres.password is not None
    text = repr(s.connection_info())
    assert s.postgres.password.get_secret_value() not in text
    assert "***" in s.connection_info()["postgres_dsn"]


def test_sasl_needs_mechanism_user_and_password() -> None:
    with pytest.raises(ValueError, match="FRAUDSTREAM_KAFKA_SASL_USERNAME"):
        KafkaSettings(security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512")


def test_security_settings_reach_every_client_config() -> None:
    from fraudstream.adapters.kafka import consumer_config, producer_config

    k = KafkaSettings(
        bootstrap_servers="kafka:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="scorer",
        sasl_password="from-a-secret",  # type: ignore[arg-type]
        ssl_ca_location="/etc/kafka/ca.crt",  # type: ignore[arg-type]
    )
    for config in (producer_config(k), consumer_config(k, "g")):
        assert config["security.protocol"] == "SASL_SSL"
        assert config["sasl.username"] == "scorer"
        assert config["sasl.password"] == "from-a-secret"
        assert config["ssl.ca.location"] == "/etc/kafka/ca.crt"
    assert KafkaSettings().client_security() == {"security.protocol": "PLAINTEXT"}


def test_the_aggregate_holds_the_scorer_spark_and_airflow_settings(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FRAUDSTREAM_SCORER_BUCKETS", "16")
    monkeypatch.setenv("FRAUDSTREAM_SPARK_UI_PORT", "30340")
    monkeypatch.setenv("FRAUDSTREAM_AIRFLOW_PORT", "30180")
    s = load_settings()
    assert s.scorer.buckets == 16
    assert s.spark.ui_port == 30340
    assert s.airflow.url == "http://127.0.0.1:30180"
    # Local mode generates Airflow's secrets with the others.
    password, jwt = s.airflow.required_secrets()
    assert password != jwt
    assert load_settings().airflow.required_secrets() == (password, jwt)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("FRAUDSTREAM_SCORER_BUCKETS", "0"),
        ("FRAUDSTREAM_SCORER_CARD_STATE", "sideways"),
        ("FRAUDSTREAM_SPARK_DRIVER_MEMORY", "lots"),
        ("FRAUDSTREAM_SPARK_UI_PORT", "80"),
        ("FRAUDSTREAM_AIRFLOW_PARALLELISM", "0"),
        ("FRAUDSTREAM_API_MAX_IN_FLIGHT", "0"),
        ("FRAUDSTREAM_REDIS_DB", "99"),
    ],
)
def test_a_bad_value_of_any_system_is_one_line_naming_its_variable(
    home: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    message = str(raised.value)
    assert message.startswith(f"{variable}: ")
    assert f"(got {value!r})" in message
    assert "\n" not in message


def test_airflow_secrets_are_required_only_to_run_airflow_outside_local_mode(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kubernetes_mode(monkeypatch)
    s = load_settings()  # a scorer or training pod loads its settings without them
    assert s.airflow.admin_password is None
    with pytest.raises(SettingsError, match="FRAUDSTREAM_AIRFLOW_ADMIN_PASSWORD"):
        s.airflow.required_secrets()


def test_the_api_has_a_writer_and_a_read_only_token(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = load_settings()
    assert s.api.token is not None
    assert s.api.read_token is not None
    assert s.api.token != s.api.read_token
    assert load_settings().api.read_token == s.api.read_token  # stable, from credentials.json
    kubernetes_mode(monkeypatch)
    monkeypatch.setenv("FRAUDSTREAM_API_READ_TOKEN", "read-from-a-secret")
    outside = load_settings()
    assert outside.api.read_token is not None
    assert outside.api.read_token.get_secret_value() == "read-from-a-secret"


def test_only_the_settings_module_builds_settings_classes() -> None:
    """Programs get their settings from load_settings (validated once, errors as one line),
    never by building a settings class themselves."""
    import ast
    import inspect

    import fraudstream
    from fraudstream import settings as settings_module

    names = {
        name
        for name, cls in inspect.getmembers(settings_module, inspect.isclass)
        if issubclass(cls, BaseSettings) and cls.__module__ == settings_module.__name__
    }
    assert {"ScorerSettings", "SparkSettings", "AirflowSettings", "ApiSettings"} <= names
    package = Path(fraudstream.__file__).parent
    found = []
    for path in sorted(package.rglob("*.py")):
        if path.name == "settings.py" and path.parent == package:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if name in names:
                    found.append(f"{path.relative_to(package)}:{node.lineno} {name}()")
    assert found == []
