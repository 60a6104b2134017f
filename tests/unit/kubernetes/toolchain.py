"""The offline verification toolchain the Kubernetes tests drive: helm, kubeconform and schemas.

scripts/k8s-tools.sh installs everything at pinned versions into the fraudstream cache; nothing
here touches the network. A missing tool is reported with the command that installs it.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fraudstream.settings import PlatformSettings

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "fraud-platform"
ONLINE_STORE = REPO / "charts" / "online-store"
THIRD_PARTY = REPO / "charts" / "third-party"
OPERATORS = REPO / "operators"
TOOLS_SCRIPT = REPO / "scripts" / "k8s-tools.sh"
RELEASE = "fraud-platform"
NAMESPACE = "fraudstream"


class ToolchainMissingError(RuntimeError):
    """A tool or schema set is not installed: `make k8s-tools` installs it."""


class HelmError(RuntimeError):
    """helm exited non-zero; the message is its stderr."""


def pin(name: str) -> str:
    """A version pinned in scripts/k8s-tools.sh, its single source (``KUBERNETES_VERSION``...)."""
    match = re.search(rf"^{name}=(\S+)$", TOOLS_SCRIPT.read_text(), re.MULTILINE)
    if match is None:
        raise KeyError(f"{name} is not pinned in {TOOLS_SCRIPT}")
    return match.group(1)


def load_all(text: str) -> list[dict[str, Any]]:
    """The non-empty YAML documents of a multi-document stream."""
    return [doc for doc in yaml.safe_load_all(text) if doc]


def load_file(path: Path) -> list[dict[str, Any]]:
    return load_all(path.read_text())


@dataclass(frozen=True)
class Toolchain:
    """Paths of the installed tools and schemas, and the calls the tests make to them."""

    helm: Path
    kubeconform: Path
    hadolint: Path
    kubernetes_schemas: Path
    crd_schemas: Path
    skaffold_schema: Path
    spark_operator_chart: Path
    kubernetes_version: str
    crds: Path
    kube_apiserver: Path

    @classmethod
    def installed(cls) -> Toolchain:
        cache = PlatformSettings().cache_dir
        version = pin("KUBERNETES_VERSION")
        k8s = cache / "k8s"
        chain = cls(
            helm=cache / "bin" / "helm",
            kubeconform=cache / "bin" / "kubeconform",
            hadolint=cache / "bin" / "hadolint",
            kubernetes_schemas=k8s / "kubernetes",
            crd_schemas=k8s / "schemas",
            skaffold_schema=k8s / "skaffold-schema.json",
            spark_operator_chart=k8s / "spark-operator-chart",
            kubernetes_version=version,
            crds=k8s / "crds",
            kube_apiserver=cache / "bin" / "kube-apiserver",
        )
        missing = [
            str(path)
            for path in (
                chain.helm,
                chain.kubeconform,
                chain.hadolint,
                chain.kubernetes_schemas / f"v{version}-strict",
                chain.crd_schemas,
                chain.skaffold_schema,
                chain.spark_operator_chart,
            )
            if not path.exists()
        ]
        if missing:
            raise ToolchainMissingError(
                f"missing {', '.join(missing)}: run `make k8s-tools` (scripts/k8s-tools.sh)"
            )
        return chain

    def run_helm(self, *args: str) -> str:
        """Run helm for the target Kubernetes version; return stdout or raise HelmError."""
        proc = subprocess.run(
            [str(self.helm), *args, "--kube-version", self.kubernetes_version],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if proc.returncode != 0:
            raise HelmError(proc.stderr.strip() or proc.stdout.strip())
        return proc.stdout

    def lint(self, chart: Path, values: Sequence[Path] = (), *sets: str) -> str:
        """``helm lint --strict``: warnings fail too."""
        return self.run_helm("lint", "--strict", str(chart), *_value_args(values, sets))

    def render(
        self,
        chart: Path,
        values: Sequence[Path] = (),
        *sets: str,
        release: str = RELEASE,
        namespace: str = NAMESPACE,
        api_versions: Iterable[str] = (),
    ) -> str:
        """``helm template`` of a chart; the rendered multi-document YAML."""
        extra = [arg for api in api_versions for arg in ("--api-versions", api)]
        return self.run_helm(
            "template", release, str(chart), "-n", namespace, *_value_args(values, sets), *extra
        )

    def validate(self, text: str) -> tuple[int, list[str]]:
        """Validate manifests with kubeconform (strict: unknown fields are errors) against the
        Kubernetes schemas of the target version and the CRD schemas; a kind without a schema is
        an error, never skipped. Returns (number of resources, problems)."""
        k8s = "{{ .NormalizedKubernetesVersion }}{{ .StrictSuffix }}"
        kind = "{{ .ResourceKind }}{{ .KindSuffix }}"
        crd = "{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}"
        proc = subprocess.run(
            [
                str(self.kubeconform),
                "-strict",
                "-verbose",
                "-output",
                "json",
                "-kubernetes-version",
                self.kubernetes_version,
                "-schema-location",
                f"{self.kubernetes_schemas}/{k8s}/{kind}.json",
                "-schema-location",
                f"{self.crd_schemas}/{crd}.json",
                "-",
            ],
            input=text,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        # A comment-only document comes back with no kind and no status: not a resource.
        resources = [r for r in json.loads(proc.stdout)["resources"] if r["kind"] or r["status"]]
        problems = [
            f"{r['kind']} {r['name']}: {r['status']}: {r.get('msg', '')}"
            for r in resources
            if r["status"] != "statusValid"
        ]
        if proc.returncode != 0 and not problems:
            problems.append(f"kubeconform exited {proc.returncode}: {proc.stderr.strip()}")
        return len(resources), problems

    def lint_dockerfile(self, text: str) -> list[str]:
        """hadolint findings for a Dockerfile, every level down to info and style."""
        proc = subprocess.run(
            [str(self.hadolint), "--no-color", "--failure-threshold", "style", "-"],
            input=text,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return [line for line in proc.stdout.splitlines() if line.strip()]


def _value_args(values: Sequence[Path], sets: Sequence[str]) -> list[str]:
    args = [arg for path in values for arg in ("-f", str(path))]
    return args + [arg for item in sets for arg in ("--set", item)]


def scenarios(chart: Path = CHART) -> dict[str, list[Path]]:
    """A chart's values scenarios: its defaults and every ``ci/<name>-values.yaml``."""
    found: dict[str, list[Path]] = {"default": []}
    for path in sorted((chart / "ci").glob("*-values.yaml")):
        found[path.name.removesuffix("-values.yaml")] = [path]
    return found


def spark_operator_render(chain: Toolchain) -> str:
    """operators/spark-operator.yaml's generated part, rendered afresh from the pinned chart."""
    return chain.render(
        chain.spark_operator_chart,
        [THIRD_PARTY / "spark-operator.yaml"],
        release="spark-operator",
        namespace="spark-operator",
        api_versions=["monitoring.coreos.com/v1/PodMonitor"],
    )
