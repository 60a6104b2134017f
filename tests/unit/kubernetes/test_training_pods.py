"""What Airflow's training pods need on Kubernetes, checked against the names the DAGs use
(dags/fraudstream_dags): the platform chart's service account, ConfigMap, Secrets and network
policy, the Role that lets Airflow launch them, the Airflow values that switch the DAGs to pods,
and the Secrets a kind cluster gets."""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from typing import Any

import pytest
import yaml

from .test_delivery import skaffold_configs
from .toolchain import NAMESPACE, OPERATORS, REPO, THIRD_PARTY, Toolchain, load_all, load_file

Obj = dict[str, Any]
DAG_PACKAGE = REPO / "dags" / "fraudstream_dags"


def pod_defaults() -> Any:
    """dags/fraudstream_dags/config.py's PodDefaults (the module imports only the stdlib)."""
    name = "fraudstream_dags_config_under_test"
    spec = importlib.util.spec_from_file_location(name, DAG_PACKAGE / "config.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module.PodDefaults()


def pod_labels() -> dict[str, str]:
    """The labels tasks.py gives every training pod (a literal in its KubernetesPodOperator)."""
    tree = ast.parse((DAG_PACKAGE / "tasks.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "KubernetesPodOperator":
            for keyword in node.keywords:
                if keyword.arg == "labels":
                    labels: dict[str, str] = ast.literal_eval(keyword.value)
                    return labels
    raise AssertionError("no KubernetesPodOperator(labels=...) in tasks.py")


def by_kind(objects: list[Obj], kind: str) -> dict[str, Obj]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def secret_references(objects: list[Obj]) -> dict[str, set[str]]:
    """Secret name -> keys, for every secretKeyRef and secret volume of the rendered objects."""
    found: dict[str, set[str]] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "secretKeyRef" in node:
                ref = node["secretKeyRef"]
                found.setdefault(ref["name"], set()).add(ref["key"])
            if "secretName" in node:
                items = node.get("items") or []
                found.setdefault(node["secretName"], set()).update(i["key"] for i in items)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(objects)
    return found


@pytest.mark.parametrize("scenario", ["default", "kind", "staging"])
def test_the_platform_chart_provides_what_training_pods_use(
    rendered_objects: dict[str, list[Obj]], scenario: str
) -> None:
    pods = pod_defaults()
    objects = rendered_objects[scenario]
    assert pods.namespace == NAMESPACE
    account = by_kind(objects, "ServiceAccount")[pods.service_account]
    assert account["automountServiceAccountToken"] is False
    assert pods.config_map in by_kind(objects, "ConfigMap")
    secrets = secret_references(objects)
    assert pods.kafka_ca_secret in secrets
    assert {"username", "password"} <= secrets[pods.postgres_secret]
    assert {pods.s3_access_key_key, pods.s3_secret_key_key} <= secrets[pods.s3_secret]


def test_the_trainer_has_a_kafka_user() -> None:
    users = by_kind(load_file(OPERATORS / "strimzi-kafka.yaml"), "KafkaUser")
    assert pod_defaults().kafka_user in users


def test_airflow_may_launch_training_pods(rendered_objects: dict[str, list[Obj]]) -> None:
    objects = rendered_objects["default"]
    (role,) = [
        r for r in by_kind(objects, "Role").values() if "pod-launcher" in r["metadata"]["name"]
    ]
    grants = {
        (res, verb) for rule in role["rules"] for res in rule["resources"] for verb in rule["verbs"]
    }
    for verb in ("create", "get", "list", "watch", "delete"):
        assert ("pods", verb) in grants
    assert ("pods/log", "get") in grants
    (binding,) = [
        b
        for b in by_kind(objects, "RoleBinding").values()
        if b["roleRef"]["name"] == role["metadata"]["name"]
    ]
    subjects = {s["name"] for s in binding["subjects"] if s["namespace"] == NAMESPACE}
    airflow = yaml.safe_load((THIRD_PARTY / "airflow.yaml").read_text())
    accounts = {airflow[c]["serviceAccount"]["name"] for c in ("workers", "scheduler", "triggerer")}
    assert accounts <= subjects


def test_the_trainer_network_policy_selects_the_training_pods(
    rendered_objects: dict[str, list[Obj]],
) -> None:
    policy = by_kind(rendered_objects["default"], "NetworkPolicy")["fraud-platform-trainer"]
    selector = policy["spec"]["podSelector"]["matchLabels"]
    assert selector.items() <= pod_labels().items()
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}


def test_airflow_runs_the_dags_as_pods_of_the_built_trainer_image() -> None:
    airflow = yaml.safe_load((THIRD_PARTY / "airflow.yaml").read_text())
    env = {e["name"]: e["value"] for e in airflow["env"]}
    env |= {e["name"]: e["value"] for e in yaml.safe_load(airflow["extraEnv"])}
    assert env["FRAUDSTREAM_MODE"] == "kubernetes"
    assert env["FRAUDSTREAM_TRAINER_IMAGE"].startswith("fraudstream/trainer:")
    read_by_dags = set(
        re.findall(r'_env\("(FRAUDSTREAM_\w+)"', (DAG_PACKAGE / "config.py").read_text())
    )
    assert set(env) <= read_by_dags
    # skaffold replaces the list with the image it built: env[0] must stay the trainer image.
    releases = skaffold_configs()["platform"]["deploy"]["helm"]["releases"]
    templates = next(r for r in releases if r["name"] == "airflow")["setValueTemplates"]
    assert airflow["env"][0]["name"] == templates["env[0].name"] == "FRAUDSTREAM_TRAINER_IMAGE"
    assert "IMAGE_FULLY_QUALIFIED_fraudstream_trainer" in templates["env[0].value"]


def kind_secrets(profile: str = "online") -> dict[str, set[str]]:
    """Secret name -> keys that scripts/kind-secrets.sh creates for a profile (the offline block
    adds the Secrets the operators make in the online profile). A name built in a loop is
    expanded over the loop's words."""
    text = (REPO / "scripts" / "kind-secrets.sh").read_text().replace("\\\n", " ")
    found: dict[str, set[str]] = {}
    offline, loop = False, []
    for line in text.splitlines():
        words = line.split()
        if line.startswith("if [[ $PROFILE == offline ]]"):
            offline = True
        elif offline and line.startswith("fi"):
            offline = False
        if offline and profile != "offline":
            continue
        if words[:1] == ["for"] and "in" in words:
            loop = [w.rstrip(";") for w in words[words.index("in") + 1 :] if w != "do"]
        if words[:1] == ["ensure"] and len(words) > 3:
            keys = {w.strip('"').split("=", 1)[0] for w in words[3:]}
            names = loop if words[2].startswith('"$') else [words[2]]
            found.update(dict.fromkeys(names, keys))
    return found


def test_kind_gets_every_secret_the_charts_reference(
    rendered_objects: dict[str, list[Obj]], store_objects: dict[str, list[Obj]]
) -> None:
    """On kind, a Secret comes from scripts/kind-secrets.sh, a Strimzi KafkaUser or cluster CA,
    or CloudNativePG's app user; each referenced key must be in it."""
    strimzi = load_file(OPERATORS / "strimzi-kafka.yaml")
    (kafka,) = by_kind(strimzi, "Kafka").values()
    operator_made = {user: {"password"} for user in by_kind(strimzi, "KafkaUser")}
    operator_made[f"{kafka['metadata']['name']}-cluster-ca-cert"] = {"ca.crt"}
    for cluster in by_kind(load_file(OPERATORS / "postgres.yaml"), "Cluster"):
        operator_made[f"{cluster}-app"] = {"username", "password"}
    # A name both created here and by an operator would be overwritten by one of them.
    assert set(kind_secrets()) & set(operator_made) == set()
    available = kind_secrets() | operator_made
    referenced = secret_references(rendered_objects["kind"] + store_objects["kind"])
    missing = {
        name: sorted(keys - available.get(name, set()))
        for name, keys in referenced.items()
        if keys - available.get(name, set())
    }
    assert missing == {}
    pods = pod_defaults()
    assert {pods.s3_access_key_key, pods.s3_secret_key_key} <= available[pods.s3_secret]


def test_the_offline_profile_gets_every_secret_its_charts_reference(
    chain: Toolchain, rendered_objects: dict[str, list[Obj]], store_objects: dict[str, list[Obj]]
) -> None:
    """Offline, no Strimzi operator writes the Kafka users' Secrets: kind-secrets.sh's offline
    profile makes them; CloudNativePG runs in both profiles and writes its app user's."""
    stack = load_all(chain.render(REPO / "charts" / "offline-stack", release="offline-stack"))
    referenced = secret_references(
        rendered_objects["kind-offline"] + store_objects["kind-offline"] + stack
    )
    cloudnative_pg = {
        f"{cluster}-app": {"username", "password"}
        for cluster in by_kind(load_file(OPERATORS / "postgres.yaml"), "Cluster")
    }
    assert set(kind_secrets("offline")) & set(cloudnative_pg) == set()
    available = kind_secrets("offline") | cloudnative_pg
    missing = {
        name: sorted(keys - available.get(name, set()))
        for name, keys in referenced.items()
        if keys - available.get(name, set())
    }
    assert missing == {}
    assert "fraudstream-postgres-app" not in kind_secrets("online")
