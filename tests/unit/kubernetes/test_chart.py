"""The fraud-platform chart: lint, render and schema validation for every scenario, the values
schema rejecting bad values, the objects the issue asks for, and each main value where it
renders."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from .policy import all_violations
from .toolchain import CHART, HelmError, Toolchain, load_all, pin, scenarios

SCENARIOS = sorted(scenarios())
STANDARD_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
    "helm.sh/chart",
)


def test_scenarios_include_kind_and_staging() -> None:
    assert {"default", "kind", "staging"} <= set(SCENARIOS)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_helm_lint_strict(chain: Toolchain, scenario: str) -> None:
    out = chain.lint(CHART, scenarios()[scenario])
    assert "0 chart(s) failed" in out


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_rendered_object_is_valid(
    chain: Toolchain, renders: dict[str, str], scenario: str
) -> None:
    count, problems = chain.validate(renders[scenario])
    assert problems == []
    assert count >= 15


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_rendered_objects_pass_the_policies(
    rendered_objects: dict[str, list[dict[str, Any]]], scenario: str
) -> None:
    violations = [v for obj in rendered_objects[scenario] for v in all_violations(obj)]
    assert violations == []


def test_the_default_render_has_every_part_of_the_issue(
    rendered_objects: dict[str, list[dict[str, Any]]],
) -> None:
    kinds = Counter(obj["kind"] for obj in rendered_objects["default"])
    assert kinds["SparkApplication"] == 1
    assert kinds["Deployment"] == 3  # API, generator, label ingestion
    assert kinds["PodDisruptionBudget"] == 3
    assert kinds["HorizontalPodAutoscaler"] == 1  # the API's, on CPU
    assert kinds["NetworkPolicy"] >= 3
    assert kinds["ServiceMonitor"] >= 1
    assert kinds["PodMonitor"] >= 1
    assert kinds["PrometheusRule"] == 1
    assert kinds["ConfigMap"] == 2  # settings and Grafana dashboards
    assert kinds["Pod"] == 1  # the helm test pod
    assert "Secret" not in kinds  # secrets are referenced, never shipped


def test_the_retention_reaches_every_workload_through_the_settings(
    rendered_objects: dict[str, list[dict[str, Any]]],
) -> None:
    (env,) = [
        obj["data"]
        for obj in rendered_objects["default"]
        if obj["kind"] == "ConfigMap" and obj["metadata"]["name"].endswith("-env")
    ]
    assert env["FRAUDSTREAM_RETENTION_TRANSACTIONS_WITH_SCORE_DAYS"] == "35"
    assert env["FRAUDSTREAM_RETENTION_FRAUD_ALERTS_DAYS"] == "180"
    assert env["FRAUDSTREAM_RETENTION_PARTITIONS_AHEAD_DAYS"] == "7"


def test_standard_labels_everywhere(rendered_objects: dict[str, list[dict[str, Any]]]) -> None:
    for obj in rendered_objects["default"]:
        labels = obj["metadata"].get("labels", {})
        missing = [key for key in STANDARD_LABELS if key not in labels]
        assert missing == [], f"{obj['kind']}/{obj['metadata']['name']} lacks {missing}"


def test_scorer_is_a_restarting_stream_with_s3a_checkpoints(
    rendered_objects: dict[str, list[dict[str, Any]]],
) -> None:
    (app,) = [o for o in rendered_objects["default"] if o["kind"] == "SparkApplication"]
    spec = app["spec"]
    assert app["apiVersion"] == "sparkoperator.k8s.io/v1beta2"
    assert spec["restartPolicy"]["type"] == "Always"
    checkpoint = spec["arguments"][spec["arguments"].index("--checkpoint") + 1]
    assert checkpoint.startswith("s3a://")
    assert "deps" not in spec  # jars are baked into the image, nothing fetched at start
    assert spec["monitoring"]["exposeDriverMetrics"] is True
    assert spec["sparkConf"]["spark.hadoop.fs.s3a.path.style.access"] == "true"


def test_default_deny_then_allow(rendered_objects: dict[str, list[dict[str, Any]]]) -> None:
    policies = {
        o["metadata"]["name"]: o["spec"]
        for o in rendered_objects["default"]
        if o["kind"] == "NetworkPolicy"
    }
    deny = policies["fraud-platform-default-deny"]
    assert set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny
    assert "egress" not in deny


def test_secret_values_never_in_the_chart(renders: dict[str, str]) -> None:
    for text in renders.values():
        assert "kind: Secret\n" not in text
        assert "password:" not in text.lower()


def test_staging_pins_images_by_digest(rendered_objects: dict[str, list[dict[str, Any]]]) -> None:
    images = [
        c["image"]
        for o in rendered_objects["staging"]
        if o["kind"] == "Deployment"
        for c in o["spec"]["template"]["spec"]["containers"]
    ]
    assert images
    assert all("@sha256:" in image for image in images)


def test_notes_name_the_next_commands(chain: Toolchain, tmp_path: Path) -> None:
    # helm renders NOTES.txt only on install; render it through `tpl` in a copy of the chart.
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    shutil.copy(CHART / "templates" / "NOTES.txt", chart / "files" / "notes.txt")
    (chart / "templates" / "zz-notes.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\n"
        'data:\n  notes: {{ tpl (.Files.Get "files/notes.txt") . | quote }}\n'
    )
    rendered = chain.render(chart, [], api_versions=())
    (notes,) = [o for o in load_all(rendered) if o["metadata"]["name"] == "notes"]
    for command in (
        "helm test",
        "port-forward",
        "scale kafkanodepool",
        "patch sparkapplication",
        "get hpa",
    ):
        assert command in notes["data"]["notes"]


def test_every_value_is_documented() -> None:
    lines = (CHART / "values.yaml").read_text().splitlines()
    top_level = [i for i, line in enumerate(lines) if line and line[0].isalpha()]
    undocumented = [lines[i] for i in top_level if not lines[i - 1].startswith("#")]
    assert undocumented == []


@pytest.mark.parametrize(
    ("override", "complaint"),
    [
        ("images.api.tag=latest", "/images/api/tag"),
        ("api.replicass=2", "replicass"),
        ("kafka.port=99999", "/kafka/port"),
        ("scorer.sparkVersion=3.5.0", "/scorer/sparkVersion"),
        ("s3.endpointUrl=minio:9000", "/s3/endpointUrl"),
        ("api.workers=0", "/api/workers"),
        ("api.maxInFlight=0", "/api/maxInFlight"),
        ("api.autoscaling.targetCPUUtilizationPercentage=150", "/api/autoscaling"),
        ("api.autoscaling.minReplica=1", "minReplica"),
        ("postgres.retention.fraudAlertsDays=0", "/postgres/retention/fraudAlertsDays"),
    ],
)
def test_the_values_schema_rejects_broken_values(
    chain: Toolchain, override: str, complaint: str
) -> None:
    with pytest.raises(HelmError, match=complaint):
        chain.render(CHART, [], override)


def test_a_broken_manifest_is_rejected_by_validation(
    chain: Toolchain, renders: dict[str, str]
) -> None:
    # The generator's Deployment (the API's count is its autoscaler's).
    broken = renders["default"].replace("  replicas: 1\n", '  replicas: "one"\n', 1)
    broken = broken.replace("    type: Always\n", "    type: Often\n")
    assert broken != renders["default"]
    _, problems = chain.validate(broken)
    assert any("Deployment" in p and "replicas" in p for p in problems)
    assert any("SparkApplication" in p for p in problems)


def _api(objects: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The API's Deployment and the autoscalers of a render."""
    (deployment,) = [
        o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"].endswith("-api")
    ]
    return deployment, [o for o in objects if o["kind"] == "HorizontalPodAutoscaler"]


