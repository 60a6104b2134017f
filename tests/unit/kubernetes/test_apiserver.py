"""Every rendered object accepted by a real kube-apiserver (etcd behind it), CRDs installed:
a server-side dry run with strict field validation. It checks what offline schemas cannot: CRD
validation rules (CEL), defaulting, admission, and Pod Security warnings for the namespace."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .apiserver import ApiServer, running
from .toolchain import OPERATORS, Toolchain, load_all, load_file

Obj = dict[str, Any]


@pytest.fixture(scope="module")
def server(chain: Toolchain, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    etcd = shutil.which("etcd")
    if etcd is None:
        pytest.skip("etcd is not installed (Debian: apt-get install etcd-server)")
    if not chain.kube_apiserver.exists():
        pytest.skip(f"{chain.kube_apiserver} is not built: K8S_APISERVER=1 make k8s-tools")
    with running(chain.kube_apiserver, Path(etcd), tmp_path_factory.mktemp("apiserver")) as srv:
        crds = [d for p in sorted(chain.crds.rglob("*.yaml")) for d in load_file(p)]
        srv.install_crds([d for d in crds if d["kind"] == "CustomResourceDefinition"])
        for path in sorted(OPERATORS.glob("*.yaml")):
            for ns in (d for d in load_file(path) if d["kind"] == "Namespace"):
                response = srv.create(ns, "", dry_run=False)
                assert response.status_code in (201, 409), response.text
        yield srv


def dry_run_failures(server: ApiServer, objects: list[Obj]) -> list[str]:
    """Objects the server rejects, and Pod Security warnings it returns for accepted ones."""
    failures = []
    for obj in objects:
        if obj["kind"] == "Namespace":
            continue
        response = server.create(obj, "fraudstream", dry_run=True)
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        if response.status_code not in (200, 201):
            failures.append(f"{name}: {response.status_code} {response.json().get('message')}")
        for warning in response.headers.get_list("warning"):
            if "PodSecurity" in warning:
                failures.append(f"{name}: {warning}")
    return failures


@pytest.mark.parametrize("scenario", ["default", "kind", "staging"])
def test_the_api_server_accepts_the_chart(
    server: ApiServer, rendered_objects: dict[str, list[Obj]], scenario: str
) -> None:
    assert dry_run_failures(server, rendered_objects[scenario]) == []


@pytest.mark.parametrize("scenario", ["default", "kind", "staging"])
def test_the_api_server_accepts_the_online_store(
    server: ApiServer, store_objects: dict[str, list[Obj]], scenario: str
) -> None:
    assert dry_run_failures(server, store_objects[scenario]) == []


@pytest.mark.parametrize("name", sorted(p.name for p in OPERATORS.glob("*.yaml")))
def test_the_api_server_accepts_the_operators(server: ApiServer, name: str) -> None:
    objects = load_file(OPERATORS / name)
    assert dry_run_failures(server, objects) == []


def test_the_api_server_rejects_broken_objects(server: ApiServer, renders: dict[str, str]) -> None:
    deployment = next(o for o in load_all(renders["default"]) if o["kind"] == "Deployment")
    deployment["spec"]["replicas"] = "two"
    topic = next(
        o for o in load_file(OPERATORS / "strimzi-kafka.yaml") if o["kind"] == "KafkaTopic"
    )
    topic["spec"]["partitions"] = 0
    pool = next(
        o for o in load_file(OPERATORS / "strimzi-kafka.yaml") if o["kind"] == "KafkaNodePool"
    )
    pool["spec"]["roles"] = ["zookeeper"]
    insecure = next(o for o in load_all(renders["default"]) if o["kind"] == "Deployment")
    del insecure["spec"]["template"]["spec"]["containers"][0]["securityContext"]
    failures = dry_run_failures(server, [deployment, topic, pool, insecure])
    assert len(failures) == 4
    assert "replicas" in failures[0]
    assert "422" in failures[1]
    assert "roles" in failures[2]
    assert "PodSecurity" in failures[3]
