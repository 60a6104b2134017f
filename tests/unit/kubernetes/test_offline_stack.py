"""charts/offline-stack: the offline profile's own Kafka, MinIO, MLflow and Airflow render to valid
objects that meet the restricted Pod Security Standard, and carry the names and users the platform
chart's offline values expect. PostgreSQL is CloudNativePG's in both profiles."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from .policy import all_violations
from .toolchain import REPO, Toolchain, load_all

Obj = dict[str, Any]
STACK = REPO / "charts" / "offline-stack"


@pytest.fixture(scope="module")
def rendered(chain: Toolchain) -> str:
    return chain.render(STACK, release="offline-stack")


@pytest.fixture(scope="module")
def objects(rendered: str) -> list[Obj]:
    return load_all(rendered)


def by_name(objects: list[Obj], kind: str) -> dict[str, Obj]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def test_the_objects_validate_and_meet_the_restricted_policy(
    chain: Toolchain, rendered: str, objects: list[Obj]
) -> None:
    count, problems = chain.validate(rendered)
    assert problems == []
    assert count == len(objects) == 12
    assert [v for o in objects for v in all_violations(o)] == []


def test_the_services_have_the_names_the_platform_chart_uses(objects: list[Obj]) -> None:
    offline = yaml.safe_load(
        (REPO / "charts" / "fraud-platform" / "ci" / "kind-offline-values.yaml").read_text()
    )
    defaults = yaml.safe_load((REPO / "charts" / "fraud-platform" / "values.yaml").read_text())
    services = by_name(objects, "Service")
    host, port = offline["kafka"]["bootstrapServers"].split(":")
    assert int(port) in [p["port"] for p in services[host]["spec"]["ports"]]
    # PostgreSQL: the primary's Service and the pods' label CloudNativePG gives the cluster.
    (cluster,) = [
        d
        for d in yaml.safe_load_all((REPO / "operators" / "postgres.yaml").read_text())
        if d and d["kind"] == "Cluster"
    ]
    assert defaults["postgres"]["host"] == f"{cluster['metadata']['name']}-rw"
    assert "postgres" not in offline
    assert defaults["postgres"]["podSelector"] == {"cnpg.io/cluster": cluster["metadata"]["name"]}
    for url in (defaults["s3"]["endpointUrl"], defaults["mlflow"]["trackingUri"]):
        name, port = url.removeprefix("http://").split(":")
        assert int(port) in [p["port"] for p in services[name]["spec"]["ports"]]
    # The platform's network policies find the brokers and the database by these labels: the
    # selector Helm renders is the defaults merged with the profile's values, key by key.
    pods = {
        o["metadata"]["name"]: o["spec"]["template"]["metadata"]["labels"]
        for o in objects
        if o["kind"] == "StatefulSet"
    }
    selector = {**defaults["kafka"]["podSelector"], **offline["kafka"].get("podSelector", {})}
    assert selector.items() <= pods["fraudstream-kafka"].items(), selector


def test_kafka_is_a_quorum_of_three_with_a_user_per_platform_component(
    objects: list[Obj],
) -> None:
    kafka = by_name(objects, "StatefulSet")["fraudstream-kafka"]
    assert kafka["spec"]["replicas"] == 3
    assert kafka["spec"]["podManagementPolicy"] == "Parallel"
    (container,) = kafka["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["CONTROLLERS"] == "3"
    assert env["KAFKA_REPLICATION_FACTOR"] == "3"
    assert env["KAFKA_MIN_ISR"] == "2"
    users = {m["mountPath"].rsplit("/", 1)[1] for m in container["volumeMounts"]
             if m["mountPath"].startswith("/etc/kafka-users/")}  # fmt: skip
    platform = yaml.safe_load((REPO / "charts" / "fraud-platform" / "values.yaml").read_text())
    wanted = {platform[k]["kafkaUser"] for k in ("scorer", "api", "generator", "labelIngest")}
    assert wanted | {"fraudstream-trainer"} == users


def test_airflow_runs_the_dags_as_training_pods_with_a_launcher_identity(
    objects: list[Obj],
) -> None:
    """The DAGs are parsed in kubernetes mode (tasks are pods of the platform's trainer image, no
    Kafka CA on a listener without TLS), under a service account the platform chart lets create
    pods, and every component shares one home (the API server serves the tasks' logs)."""
    platform = yaml.safe_load((REPO / "charts" / "fraud-platform" / "values.yaml").read_text())
    pod = by_name(objects, "Deployment")["fraudstream-airflow"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] in platform["trainer"]["launchers"]
    assert [c["name"] for c in pod["containers"]] == ["api-server", "scheduler", "dag-processor"]
    (migrate,) = pod["initContainers"]
    assert migrate["args"][-1].endswith("exec airflow db migrate")
    for container in pod["initContainers"] + pod["containers"]:
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["FRAUDSTREAM_MODE"] == "kubernetes"
        assert env["FRAUDSTREAM_TRAINER_KAFKA_CA_SECRET"] == ""
        assert env["FRAUDSTREAM_TRAINER_IMAGE"].startswith("localhost:5001/fraudstream/trainer:")
        assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
        assert (env["FRAUDSTREAM_RETRAIN_CANDIDATES"], env["FRAUDSTREAM_RETRAIN_SMOTE"]) == (
            "4",
            "false",
        )
        secrets = {e["name"] for e in container["env"] if "valueFrom" in e}
        assert secrets == {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__API_AUTH__JWT_SECRET"}
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert mounts["home"] == env["AIRFLOW_HOME"]