def test_the_api_runs_workers_per_pod_with_a_core_each_and_an_autoscaler(
    rendered_objects: dict[str, list[dict[str, Any]]],
) -> None:
    deployment, (autoscaler,) = _api(rendered_objects["default"])
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    assert args[args.index("--workers") + 1] == "2"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["FRAUDSTREAM_API_MAX_IN_FLIGHT"] == "16"
    assert container["resources"]["limits"]["cpu"] == "2"  # one core per worker
    assert container["resources"]["requests"]["cpu"] == "2"
    assert "replicas" not in deployment["spec"]  # the autoscaler's to set
    spec = autoscaler["spec"]
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert (spec["minReplicas"], spec["maxReplicas"]) == (2, 10)
    (metric,) = spec["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"] == {"type": "Utilization", "averageUtilization": 60}


def test_without_the_autoscaler_the_api_keeps_its_replica_count(
    chain: Toolchain,
) -> None:
    objects = load_all(
        chain.render(
            CHART,
            [],
            "api.autoscaling.enabled=false,api.replicas=3,api.workers=4,api.maxInFlight=24",
        )
    )
    deployment, autoscalers = _api(objects)
    assert autoscalers == []
    assert deployment["spec"]["replicas"] == 3
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["args"][container["args"].index("--workers") + 1] == "4"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["FRAUDSTREAM_API_MAX_IN_FLIGHT"] == "24"


