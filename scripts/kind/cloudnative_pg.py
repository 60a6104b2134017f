"""CloudNativePG on the kind cluster, offline profile: its operator and the platform's PostgreSQL.

    cloudnative_pg.py operator   install the operator: the release manifest of its Go module
                                 (releases/cnpg-<version>.yaml) with the image `make images`
                                 builds from the same module; waits until it answers
    cloudnative_pg.py cluster    apply operators/postgres.yaml with the offline profile's fields
                                 (charts/third-party/offline/cloudnative-pg.yaml: the PostgreSQL
                                 image built from Debian's packages, its user, the sizes); waits
                                 until the cluster is Ready

skaffold.yaml's offline profile runs both as hooks of its data config. The online profile installs
the operator's Helm chart and applies operators/postgres.yaml unchanged.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
MODULE = "github.com/cloudnative-pg/cloudnative-pg"
UPSTREAM_IMAGE = "ghcr.io/cloudnative-pg/cloudnative-pg"
OFFLINE = ROOT / "charts" / "third-party" / "offline" / "cloudnative-pg.yaml"
MANIFEST = ROOT / "operators" / "postgres.yaml"
NAMESPACE = os.environ.get("FRAUDSTREAM_NAMESPACE", "fraudstream")


def version() -> str:
    """CLOUDNATIVE_PG_VERSION of scripts/k8s-tools.sh (the CRDs' version too), e.g. v1.28.0."""
    found = re.search(
        r"^CLOUDNATIVE_PG_VERSION=(\S+)$", (ROOT / "scripts" / "k8s-tools.sh").read_text(), re.M
    )
    if found is None:
        sys.exit("cloudnative-pg: CLOUDNATIVE_PG_VERSION is missing from scripts/k8s-tools.sh")
    return found.group(1)


def offline_values() -> dict[str, Any]:
    return yaml.safe_load(OFFLINE.read_text())


def render_operator(release: str, image: str) -> str:
    """The release manifest with the operator's image replaced (the Deployment's container and
    OPERATOR_IMAGE_NAME, which the PostgreSQL pods' bootstrap init container runs)."""
    pattern = re.compile(re.escape(UPSTREAM_IMAGE) + r":[\w.-]+")
    found = pattern.findall(release)
    if len(found) < 2:
        sys.exit(f"cloudnative-pg: the release manifest no longer names {UPSTREAM_IMAGE} twice")
    return pattern.sub(image, release)


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def render_cluster(manifest: str, overrides: dict[str, Any]) -> list[dict[str, Any]]:
    """operators/postgres.yaml's objects, the Cluster's spec merged with ``overrides`` by key."""
    docs = [d for d in yaml.safe_load_all(manifest) if d]
    clusters = [d for d in docs if d["kind"] == "Cluster"]
    if len(clusters) != 1:
        sys.exit(f"cloudnative-pg: {MANIFEST} must hold one Cluster, it holds {len(clusters)}")
    return [
        {**d, "spec": _merge(d["spec"], overrides)} if d["kind"] == "Cluster" else d for d in docs
    ]


def kubectl(
    *args: str, stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["kubectl", *args], input=stdin, capture_output=True, text=True)
    if check and done.returncode:
        sys.exit(f"cloudnative-pg: kubectl {' '.join(args)} failed:\n{done.stderr.strip()}")
    return done


def module_dir(ver: str) -> Path:
    with tempfile.TemporaryDirectory() as outside_any_module:
        done = subprocess.run(
            ["go", "mod", "download", "-json", f"{MODULE}@{ver}"],
            cwd=outside_any_module,
            capture_output=True,
            text=True,
            env={**os.environ, "GOFLAGS": "-mod=mod"},
        )
    if done.returncode:
        sys.exit(
            f"cloudnative-pg: go mod download {MODULE}@{ver} failed:\n{done.stdout}{done.stderr}"
        )
    return Path(json.loads(done.stdout)["Dir"])


def install_operator() -> None:
    ver = version()
    release = module_dir(ver) / "releases" / f"cnpg-{ver.removeprefix('v')}.yaml"
    if not release.is_file():
        sys.exit(
            f"cloudnative-pg: {release} is missing: the module no longer ships its release manifest"
        )
    image = offline_values()["operator"]["image"]
    print(f"cloudnative-pg: operator {ver} ({release.name}) with {image}", flush=True)
    # Server-side: the CRDs are too large for the last-applied annotation of a client-side apply.
    kubectl(
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        "-",
        stdin=render_operator(release.read_text(), image),
    )
    kubectl(
        "-n", "cnpg-system", "rollout", "status", "deploy/cnpg-controller-manager", "--timeout=300s"
    )


def apply_cluster() -> None:
    overrides = offline_values()["cluster"]
    objects = render_cluster(MANIFEST.read_text(), overrides)
    text = yaml.safe_dump_all(objects, sort_keys=False)
    # The operator's admission webhook answers a little after its pod is ready: retry for a minute.
    deadline = time.monotonic() + 60
    while True:
        done = kubectl("-n", NAMESPACE, "apply", "-f", "-", stdin=text, check=False)
        if done.returncode == 0:
            print(done.stdout.strip(), flush=True)
            break
        if time.monotonic() > deadline or "webhook" not in done.stderr:
            sys.exit(f"cloudnative-pg: applying {MANIFEST} failed:\n{done.stderr.strip()}")
        time.sleep(3)
    name = next(o["metadata"]["name"] for o in objects if o["kind"] == "Cluster")
    print(
        f"cloudnative-pg: waiting for cluster {name} ({overrides.get('instances', '?')} instances)",
        flush=True,
    )
    kubectl(
        "-n",
        NAMESPACE,
        "wait",
        f"cluster.postgresql.cnpg.io/{name}",
        "--for=condition=Ready",
        "--timeout=900s",
    )


def main(argv: list[str]) -> None:
    commands = {"operator": install_operator, "cluster": apply_cluster}
    if len(argv) != 1 or argv[0] not in commands:
        sys.exit(f"usage: cloudnative_pg.py {{{'|'.join(commands)}}}")
    commands[argv[0]]()


if __name__ == "__main__":
    main(sys.argv[1:])
