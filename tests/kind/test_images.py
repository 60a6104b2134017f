"""Smoke checks of every image `make images` builds: each starts, its entrypoint answers, it runs as
a non-root user, and the files and jars it exists for are in it. `make images` runs this file
after building; elsewhere it is skipped when Docker or an image is missing."""

from __future__ import annotations

import os
import re
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from .conftest import docker_answers

VERSION = "0.1.0"
IMAGES = {
    "api": f"fraudstream/api:{VERSION}",
    "generator": f"fraudstream/generator:{VERSION}",
    "trainer": f"fraudstream/trainer:{VERSION}",
    "mlflow": f"fraudstream/mlflow:{VERSION}",
    "scorer": f"fraudstream/scorer:{VERSION}",
    "airflow": f"fraudstream/airflow:{VERSION}",
    "redis": "fraudstream/redis:7.0-bookworm",
    "redis-exporter": "fraudstream/redis-exporter:v1.74.0",
    "kafka": "fraudstream/kafka:4.4.0",
    "postgres": "fraudstream/postgres:15-bookworm",
    "minio": "fraudstream/minio:v0.0.0-20260212201848-7aac2a2c5b7c",
    "spark-operator": "fraudstream/spark-operator:2.5.2",
    "cloudnative-pg": "fraudstream/cloudnative-pg:1.28.0",
}
NO_SHELL = {"redis-exporter"}  # one static binary FROM scratch: nothing else to run in it
SCORER_JARS = (
    r"spark-sql-kafka-0-10_2\.13-4\.2\.0\.jar",
    r"spark-token-provider-kafka-0-10_2\.13-4\.2\.0\.jar",
    r"kafka-clients-[\d.]+\.jar",
    r"hadoop-aws-[\d.]+\.jar",
    r"jmx_prometheus_javaagent\.jar",
)