def test_the_api_reads_both_tokens_from_its_secret(chain: Toolchain) -> None:
    """Every endpoint but health and metrics needs a token: the writer's and the analyst's
    read-only one come from the keys the values name in api.existingSecret."""
    objects = load_all(
        chain.render(CHART, [], "api.existingSecret=api-tokens,api.tokenKey=w,api.readTokenKey=r")
    )
    deployment, _ = _api(objects)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    refs = {
        e["name"]: e["valueFrom"]["secretKeyRef"]
        for e in container["env"]
        if e["name"].startswith("FRAUDSTREAM_API_") and "valueFrom" in e
    }
    assert refs == {
        "FRAUDSTREAM_API_TOKEN": {"name": "api-tokens", "key": "w"},
        "FRAUDSTREAM_API_READ_TOKEN": {"name": "api-tokens", "key": "r"},
    }


def _secret_envs(obj: dict[str, Any]) -> dict[str, set[str]]:
    """Container (or SparkApplication role) name -> the env names it takes from Secrets."""
    if obj["kind"] == "SparkApplication":
        roles = {role: [obj["spec"][role]] for role in ("driver", "executor")}
    else:
        pod = obj["spec"]["template"]["spec"]
        roles = {c["name"]: [c] for c in pod.get("initContainers", []) + pod["containers"]}
    return {
        f"{obj['metadata']['name']}/{role}": {
            e["name"]
            for c in cs
            for e in c.get("env", [])
            if "secretKeyRef" in e.get("valueFrom", {})
        }
        for role, cs in roles.items()
    }


def test_each_workload_gets_only_the_secrets_it_uses(
    rendered_objects: dict[str, list[dict[str, Any]]],
) -> None:
    """The API's tokens go to the API alone, the Redis password to the API and the scorer
    (the only workloads the network policies let reach Redis); nothing else holds them."""
    held: dict[str, set[str]] = {}
    for obj in rendered_objects["default"]:
        if obj["kind"] in ("Deployment", "Job", "SparkApplication"):
            held.update(_secret_envs(obj))
    tokens = {"FRAUDSTREAM_API_TOKEN", "FRAUDSTREAM_API_READ_TOKEN"}
    redis = {"FRAUDSTREAM_REDIS_PASSWORD"}
    assert {name for name, envs in held.items() if envs & tokens} == {"fraud-platform-api/api"}
    assert {name for name, envs in held.items() if envs & redis} == {
        "fraud-platform-api/api",
        "fraud-platform-scorer/driver",
        "fraud-platform-scorer/executor",
    }
    # Every workload still reaches Kafka, PostgreSQL and S3 (init containers included).
    assert len(held) >= 8
    assert all("FRAUDSTREAM_POSTGRES_PASSWORD" in envs for envs in held.values())


def test_values_files_exist_for_each_scenario() -> None:
    for files in scenarios().values():
        assert all(Path(f).is_file() for f in files)


def test_the_values_schema_closes_every_object() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    closable = [(path, node) for path, node in _objects(schema, "$") if "properties" in node]
    assert len(closable) > 10
    leaky = [path for path, node in closable if node.get("additionalProperties") is not False]
    assert leaky == []


def _objects(node: Any, path: str) -> list[tuple[str, dict[str, Any]]]:
    if not isinstance(node, dict):
        return []
    found = [(path, node)] if node.get("type") == "object" else []
    for key, child in node.get("properties", {}).items():
        found += _objects(child, f"{path}.{key}")
    return found


def test_the_tools_are_the_pinned_versions(chain: Toolchain) -> None:
    assert chain.helm.resolve().name == f"helm-{pin('HELM_VERSION')}"
    assert chain.kubeconform.resolve().name == f"kubeconform-{pin('KUBECONFORM_VERSION')}"
    assert chain.hadolint.resolve().name == f"hadolint-{pin('HADOLINT_VERSION')}"


# -- value level: set one value, find it where the chart renders it ----------------------------

Path_ = tuple[str | int, ...]
"""A path into a rendered object: keys, list indexes, and ``"name=X"`` for the element of a
list (env, containers) whose ``name`` is X."""

SCORER = ("SparkApplication", "fraud-platform-scorer")
API = ("Deployment", "fraud-platform-api")

