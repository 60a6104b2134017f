"""The kind tier: tests against the cluster of `make kind-up` and the images of `make images`.

They run wherever those exist and are skipped, with the reason, where they do not (CI has no
cluster): `make kind-up && make images && make test-kind`. Everything is found where the
scripts in scripts/kind put it, under the fraudstream cache.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fraudstream.settings import PlatformSettings

REPO = Path(__file__).resolve().parents[2]
CLUSTER = "fraudstream"


def kind_cache() -> Path:
    return PlatformSettings().cache_dir / "kind"


def docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


@dataclass(frozen=True)
class Cluster:
    """The running kind cluster, driven through the kubectl and helm the project built."""

    kubeconfig: Path
    kubectl_bin: Path
    helm_bin: Path

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        done = subprocess.run(
            [str(self.kubectl_bin), "--kubeconfig", str(self.kubeconfig), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout if done.returncode == 0 else done.stderr

    def json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json"))

    def apply(self, manifest: str, namespace: str) -> None:
        self.kubectl("-n", namespace, "apply", "-f", "-", stdin=manifest)

    def helm(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.helm_bin), "--kubeconfig", str(self.kubeconfig), *args],
            capture_output=True,
            text=True,
            timeout=600,
        )

    def node_images(self, node: str) -> set[str]:
        """The image names the node's containerd holds (what it pulled from the registry)."""
        done = subprocess.run(
            ["docker", "exec", node, "crictl", "images", "-o", "json"],
            capture_output=True,
            text=True,
            check=True,
        )
        return {tag for image in json.loads(done.stdout)["images"] for tag in image["repoTags"]}


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    cache = kind_cache()
    kubeconfig, kubectl = cache / "kubeconfig", cache / "bin" / "kubectl"
    if not kubeconfig.is_file() or not kubectl.is_file():
        pytest.skip(f"no kind cluster: {kubeconfig} is missing (make kind-up creates it)")
    probe = subprocess.run(
        [str(kubectl), "--kubeconfig", str(kubeconfig), "get", "--raw", "/readyz"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if probe.returncode != 0:
        pytest.skip(f"the kind cluster does not answer ({probe.stderr.strip()}); make kind-up")
    helm = PlatformSettings().cache_dir / "bin" / "helm"
    if not helm.is_file():
        pytest.fail(f"{helm} is missing: make k8s-tools installs it", pytrace=False)
    return Cluster(kubeconfig, kubectl, helm)


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace of this test's own with the restricted Pod Security standard enforced."""
    test = request.node.name.removeprefix("test_").replace("_", "-")[:32].strip("-").lower()
    name = f"kind-{test}-{secrets.token_hex(3)}"  # unique: a deleted one lingers a while
    cluster.kubectl("create", "namespace", name)
    cluster.kubectl(
        "label",
        "namespace",
        name,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/enforce-version=latest",
    )
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
