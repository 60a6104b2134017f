"""The online-store chart (Redis): lint, render, schemas and policies for every scenario, the
password only by reference, the network policy admitting exactly the platform's clients, and the
two charts and skaffold agreeing on names, ports and order."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from .policy import all_violations
from .test_chart import STANDARD_LABELS, _objects
from .test_delivery import skaffold_configs, skaffold_errors
from .toolchain import ONLINE_STORE, HelmError, Toolchain, scenarios

Obj = dict[str, Any]
SCENARIOS = sorted(scenarios(ONLINE_STORE))


def one(objects: list[Obj], kind: str) -> Obj:
    (found,) = [o for o in objects if o["kind"] == kind]
    return found


def test_scenarios_include_kind_and_staging() -> None:
    assert {"default", "kind", "staging"} <= set(SCENARIOS)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_helm_lint_strict(chain: Toolchain, scenario: str) -> None:
    assert "0 chart(s) failed" in chain.lint(ONLINE_STORE, scenarios(ONLINE_STORE)[scenario])


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_rendered_object_is_valid_and_compliant(
    chain: Toolchain,
    store_renders: dict[str, str],
    store_objects: dict[str, list[Obj]],
    scenario: str,
) -> None:
    count, problems = chain.validate(store_renders[scenario])
    assert problems == []
    # 9 objects, 7 where the Prometheus Operator's monitor and rules are off (kind offline).
    assert count == len(store_objects[scenario]) >= (7 if scenario == "kind-offline" else 9)
    assert [v for o in store_objects[scenario] for v in all_violations(o)] == []


def test_the_parts_of_the_release(store_objects: dict[str, list[Obj]]) -> None:
    kinds = sorted(o["kind"] for o in store_objects["default"])
    assert kinds == sorted(
        [
            "ConfigMap",
            "StatefulSet",
            "PodDisruptionBudget",
            "Service",
            "Service",
            "NetworkPolicy",
            "PodMonitor",
            "PrometheusRule",
            "Pod",
        ]
    )
    for obj in store_objects["default"]:
        labels = obj["metadata"].get("labels", {})
        assert [k for k in STANDARD_LABELS if k not in labels] == [], obj["metadata"]["name"]


def test_redis_persists_on_a_claim_with_the_password_from_a_secret(
    store_objects: dict[str, list[Obj]], store_renders: dict[str, str]
) -> None:
    sts = one(store_objects["default"], "StatefulSet")
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    pod = sts["spec"]["template"]["spec"]
    redis, exporter = pod["containers"]
    assert {"name": "data", "mountPath": "/data"} in redis["volumeMounts"]
    assert claim["metadata"]["name"] == "data"
    assert redis["image"].startswith("redis:")
    assert "bitnami" not in store_renders["default"].lower()
    for container in (redis, exporter):
        secret_refs = [e for e in container["env"] if "valueFrom" in e]
        assert secret_refs
        assert all(
            e["valueFrom"]["secretKeyRef"] == {"name": "fraudstream-redis", "key": "password"}
            for e in secret_refs
        )
    assert "$(REDIS_PASSWORD)" in redis["args"]  # expanded by the kubelet, never in the chart
    conf = one(store_objects["default"], "ConfigMap")["data"]["redis.conf"]
    assert "appendonly yes" in conf
    assert "requirepass" not in conf
    assert all(o["kind"] != "Secret" for objs in store_objects.values() for o in objs)


def test_only_the_platform_clients_reach_redis(
    store_objects: dict[str, list[Obj]], rendered_objects: dict[str, list[Obj]]
) -> None:
    """The policy admits the pods of the platform release that use Redis, matched against the
    labels those pods really carry in the rendered platform chart, and nothing else."""
    policy = one(store_objects["default"], "NetworkPolicy")["spec"]
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    assert "egress" not in policy  # the server opens no connection
    redis_rule = policy["ingress"][0]
    allowed = [peer["podSelector"]["matchLabels"] for peer in redis_rule["from"]]
    assert redis_rule["ports"] == [{"protocol": "TCP", "port": 6379}]

    def admitted(labels: dict[str, str]) -> bool:
        return any(selector.items() <= labels.items() for selector in allowed)

    platform = rendered_objects["default"]
    deployments = {o["metadata"]["name"]: o for o in platform if o["kind"] == "Deployment"}
    api, generator = deployments["fraud-platform-api"], deployments["fraud-platform-generator"]
    app = one(platform, "SparkApplication")["spec"]
    assert admitted(api["spec"]["template"]["metadata"]["labels"])
    assert admitted(app["driver"]["labels"])
    assert admitted(app["executor"]["labels"])
    assert admitted(one(platform, "Pod")["metadata"]["labels"])  # the platform's helm test
    assert not admitted(generator["spec"]["template"]["metadata"]["labels"])


def test_the_platform_chart_points_at_the_store(
    store_objects: dict[str, list[Obj]], rendered_objects: dict[str, list[Obj]]
) -> None:
    store = store_objects["default"]
    service = next(o for o in store if o["kind"] == "Service" and "clusterIP" not in o["spec"])
    server_labels = one(store, "StatefulSet")["spec"]["template"]["metadata"]["labels"]
    platform = rendered_objects["default"]
    settings = next(o for o in platform if o["kind"] == "ConfigMap" and "data" in o)["data"]
    assert settings["FRAUDSTREAM_REDIS_HOST"] == service["metadata"]["name"]
    assert int(settings["FRAUDSTREAM_REDIS_PORT"]) == service["spec"]["ports"][0]["port"]
    policy = next(o for o in platform if o["metadata"]["name"] == "fraud-platform-online-store")
    (rule,) = policy["spec"]["egress"]
    selector = rule["to"][0]["podSelector"]["matchLabels"]
    assert selector.items() <= server_labels.items()
    assert rule["ports"][0]["port"] == service["spec"]["ports"][0]["port"]


@pytest.mark.parametrize(
    ("override", "complaint"),
    [
        ("images.redis.tag=latest", "/images/redis/tag"),
        ("redis.port=80", "/redis/port"),
        ("redis.maxmemory=1", "maxmemory"),
        ("persistence.size=lots", "/persistence/size"),
        ("redis.appendfsync=sometimes", "/redis/appendfsync"),
    ],
)
def test_the_values_schema_rejects_broken_values(
    chain: Toolchain, override: str, complaint: str
) -> None:
    with pytest.raises(HelmError, match=complaint):
        chain.render(ONLINE_STORE, [], override, release="online-store")


def test_the_values_schema_closes_every_object() -> None:
    schema = json.loads((ONLINE_STORE / "values.schema.json").read_text())
    closable = [(path, node) for path, node in _objects(schema, "$") if "properties" in node]
    assert len(closable) > 8
    assert [path for path, node in closable if node.get("additionalProperties") is not False] == []


def test_a_broken_statefulset_is_rejected(chain: Toolchain, store_renders: dict[str, str]) -> None:
    broken = store_renders["default"].replace("  replicas: 1\n", '  replicas: "one"\n', 1)
    assert broken != store_renders["default"]
    _, problems = chain.validate(broken)
    assert any("StatefulSet" in p and "replicas" in p for p in problems)


def apply_patches(config: Obj, patches: list[Obj]) -> Obj:
    """skaffold's profile patches (JSON Patch add, replace, remove on object and list paths)."""
    result = copy.deepcopy(config)
    for patch in patches:
        *parents, last = patch["path"].strip("/").split("/")
        node: Any = result
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        key: Any = int(last) if isinstance(node, list) else last
        if patch["op"] == "remove":
            del node[key]
        elif patch["op"] == "add" and isinstance(node, list):
            node.insert(key, patch["value"])
        else:
            node[key] = patch["value"]
    return result


def test_skaffold_installs_the_store_before_the_platform(chain: Toolchain) -> None:
    platform = skaffold_configs()["platform"]
    profiles = {p["name"]: p for p in platform["profiles"]}
    for name in ("base", "dev", "staging"):
        config = platform
        if name != "base":
            config = apply_patches(platform, profiles[name]["patches"])
            config.pop("profiles")
        assert skaffold_errors(chain, config) == [], name
        releases = {r["name"]: r for r in config["deploy"]["helm"]["releases"]}
        order = list(releases)
        assert order.index("online-store") < order.index("fraud-platform"), name
        assert releases["online-store"]["chartPath"] == "charts/online-store"
        store_values = releases["online-store"].get("valuesFiles", [])
        platform_values = releases["fraud-platform"]["valuesFiles"]
        if name == "dev":
            assert store_values == ["charts/online-store/ci/kind-values.yaml"]
            assert platform_values == ["charts/fraud-platform/ci/kind-values.yaml"]
        else:
            assert store_values == []
            assert platform_values == ["charts/fraud-platform/ci/staging-values.yaml"]