VALUE_CASES: list[tuple[str, tuple[str, str], Path_, Any]] = [
    ("scorer.executor.instances=5", SCORER, ("spec", "executor", "instances"), 5),
    ("scorer.executor.cores=3", SCORER, ("spec", "executor", "cores"), 3),
    ("scorer.executor.memory=4g", SCORER, ("spec", "executor", "memory"), "4g"),
    ("scorer.driver.memory=3g", SCORER, ("spec", "driver", "memory"), "3g"),
    (
        "scorer.merchantDelaySeconds=7",
        SCORER,
        ("spec", "driver", "env", "name=FRAUDSTREAM_SCORER_MERCHANT_DELAY_S", "value"),
        "7",
    ),
    (
        "scorer.labelLinks=false",
        SCORER,
        ("spec", "driver", "env", "name=FRAUDSTREAM_SCORER_LABEL_LINKS", "value"),
        "false",
    ),
    (
        "scorer.statePartitions=16",
        SCORER,
        ("spec", "driver", "env", "name=FRAUDSTREAM_SPARK_SHUFFLE_PARTITIONS", "value"),
        "16",
    ),
    (
        "scorer.buckets=64",
        SCORER,
        ("spec", "driver", "env", "name=FRAUDSTREAM_SCORER_BUCKETS", "value"),
        "64",
    ),
    ("images.scorer.tag=1.2.3", SCORER, ("spec", "image"), "fraudstream/scorer:1.2.3"),
    (
        "images.api.tag=1.2.3",
        API,
        ("spec", "template", "spec", "containers", 0, "image"),
        "fraudstream/api:1.2.3",
    ),
    (
        "api.resources.limits.memory=2Gi",
        API,
        ("spec", "template", "spec", "containers", 0, "resources", "limits", "memory"),
        "2Gi",
    ),
    (
        "generator.resources.requests.cpu=250m",
        ("Deployment", "fraud-platform-generator"),
        ("spec", "template", "spec", "containers", 0, "resources", "requests", "cpu"),
        "250m",
    ),
    (
        "labelIngest.replicas=3",
        ("Deployment", "fraud-platform-label-ingest"),
        ("spec", "replicas"),
        3,
    ),
    (
        "api.autoscaling.maxReplicas=7",
        ("HorizontalPodAutoscaler", "fraud-platform-api"),
        ("spec", "maxReplicas"),
        7,
    ),
    (
        "postgres.existingSecret=pg-creds",
        API,
        (
            "spec",
            "template",
            "spec",
            "containers",
            0,
            "env",
            "name=FRAUDSTREAM_POSTGRES_PASSWORD",
            "valueFrom",
            "secretKeyRef",
            "name",
        ),
        "pg-creds",
    ),
    (
        "s3.existingSecret=s3-keys",
        SCORER,
        (
            "spec",
            "executor",
            "env",
            "name=FRAUDSTREAM_S3_ACCESS_KEY",
            "valueFrom",
            "secretKeyRef",
            "name",
        ),
        "s3-keys",
    ),
    (
        "redis.existingSecret=redis-pw",
        SCORER,
        (
            "spec",
            "driver",
            "env",
            "name=FRAUDSTREAM_REDIS_PASSWORD",
            "valueFrom",
            "secretKeyRef",
            "name",
        ),
        "redis-pw",
    ),
]


def _find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{len(found)} {kind} named {name} in the render"
    return found[0]


def _at(node: Any, path: Path_) -> Any:
    for step in path:
        if isinstance(step, str) and "=" in step:
            key, _, wanted = step.partition("=")
            matches = [item for item in node if item.get(key) == wanted]
            assert len(matches) == 1, f"{len(matches)} elements with {step}"
            node = matches[0]
        else:
            node = node[step]
    return node


@pytest.mark.parametrize(
    ("setting", "target", "path", "expected"), VALUE_CASES, ids=[c[0] for c in VALUE_CASES]
)
def test_a_value_reaches_its_rendered_path(
    chain: Toolchain,
    rendered_objects: dict[str, list[dict[str, Any]]],
    setting: str,
    target: tuple[str, str],
    path: Path_,
    expected: Any,
) -> None:
    """``helm template --set`` one value: the object it configures carries it at ``path``, and
    the default render does not (so the value, not the default, put it there)."""
    default = _at(_find(rendered_objects["default"], *target), path)
    assert default != expected, f"{setting} is the default: the case proves nothing"
    objects = load_all(chain.render(CHART, [], setting))
    assert _at(_find(objects, *target), path) == expected
