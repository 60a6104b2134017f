"""How the platform reaches a cluster: skaffold.yaml against its schema, kind-config.yaml,
the pinned third-party releases, and the Dockerfiles (no Docker here: they are parsed)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from .dockerfile import Dockerfile, dockerfile_violations
from .toolchain import OPERATORS, REPO, THIRD_PARTY, Toolchain, load_file, pin

DOCKERFILES = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "images").glob("*/Dockerfile"))


def skaffold_configs() -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in load_file(REPO / "skaffold.yaml")}


def skaffold_errors(chain: Toolchain, config: dict[str, Any]) -> list[str]:
    # Validate against the config definition itself (the root is an anyOf of one), so that each
    # error names its field.
    schema = json.loads(chain.skaffold_schema.read_text())
    schema = {"$ref": "#/definitions/SkaffoldConfig", "definitions": schema["definitions"]}
    validator = jsonschema.Draft7Validator(schema)
    return [f"{e.json_path}: {e.message}" for e in validator.iter_errors(config)]


def test_skaffold_configs_match_the_schema(chain: Toolchain) -> None:
    configs = skaffold_configs()
    assert list(configs) == ["namespaces", "operators", "data", "platform"]
    for config in configs.values():
        assert skaffold_errors(chain, config) == []


def test_a_broken_skaffold_config_is_rejected(chain: Toolchain) -> None:
    platform = skaffold_configs()["platform"]
    platform["deploy"]["helm"]["releases"][0]["chartVersion"] = "1.0"
    platform["build"]["local"]["push"] = "no"
    errors = " ".join(skaffold_errors(chain, platform))
    assert "chartVersion" in errors
    assert "$.build:" in errors


def test_skaffold_schema_version_is_the_pinned_one() -> None:
    assert {c["apiVersion"] for c in skaffold_configs().values()} == {
        f"skaffold/{pin('SKAFFOLD_SCHEMA')}"
    }


def test_configs_run_in_dependency_order() -> None:
    configs = skaffold_configs()
    order = list(configs)
    for position, (name, config) in enumerate(configs.items()):
        for requirement in config.get("requires", []):
            for needed in requirement["configs"]:
                assert order.index(needed) < position, f"{name} requires {needed} later"


def artifacts() -> dict[str, dict[str, Any]]:
    """skaffold's image artifacts: short image name -> its docker settings."""
    built = skaffold_configs()["platform"]["build"]["artifacts"]
    return {a["image"].removeprefix("fraudstream/"): a["docker"] for a in built}


def test_an_artifact_for_every_image_of_the_issue() -> None:
    images = {"scorer", "trainer", "api", "generator", "airflow", "mlflow"}
    assert set(artifacts()) == images


def test_every_artifact_builds_a_target_of_its_dockerfile() -> None:
    for image, docker in artifacts().items():
        targets = Dockerfile.parse(REPO / docker["dockerfile"]).targets()
        target = docker.get("target")
        if target is None:
            assert len(targets) == 1, f"{image}: {docker['dockerfile']} has targets {targets}"
        else:
            assert target in targets, f"{image}: no target {target} in {docker['dockerfile']}"
    used = {docker["dockerfile"] for docker in artifacts().values()}
    assert used == set(DOCKERFILES)


def test_built_images_reach_the_releases() -> None:
    releases = skaffold_configs()["platform"]["deploy"]["helm"]["releases"]
    templates = " ".join(str(r.get("setValueTemplates", {})) for r in releases)
    for image in artifacts():
        assert f"fraudstream_{image}" in templates, f"no release uses the {image} image"


def test_skaffold_installs_the_pinned_third_party_releases() -> None:
    pinned = yaml.safe_load((THIRD_PARTY / "releases.yaml").read_text())["releases"]
    installed = {
        r["name"]: r
        for config in skaffold_configs().values()
        for r in config.get("deploy", {}).get("helm", {}).get("releases", [])
    }
    for release in pinned:
        got = installed[release["name"]]
        assert got["version"] == release["version"]
        assert got["namespace"] == release["namespace"]
        assert got["remoteChart"].endswith(release["chart"])
        assert got["valuesFiles"] == [f"charts/third-party/{release['values']}"]


def test_raw_manifests_exist() -> None:
    for config in skaffold_configs().values():
        for path in config.get("manifests", {}).get("rawYaml", []):
            assert (REPO / path).is_file()


def test_port_forwards_for_the_uis() -> None:
    forwards = {f["resourceName"] for f in skaffold_configs()["platform"]["portForward"]}
    assert forwards == {
        "airflow-api-server",
        "fraudstream-mlflow",
        "fraud-platform-api",
        "kube-prometheus-stack-grafana",
    }


def test_kind_has_three_zoned_workers_and_the_kafka_node_ports() -> None:
    kind = yaml.safe_load((REPO / "kind-config.yaml").read_text())
    roles = [n["role"] for n in kind["nodes"]]
    assert roles == ["control-plane", "worker", "worker", "worker"]
    zones = {n["labels"]["topology.kubernetes.io/zone"] for n in kind["nodes"][1:]}
    assert len(zones) == 3
    mapped = {m["hostPort"] for m in kind["nodes"][0]["extraPortMappings"]}
    (kafka,) = [d for d in load_file(OPERATORS / "strimzi-kafka.yaml") if d["kind"] == "Kafka"]
    (external,) = [
        item for item in kafka["spec"]["kafka"]["listeners"] if item["type"] == "nodeport"
    ]
    config = external["configuration"]
    ports = {config["bootstrap"]["nodePort"]} | {b["nodePort"] for b in config["brokers"]}
    assert ports <= mapped


