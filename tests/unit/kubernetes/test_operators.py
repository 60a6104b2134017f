"""operators/: Strimzi Kafka, node pools, topics and users; the Spark Operator install;
PostgreSQL on CloudNativePG. Schema-validated against the operators' own CRDs, drift-tested
against the package."""

from __future__ import annotations

from typing import Any

import pytest

from fraudstream.settings import KafkaSettings
from fraudstream.topics import ALL_TOPICS

from .policy import all_violations, strimzi_violations
from .toolchain import OPERATORS, Toolchain, load_file, spark_operator_render

MANIFESTS = sorted(p.name for p in OPERATORS.glob("*.yaml"))


def objects(name: str, kind: str | None = None) -> list[dict[str, Any]]:
    docs = load_file(OPERATORS / name)
    return [d for d in docs if kind is None or d["kind"] == kind]


@pytest.mark.parametrize("name", MANIFESTS)
def test_operator_manifests_are_valid(chain: Toolchain, name: str) -> None:
    count, problems = chain.validate((OPERATORS / name).read_text())
    assert problems == []
    assert count >= 1


@pytest.mark.parametrize("name", MANIFESTS)
def test_operator_manifests_pass_the_policies(name: str) -> None:
    violations = [v for obj in objects(name) for v in all_violations(obj)]
    assert violations == []


def test_a_kafka_topic_for_every_platform_topic() -> None:
    settings = KafkaSettings()
    topics = {
        t["spec"]["topicName"]: t["spec"] for t in objects("strimzi-kafka.yaml", "KafkaTopic")
    }
    assert sorted(topics) == sorted(t.name for t in ALL_TOPICS)
    for spec in ALL_TOPICS:
        declared = topics[spec.name]
        assert declared["replicas"] == settings.replication_factor
        assert declared["partitions"] == settings.partitions
        expected = spec.configs(settings.min_insync_replicas)
        assert {k: str(v) for k, v in declared["config"].items()} == expected


def test_separate_controller_and_broker_pools() -> None:
    pools = {
        p["metadata"]["name"]: p["spec"] for p in objects("strimzi-kafka.yaml", "KafkaNodePool")
    }
    assert pools["controllers"]["roles"] == ["controller"]
    assert pools["brokers"]["roles"] == ["broker"]
    assert pools["controllers"]["replicas"] == 3
    assert pools["brokers"]["replicas"] == 3


def test_kafka_durability_rack_awareness_and_listeners() -> None:
    (kafka,) = objects("strimzi-kafka.yaml", "Kafka")
    spec = kafka["spec"]["kafka"]
    assert spec["config"]["default.replication.factor"] == 3
    assert spec["config"]["min.insync.replicas"] == 2
    assert spec["rack"]["topologyKey"] == "topology.kubernetes.io/zone"
    listeners = {item["type"]: item for item in spec["listeners"]}
    assert listeners["internal"]["tls"] is True
    assert listeners["internal"]["authentication"]["type"] == "scram-sha-512"
    assert "nodeport" in listeners
    assert kafka["spec"]["kafkaExporter"]
    assert spec["metricsConfig"]["type"]


def test_every_user_acl_names_a_platform_topic() -> None:
    names = {t.name for t in ALL_TOPICS}
    users = objects("strimzi-kafka.yaml", "KafkaUser")
    assert {u["metadata"]["name"] for u in users} >= {
        "fraudstream-scorer",
        "fraudstream-api",
        "fraudstream-generator",
        "fraudstream-label-ingest",
        "fraudstream-trainer",
    }
    for user in users:
        for acl in user["spec"]["authorization"]["acls"]:
            if acl["resource"]["type"] == "topic":
                assert acl["resource"]["name"] in names


def test_strimzi_v1beta2_is_rejected(chain: Toolchain) -> None:
    text = (OPERATORS / "strimzi-kafka.yaml").read_text()
    old = text.replace(
        "apiVersion: kafka.strimzi.io/v1\n", "apiVersion: kafka.strimzi.io/v1beta2\n"
    )
    docs = load_file(OPERATORS / "strimzi-kafka.yaml")
    docs[0]["apiVersion"] = "kafka.strimzi.io/v1beta2"
    assert strimzi_violations(docs[0])
    _, problems = chain.validate(old)
    assert len(problems) == len(docs)


def test_an_unknown_kafka_field_is_rejected(chain: Toolchain) -> None:
    text = (OPERATORS / "strimzi-kafka.yaml").read_text()
    broken = text.replace("  partitions: 6\n", "  partitions: 6\n  partitionCount: 6\n", 1)
    _, problems = chain.validate(broken)
    assert len(problems) == 1
    assert "partitionCount" in problems[0]


def test_spark_operator_install_matches_its_pinned_chart(chain: Toolchain) -> None:
    committed = (OPERATORS / "spark-operator.yaml").read_text()
    generated = committed[committed.index("---\n# Source:") :]
    assert generated == spark_operator_render(chain), (
        "operators/spark-operator.yaml is stale: regenerate it with the command in its header"
    )


def test_spark_operator_watches_the_platform_namespace_with_its_webhook() -> None:
    docs = objects("spark-operator.yaml")
    kinds = {d["kind"] for d in docs}
    assert "MutatingWebhookConfiguration" in kinds
    (controller,) = [
        d
        for d in docs
        if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("controller")
    ]
    args = controller["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--namespaces=fraudstream" in args


def test_postgres_has_databases_for_the_platform_mlflow_and_airflow() -> None:
    (cluster,) = objects("postgres.yaml", "Cluster")
    databases = {cluster["spec"]["bootstrap"]["initdb"]["database"]}
    databases |= {d["spec"]["name"] for d in objects("postgres.yaml", "Database")}
    assert databases == {"fraud", "mlflow", "airflow"}
    assert cluster["spec"]["instances"] == 3