def run(
    image: str, *args: str, entrypoint: str | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    # No network, and a host name that resolves (Spark's logging asks for it).
    command = [
        "docker",
        "run",
        "--rm",
        "--network",
        "none",
        "--hostname",
        "smoke",
        "--add-host",
        "smoke:127.0.0.1",
    ]
    if entrypoint is not None:
        command += ["--entrypoint", entrypoint]
    return subprocess.run([*command, image, *args], capture_output=True, text=True, timeout=timeout)


def image(name: str) -> str:
    tag = IMAGES[name]
    wanted = os.environ.get("FRAUDSTREAM_TEST_IMAGES")
    if wanted is not None and tag not in wanted.split():
        pytest.skip(f"{tag} was not built in this run")
    if not docker_answers():
        pytest.skip("no Docker engine answers (make kind-up installs and starts one)")
    if subprocess.run(["docker", "image", "inspect", tag], capture_output=True).returncode:
        pytest.skip(f"{tag} is not built (make images)")
    return tag


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_runs_as_a_non_root_user(name: str) -> None:
    tag = image(name)
    user = subprocess.run(
        ["docker", "image", "inspect", "-f", "{{.Config.User}}", tag],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert user.split(":")[0] not in {"", "0", "root"}, f"{tag} runs as {user!r}"
    if name in NO_SHELL:
        return
    done = run(tag, "-u", entrypoint="id")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() != "0"


@pytest.mark.parametrize("name", ["api", "generator", "trainer"])
def test_the_cli_answers(name: str) -> None:
    done = run(image(name), "--help")
    assert done.returncode == 0, done.stderr
    assert "fraudstream" in done.stdout
    for command in ("serve", "generate", "train", "score"):
        assert command in done.stdout


def test_the_trainer_has_a_java_runtime_for_spark() -> None:
    done = run(image("trainer"), "-version", entrypoint="java")
    assert done.returncode == 0
    assert re.search(r'version "(17|21)\.', done.stderr), done.stderr


def test_the_mlflow_server_starts_and_answers_its_health_check() -> None:
    tag = image("mlflow")
    name = f"fraudstream-smoke-{uuid.uuid4().hex[:8]}"
    subprocess.run(
        [
            "docker",
            "run",
            "-d",
            "--rm",
            "--name",
            name,
            tag,
            "server",
            "--host",
            "0.0.0.0",  # noqa: S104 - inside the container, whose network is its own
            "--port",
            "5000",
            "--backend-store-uri",
            "sqlite:////tmp/mlflow.db",
            "--default-artifact-root",
            "/tmp/artifacts",  # noqa: S108 - the container's own /tmp, removed with it
        ],
        check=True,
        capture_output=True,
    )
    try:
        deadline, answer = time.monotonic() + 120, ""
        while time.monotonic() < deadline:
            probe = subprocess.run(
                [
                    "docker",
                    "exec",
                    name,
                    "python",
                    "-c",
                    "import urllib.request;"
                    "print(urllib.request.urlopen('http://127.0.0.1:5000/health').read().decode())",
                ],
                capture_output=True,
                text=True,
            )
            answer = probe.stdout.strip()
            if answer == "OK":
                break
            time.sleep(2)
        logs = subprocess.run(["docker", "logs", name], capture_output=True, text=True)
        assert answer == "OK", f"/health answered {answer!r}; logs:\n{logs.stderr[-2000:]}"
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)


def test_the_scorer_has_spark_its_jars_and_the_same_pyspark() -> None:
    tag = image("scorer")
    version = run(tag, "--version", entrypoint="/opt/spark/bin/spark-submit")
    assert version.returncode == 0, version.stderr
    assert "version 4.2.0" in version.stdout + version.stderr
    jars = run(tag, "/opt/spark/jars", entrypoint="ls").stdout.split()
    for pattern in SCORER_JARS:
        assert any(re.fullmatch(pattern, jar) for jar in jars), f"no jar matches {pattern}"
    python = run(
        tag, "-c", "import fraudstream, pyspark; print(pyspark.__version__)", entrypoint="python"
    )
    assert python.returncode == 0, python.stderr
    assert python.stdout.strip() == "4.2.0"


def test_the_scorer_runs_its_main_file_under_spark_submit() -> None:
    """The SparkApplication's entry: spark-submit runs the package CLI in the image's Python."""
    done = run(
        image("scorer"),
        "--master",
        "local[1]",
        "--conf",
        "spark.jars.ivy=/tmp/ivy",
        "/opt/fraudstream/score_stream.py",
        "--help",
        entrypoint="/opt/spark/bin/spark-submit",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "--checkpoint" in done.stdout


def test_airflow_loads_every_dag_without_import_errors() -> None:
    tag = image("airflow")
    version = run(tag, "version", entrypoint="airflow")
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip().splitlines()[-1].startswith("3.3.")
    script = (
        "import pathlib\n"
        "from airflow.dag_processing.dagbag import BundleDagBag\n"
        "folder = pathlib.Path('/opt/airflow/dags')\n"
        "bag = BundleDagBag(dag_folder=str(folder), bundle_path=folder)\n"
        "assert not bag.import_errors, bag.import_errors\n"
        "print(' '.join(sorted(bag.dag_ids)))\n"
    )
    done = run(tag, "-c", script, entrypoint="python")
    assert done.returncode == 0, done.stderr[-3000:]
    assert {"fraud_retrain", "fraud_monitor"} <= set(done.stdout.split())


def test_redis_starts_and_answers_ping() -> None:
    with detached(image("redis")) as name:
        assert answer_of(name, ["redis-cli", "ping"], "PONG", timeout=30) == "PONG"


def test_the_redis_exporter_answers() -> None:
    done = run(image("redis-exporter"), "--version")
    assert done.returncode == 0, done.stderr
    assert "1.74.0" in done.stdout + done.stderr


def started(name: str, until: str, timeout: float = 180) -> str:
    """The container's log once it holds `until` (fails with the log when it exits first)."""
    deadline, logs = time.monotonic() + timeout, ""
    while time.monotonic() < deadline:
        logs = subprocess.run(["docker", "logs", name], capture_output=True, text=True)
        text = logs.stdout + logs.stderr
        if until in text:
            return text
        state = subprocess.run(
            ["docker", "inspect", "-f", "{{.State.Running}}", name], capture_output=True, text=True
        ).stdout.strip()
        assert state == "true", f"{name} exited:\n{text[-3000:]}"
        time.sleep(1)
    raise AssertionError(f"no {until!r} after {timeout:.0f}s:\n{text[-3000:]}")


@contextmanager
def detached(tag: str, *options: str, command: Sequence[str] = ()) -> Iterator[str]:
    """A container of `tag` running in the background (docker run -d), removed afterwards."""
    name = f"fraudstream-smoke-{uuid.uuid4().hex[:8]}"
    subprocess.run(
        ["docker", "run", "-d", "--rm", "--name", name, *options, tag, *command],
        check=True,
        capture_output=True,
    )
    try:
        yield name
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)


def answer_of(name: str, argv: Sequence[str], wanted: str, timeout: float) -> str:
    """What `docker exec name argv` prints, asked again until it is `wanted` or time is up."""
    deadline, answer = time.monotonic() + timeout, ""
    while time.monotonic() < deadline and answer != wanted:
        done = subprocess.run(["docker", "exec", name, *argv], capture_output=True, text=True)
        answer = done.stdout.strip() or done.stderr.strip()
        time.sleep(0.5)
    return answer


def test_a_kafka_node_formats_its_storage_and_starts() -> None:
    # Pod kafka-0 of Service kafka-headless in namespace smoke, the only controller.
    host = "kafka-0.kafka-headless.smoke.svc"
    env = {
        "KAFKA_CLUSTER_ID": "DZymSkAsQw60RGT02hsa8g",
        "KAFKA_SERVICE": "kafka-headless",
        "POD_NAMESPACE": "smoke",
        "CONTROLLERS": "1",
        "KAFKA_REPLICATION_FACTOR": "1",
        "KAFKA_MIN_ISR": "1",
        "KAFKA_HEAP_MB": "256",
    }
    flags = [x for k, v in env.items() for x in ("-e", f"{k}={v}")]
    network = ["--network", "none", "--hostname", "kafka-0", "--add-host", f"{host}:127.0.0.1"]
    with detached(image("kafka"), *network, *flags) as name:
        logs = started(name, "Kafka Server started")
        assert "node 0 (broker,controller), voters 0@kafka-0.kafka-headless.smoke.svc:9093" in logs


def test_postgres_has_what_cloudnative_pg_runs_an_instance_with() -> None:
    # The operator runs initdb and PostgreSQL as the image's user, finds the programs on PATH and
    # reads the major version from the tag's leading number.
    tag = image("postgres")
    script = (
        "initdb -D /tmp/pgdata -U postgres --auth=trust >/dev/null && "
        "pg_ctl -D /tmp/pgdata -o \"-k /tmp -c listen_addresses=''\" -w start >/dev/null && "
        "psql -h /tmp -U postgres -tAc 'SHOW server_version_num' && id -un && "
        "for p in pg_controldata pg_basebackup pg_rewind; do command -v $p; done"
    )
    done = run(tag, "-c", script, entrypoint="/bin/bash", timeout=120)
    assert done.returncode == 0, done.stderr
    version_num, user, *programs = done.stdout.split()
    assert tag.split(":")[1].startswith(f"{int(version_num) // 10000}-")
    assert user == "postgres"
    assert [Path(p).name for p in programs] == ["pg_controldata", "pg_basebackup", "pg_rewind"]


def test_minio_answers_its_version() -> None:
    done = run(image("minio"), "--version")
    assert done.returncode == 0, done.stderr
    assert "minio version" in done.stdout.lower()


def test_the_spark_operator_has_its_controller_and_spark_submit() -> None:
    tag = image("spark-operator")
    done = run(tag, "--help")
    assert done.returncode == 0, done.stderr
    assert "controller" in done.stdout
    assert "webhook" in done.stdout
    done = run(tag, "--version", entrypoint="/opt/spark/bin/spark-submit")
    assert done.returncode == 0, done.stderr
    assert "4.2.0" in done.stdout + done.stderr


def test_the_cloudnative_pg_manager_serves_its_tag_and_copies_itself_into_a_pod() -> None:
    tag = image("cloudnative-pg")
    done = run(tag, "version")
    assert done.returncode == 0, done.stderr
    assert f"Version:{tag.split(':')[1]} " in done.stdout
    # The operator lists the architectures it serves from /operator/manager_<arch>.
    done = run(tag, "/operator", entrypoint="ls")
    assert done.returncode == 0, done.stderr
    (binary,) = done.stdout.split()
    assert binary.startswith("manager_")
    # Every PostgreSQL pod's init container: `manager bootstrap` copies the manager to a volume.
    done = run(
        tag, "-c", "/manager bootstrap /tmp/manager && /tmp/manager version", entrypoint="/bin/sh"
    )
    assert done.returncode == 0, done.stderr
    assert "Bootstrap completed" in done.stdout + done.stderr