def test_kind_maps_the_api_node_port(rendered_objects: dict[str, list[dict[str, Any]]]) -> None:
    kind = yaml.safe_load((REPO / "kind-config.yaml").read_text())
    mapped = {m["containerPort"] for m in kind["nodes"][0]["extraPortMappings"]}
    (service,) = [o for o in rendered_objects["kind"] if o["kind"] == "Service"]
    assert service["spec"]["type"] == "NodePort"
    assert {p["nodePort"] for p in service["spec"]["ports"]} <= mapped


@pytest.mark.parametrize("path", sorted(THIRD_PARTY.glob("*.yaml")), ids=lambda p: p.name)
def test_third_party_values_pin_images_and_avoid_bitnami(path: Path) -> None:
    text = path.read_text()
    assert "bitnami" not in text.lower()
    values = yaml.safe_load(text)
    for key, value in _walk(values):
        if key == "tag":
            assert re.match(r"^[\w.-]*[0-9][\w.-]*$", str(value)), f"{path.name}: tag {value!r}"


def test_every_third_party_values_file_is_a_release() -> None:
    pinned = yaml.safe_load((THIRD_PARTY / "releases.yaml").read_text())["releases"]
    files = {p.name for p in THIRD_PARTY.glob("*.yaml")} - {"releases.yaml"}
    assert {r["values"] for r in pinned} == files


def test_airflow_uses_the_kubernetes_executor_without_bundled_postgres() -> None:
    values = yaml.safe_load((THIRD_PARTY / "airflow.yaml").read_text())
    assert values["executor"] == "KubernetesExecutor"
    assert values["postgresql"]["enabled"] is False
    assert values["dags"]["gitSync"]["enabled"] is False
    assert values["airflowVersion"].startswith("3.")


def _walk(node: Any, key: str = "") -> list[tuple[str, Any]]:
    if isinstance(node, dict):
        return [pair for k, v in node.items() for pair in _walk(v, str(k))]
    if isinstance(node, list):
        return [pair for item in node for pair in _walk(item, key)]
    return [(key, node)]


@pytest.mark.parametrize("path", DOCKERFILES)
def test_dockerfiles_follow_the_image_rules(path: str) -> None:
    assert dockerfile_violations(Dockerfile.parse(REPO / path)) == []


@pytest.mark.parametrize("path", DOCKERFILES)
def test_hadolint_finds_nothing(chain: Toolchain, path: str) -> None:
    assert chain.lint_dockerfile((REPO / path).read_text()) == []


def test_hadolint_rejects_a_broken_dockerfile(chain: Toolchain) -> None:
    text = (REPO / "images" / "python" / "Dockerfile").read_text()
    broken = text.replace("FROM ${PYTHON_IMAGE} AS deps", "FROM python:latest AS deps").replace(
        "--no-cache-dir ", ""
    )
    findings = " ".join(chain.lint_dockerfile(broken))
    assert "DL3007" in findings  # latest tag
    assert "DL3042" in findings  # pip cache kept in the image


@pytest.mark.parametrize("path", DOCKERFILES)
def test_the_build_context_holds_only_what_the_dockerfile_copies(path: str) -> None:
    # The context is the repository root (with .venv and platform state): each Dockerfile has
    # an allow-list beside it, and everything it copies must be allowed.
    ignore = (REPO / f"{path}.dockerignore").read_text().splitlines()
    rules = [line for line in ignore if line and not line.startswith("#")]
    assert rules[0] == "*"
    allowed = [rule[1:] for rule in rules if rule.startswith("!")]
    for source in Dockerfile.parse(REPO / path).copy_sources():
        assert any(source.rstrip("/").startswith(a.rstrip("/")) for a in allowed), source


def test_dockerfile_copies_exist() -> None:
    for path in DOCKERFILES:
        for source in Dockerfile.parse(REPO / path).copy_sources():
            assert (REPO / source).exists(), f"{path}: COPY {source} does not exist"


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        (
            ("ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm\n", "ARG PYTHON_IMAGE=python\n"),
            "pinned",
        ),
        (
            ("USER 10001:10001\n\nFROM runtime AS api", "USER root\n\nFROM runtime AS api"),
            "target api runs as root",
        ),
        (('USER 10001:10001\nCMD ["train"]', 'CMD ["train"]'), "target trainer runs as root"),
        (("/dist/fraudstream-*.whl", "fraudstream"), "wheel"),
        (("RUN pip wheel --no-cache-dir --no-deps --wheel-dir /dist .\n", ""), "build the project"),
    ],
)
def test_a_broken_dockerfile_is_rejected(change: tuple[str, str], complaint: str) -> None:
    text = (REPO / "images" / "python" / "Dockerfile").read_text()
    assert change[0] in text
    broken = Dockerfile.from_text(text.replace(change[0], change[1]))
    assert any(complaint in v for v in dockerfile_violations(broken))


def test_a_single_stage_dockerfile_is_rejected() -> None:
    single = Dockerfile.from_text("FROM python:3.11.14-slim-bookworm\nUSER 10001\n")
    assert "not a multi-stage build" in dockerfile_violations(single)
