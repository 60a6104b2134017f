"""The logic of scripts/kind (`make kind-up`, `make images`) that runs without a cluster: the
version pins against kind-config.yaml, the Go module rewrites, the image-archive rewrite kind's
node builder needs, the pod network agent's plan and the docker shim's argument rewriting."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from .toolchain import Toolchain

REPO = Path(__file__).resolve().parents[3]
KIND = REPO / "scripts" / "kind"


def _module(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, KIND / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


gomod = _module("gomod")
archive_tags = _module("archive_tags")


def pins() -> dict[str, str]:
    found: dict[str, str] = {}
    for line in (KIND / "versions.env").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, _, value = line.partition("=")
        assert re.fullmatch(r"[A-Z][A-Z0-9_]*", name), line
        assert name not in found, f"{name} is pinned twice"
        found[name] = value.strip('"')
    return found


def test_every_pin_has_a_value_and_versions_look_like_versions() -> None:
    for name, value in pins().items():
        assert value, name
        if name.endswith("_VERSION"):
            assert re.fullmatch(r"v\d+\.\d+\.\d+", value), f"{name}={value}"


def test_the_offline_node_runs_the_kubernetes_of_the_online_node_image() -> None:
    config = yaml.safe_load((REPO / "kind-config.yaml").read_text())
    images = {node["image"] for node in config["nodes"]}
    assert images == {f"kindest/node:{pins()['KUBERNETES_VERSION']}"}


def test_the_kind_config_works_on_a_cgroup_v1_host_and_a_fixed_port() -> None:
    config = yaml.safe_load((REPO / "kind-config.yaml").read_text())
    patches = [yaml.safe_load(p) for p in config["kubeadmConfigPatches"]]
    assert {"kind": "KubeletConfiguration", "failCgroupV1": False} in patches
    port = config["networking"]["apiServerPort"]
    assert not 15000 <= port <= 19999  # ports the embedded platform and its tests use
    assert config["networking"]["disableDefaultCNI"] is False


def test_staging_modules_become_their_published_releases() -> None:
    edit = {
        "Replace": [
            {"Old": {"Path": "k8s.io/api"}, "New": {"Path": "./staging/src/k8s.io/api"}},
            {"Old": {"Path": "k8s.io/kubelet"}, "New": {"Path": "./staging/src/k8s.io/kubelet"}},
            {
                "Old": {"Path": "example.com/fork"},
                "New": {"Path": "github.com/x/fork", "Version": "v1.0.0"},
            },
        ]
    }
    assert gomod.staging_requires(edit, "v1.37.0") == [
        "-dropreplace=k8s.io/api",
        "-require=k8s.io/api@v0.37.0",
        "-dropreplace=k8s.io/kubelet",
        "-require=k8s.io/kubelet@v0.37.0",
    ]
    assert gomod.local_replaces(edit) == ["k8s.io/api", "k8s.io/kubelet"]


def test_a_per_version_local_replace_is_named_with_its_version() -> None:
    edit = {"Replace": [{"Old": {"Path": "a/b", "Version": "v1.2.3"}, "New": {"Path": "../b"}}]}
    assert gomod.local_replaces(edit) == ["a/b@v1.2.3"]
    assert gomod.local_replaces({}) == []


@pytest.mark.parametrize("version", ["1.37.0", "v2.0.0", "v1"])
def test_a_version_that_is_not_kubernetes_v1_is_refused(version: str) -> None:
    with pytest.raises(ValueError, match="not a Kubernetes"):
        gomod.staging_version(version)


@pytest.mark.parametrize(
    ("short", "qualified"),
    [
        ("kindest/kindnetd:v1", "docker.io/kindest/kindnetd:v1"),
        ("busybox:1", "docker.io/library/busybox:1"),
        ("registry.k8s.io/pause:3.10", "registry.k8s.io/pause:3.10"),
        ("localhost/x:1", "localhost/x:1"),
        ("localhost:5000/x:1", "localhost:5000/x:1"),
    ],
)
def test_image_names_are_qualified_as_kind_compares_them(short: str, qualified: str) -> None:
    assert archive_tags.qualified(short) == qualified


def _member(archive: tarfile.TarFile, name: str, body: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(body)
    archive.addfile(info, io.BytesIO(body))


def test_the_archive_names_every_image_first_in_its_repositories_file(tmp_path: Path) -> None:
    # As `docker save` writes it: manifest.json before repositories, Docker Hub names short.
    path = tmp_path / "images.tar"
    manifest = [
        {"Config": "a.json", "RepoTags": ["registry.k8s.io/kube-proxy:v1.37.0"], "Layers": ["l1"]},
        {"Config": "b.json", "RepoTags": ["kindest/kindnetd:v2"], "Layers": ["l2"]},
    ]
    repositories = {"registry.k8s.io/kube-proxy": {"v1.37.0": "a"}, "kindest/kindnetd": {"v2": "b"}}
    with tarfile.open(path, "w") as archive:
        _member(archive, "l1/layer.tar", b"one")
        _member(archive, "manifest.json", json.dumps(manifest).encode())
        _member(archive, "repositories", json.dumps(repositories).encode())
        _member(archive, "l2/layer.tar", b"two")

    names = archive_tags.rewrite(str(path))

    assert names == ["registry.k8s.io/kube-proxy:v1.37.0", "docker.io/kindest/kindnetd:v2"]
    with tarfile.open(path) as archive:
        order = archive.getnames()
        metadata = [n for n in order if n in {"manifest.json", "repositories"}]
        assert metadata[0] == "repositories"
        assert set(order) == {"l1/layer.tar", "l2/layer.tar", "manifest.json", "repositories"}
        assert json.load(archive.extractfile("repositories")) == {  # type: ignore[arg-type]
            "registry.k8s.io/kube-proxy": {"v1.37.0": "a"},
            "docker.io/kindest/kindnetd": {"v2": "b"},
        }
        assert archive.extractfile("l2/layer.tar").read() == b"two"  # type: ignore[union-attr]


NODES = {
    "items": [
        {
            "metadata": {"name": "cp"},
            "spec": {"podCIDR": "10.244.0.0/24"},
            "status": {
                "addresses": [
                    {"type": "InternalIP", "address": "172.18.0.2"},
                    {"type": "Hostname", "address": "cp"},
                ]
            },
        },
        {
            "metadata": {"name": "w1"},
            "spec": {"podCIDR": "10.244.1.0/24"},
            "status": {"addresses": [{"type": "InternalIP", "address": "172.18.0.3"}]},
        },
        {  # no pod range yet: nothing to route
            "metadata": {"name": "w2"},
            "spec": {},
            "status": {"addresses": [{"type": "InternalIP", "address": "172.18.0.4"}]},
        },
    ]
}


def _plan(host: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(KIND / "preload" / "podnet.sh"), "plan", host],
        input=json.dumps(NODES),
        capture_output=True,
        text=True,
    )


def test_the_pod_network_agent_routes_other_nodes_and_configures_its_own() -> None:
    done = _plan("172.18.0.3")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "route 10.244.0.0/24 172.18.0.2" in lines
    (cni,) = [json.loads(line.removeprefix("cni ")) for line in lines if line.startswith("cni ")]
    ptp, portmap = cni["plugins"]
    assert ptp["type"] == "ptp"
    assert ptp["ipMasq"] is False
    assert ptp["ipam"]["ranges"] == [[{"subnet": "10.244.1.0/24"}]]
    assert portmap["capabilities"] == {"portMappings": True}
    assert len(lines) == 2


def test_the_pod_network_agent_waits_for_its_node_range() -> None:
    done = _plan("172.18.0.4")
    assert done.returncode != 0
    assert "no node with InternalIP 172.18.0.4 has a pod range yet" in done.stderr


def _shim(*args: str) -> list[str]:
    done = subprocess.run(
        ["bash", str(KIND / "docker-shim.sh"), *args],
        env={**os.environ, "FRAUDSTREAM_DOCKER": "echo"},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.split()


def test_the_docker_shim_spells_out_privileged_without_sys_resource() -> None:
    words = _shim("run", "--privileged", "--name", "n", "image")
    assert "--privileged" not in words
    caps = {w.removeprefix("--cap-add=") for w in words if w.startswith("--cap-add=")}
    assert "SYS_ADMIN" in caps
    assert "NET_ADMIN" in caps
    assert "SYS_RESOURCE" not in caps
    assert "--security-opt=seccomp=unconfined" in words
    assert words[0] == "run"
    assert words[-3:] == ["--name", "n", "image"]


def test_the_docker_shim_passes_everything_else_through() -> None:
    assert _shim("exec", "--privileged", "node", "true") == ["exec", "node", "true"]
    assert _shim("ps", "-a") == ["ps", "-a"]
    # `pull` of an image the engine holds does nothing (here `echo image inspect` succeeds).
    assert _shim("pull", "kindest/base:v1") == []


OFFLINE_DOCKERFILES = sorted(
    p.relative_to(REPO).as_posix()
    for p in [*(REPO / "images" / "offline").glob("*/Dockerfile"), *KIND.glob("*/Dockerfile")]
)


@pytest.mark.parametrize("path", OFFLINE_DOCKERFILES)
def test_hadolint_finds_nothing_in_the_offline_recipes(chain: Toolchain, path: str) -> None:
    assert chain.lint_dockerfile((REPO / path).read_text()) == []


# -- the registry beside the cluster (scripts/kind/registry.sh) ----------------------------------

REGISTRY = "localhost:5001"


def _registry_var(name: str) -> str:
    done = subprocess.run(
        ["bash", "-c", f'KIND_CLUSTER=fraudstream KIND_CACHE=/x; source "$0"; echo "${name}"',
         str(KIND / "registry.sh")],
        capture_output=True,
        text=True,
        check=True,
    )  # fmt: skip
    return done.stdout.strip()


def test_the_nodes_containerd_reads_registry_hosts_from_certs_d() -> None:
    config = yaml.safe_load((REPO / "kind-config.yaml").read_text())
    (patch,) = config["containerdConfigPatches"]
    assert '[plugins."io.containerd.grpc.v1.cri".registry]' in patch
    assert 'config_path = "/etc/containerd/certs.d"' in patch


def test_the_registry_name_is_the_one_skaffold_and_the_values_use() -> None:
    assert _registry_var("REGISTRY") == REGISTRY
    hosts = _registry_var("(registry_hosts_toml)")
    assert hosts.splitlines()[0] == '[host."http://fraudstream-registry:5000"]'
    context = yaml.safe_load((KIND / "skaffold-config.yaml").read_text())["kubeContexts"][0]
    assert context["default-repo"] == REGISTRY
    assert context["multi-level-repo"] is True
    assert REGISTRY in context["insecure-registries"]


def test_the_offline_profile_pushes_and_its_images_come_from_the_registry() -> None:
    configs = {
        d["metadata"]["name"]: d for d in yaml.safe_load_all((REPO / "skaffold.yaml").read_text())
    }
    (offline,) = [p for p in configs["platform"]["profiles"] if p["name"] == "offline"]
    assert offline["build"]["local"]["push"] is True
    (platform,) = [
        r for r in offline["deploy"]["helm"]["releases"] if r["name"] == "fraud-platform"
    ]
    for image in ("scorer", "api", "generator", "trainer"):
        # Pinned by digest: a dirty tree keeps its tag from one change to the next.
        digest = platform["setValueTemplates"][f"images.{image}.digest"]
        assert digest == f"{{{{.IMAGE_DIGEST_fraudstream_{image}}}}}"
    stack = yaml.safe_load((REPO / "charts" / "offline-stack" / "values.yaml").read_text())
    images = [v for k, v in stack["images"].items() if k != "pullPolicy"]
    images += [stack["airflow"]["image"], stack["airflow"]["trainerImage"]]
    assert all(i.startswith(f"{REGISTRY}/fraudstream/") for i in images), images
    assert stack["images"]["pullPolicy"] == "IfNotPresent"
    for path in (
        REPO / "charts" / "fraud-platform" / "ci" / "kind-offline-values.yaml",
        REPO / "charts" / "online-store" / "ci" / "kind-offline-values.yaml",
    ):
        values = yaml.safe_load(path.read_text())["images"]
        assert values["pullPolicy"] == "IfNotPresent", path
        repositories = [v["repository"] for v in values.values() if isinstance(v, dict)]
        assert repositories
        assert all(r.startswith(f"{REGISTRY}/fraudstream/") for r in repositories), path
    operator = yaml.safe_load(
        (REPO / "charts" / "third-party" / "offline" / "spark-operator.yaml").read_text()
    )["image"]
    assert (operator["registry"], operator["pullPolicy"]) == (REGISTRY, "IfNotPresent")


# -- NetworkPolicy enforcement (scripts/kind/netpol.sh) -------------------------------------------

UPSTREAM_QUEUE = """\
\tqueue := &expr.Queue{Num: uint16(c.config.QueueID)}
\tif c.config.FailOpen {
\t\tqueue.Flag = expr.QueueFlagBypass
\t}
"""


def _netpol(cache: Path, command: str, *args: str) -> subprocess.CompletedProcess[str]:
    script = (
        'KIND_CLUSTER=fraudstream; source "$0/lib.sh"; source "$0/build.sh"; '
        f'source "$0/registry.sh"; source "$0/netpol.sh"; {command}'
    )
    return subprocess.run(
        ["bash", "-c", script, str(KIND), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "FRAUDSTREAM_CACHE_DIR": str(cache)},
    )


def test_the_netpol_build_swaps_every_queue_statement_for_the_nfqueue_target(
    tmp_path: Path,
) -> None:
    package = tmp_path / "pkg" / "networkpolicy"
    package.mkdir(parents=True)
    (package / "controller.go").write_text(
        f"func a() {{\n{UPSTREAM_QUEUE}\tuse(queue)\n}}\nfunc b() {{\n{UPSTREAM_QUEUE}}}\n"
    )
    done = _netpol(tmp_path / "cache", 'patch_netpol_queue "$1"', str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "replaced by the NFQUEUE target: 2" in done.stdout
    patched = (package / "controller.go").read_text()
    assert "expr.Queue" not in patched
    assert patched.count("queue := xtQueue(uint16(c.config.QueueID), c.config.FailOpen)") == 2
    assert "func xtQueue(" in (package / "xtqueue.go").read_text()


def test_the_netpol_build_stops_when_the_release_has_no_queue_statement(tmp_path: Path) -> None:
    package = tmp_path / "pkg" / "networkpolicy"
    package.mkdir(parents=True)
    (package / "controller.go").write_text("package networkpolicy\n")
    done = _netpol(tmp_path / "cache", 'patch_netpol_queue "$1"', str(tmp_path))
    assert done.returncode != 0
    assert "the patch does not fit this release" in done.stderr


def test_the_netpol_agent_runs_the_image_netpol_sh_pushes_on_every_node(tmp_path: Path) -> None:
    image = _netpol(tmp_path, 'echo "$NETPOL_IMAGE"').stdout.strip()
    assert image.startswith(f"{REGISTRY}/fraudstream/kube-network-policies:")
    docs = list(yaml.safe_load_all((KIND / "netpol" / "kube-network-policies.yaml").read_text()))
    kinds = {d["kind"]: d for d in docs}
    rules = {
        (r["apiGroups"][0], res) for r in kinds["ClusterRole"]["rules"] for res in r["resources"]
    }
    assert rules == {("", "pods"), ("", "namespaces"), ("networking.k8s.io", "networkpolicies")}
    pod = kinds["DaemonSet"]["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True
    assert pod["tolerations"] == [{"operator": "Exists"}]  # the control plane too
    (agent,) = pod["containers"]
    assert agent["image"] == "IMAGE"  # netpol.sh puts NETPOL_IMAGE there
    assert "--disable-nri" in agent["args"]
    assert "--hostname-override=$(NODE_NAME)" in agent["args"]


# -- CloudNativePG in the offline profile (scripts/kind/cloudnative_pg.py) ------------------------

cloudnative_pg = _module("cloudnative_pg")
CNPG_OFFLINE = REPO / "charts" / "third-party" / "offline" / "cloudnative-pg.yaml"


def _offline_cluster() -> tuple[dict, list[dict]]:
    objects = cloudnative_pg.render_cluster(
        cloudnative_pg.MANIFEST.read_text(), yaml.safe_load(CNPG_OFFLINE.read_text())["cluster"]
    )
    (cluster,) = [o for o in objects if o["kind"] == "Cluster"]
    return cluster, objects


def test_the_offline_cluster_is_the_online_one_on_the_images_built_here(chain: Toolchain) -> None:
    cluster, objects = _offline_cluster()
    online = [d for d in yaml.safe_load_all(cloudnative_pg.MANIFEST.read_text()) if d]
    # Only the Cluster's spec changes; the databases and the rest stay as the online profile's.
    assert [o for o in objects if o["kind"] != "Cluster"] == [
        d for d in online if d["kind"] != "Cluster"
    ]
    (upstream,) = [d for d in online if d["kind"] == "Cluster"]
    spec = cluster["spec"]
    assert spec["imageName"] == f"{REGISTRY}/fraudstream/postgres:15-bookworm"
    assert (spec["postgresUID"], spec["postgresGID"]) == (999, 999)
    assert spec["bootstrap"] == upstream["spec"]["bootstrap"]
    assert spec["managed"] == upstream["spec"]["managed"]
    # A merge key by key: the offline profile relaxes durability, replication stays synchronous.
    assert spec["postgresql"]["synchronous"] == {
        **upstream["spec"]["postgresql"]["synchronous"],
        "dataDurability": "preferred",
    }
    assert upstream["spec"]["postgresql"]["synchronous"]["dataDurability"] == "required"
    count, problems = chain.validate(yaml.safe_dump_all(objects))
    assert (count, problems) == (len(objects), [])


def test_the_offline_images_are_the_ones_make_images_builds() -> None:
    images = (KIND / "images.sh").read_text()
    version = re.search(
        r"^CLOUDNATIVE_PG_VERSION=v(\S+)$", (REPO / "scripts" / "k8s-tools.sh").read_text(), re.M
    )
    assert version is not None
    operator = yaml.safe_load(CNPG_OFFLINE.read_text())["operator"]["image"]
    assert operator == f"{REGISTRY}/fraudstream/cloudnative-pg:{version.group(1)}"
    assert 'tag="fraudstream/cloudnative-pg:${CLOUDNATIVE_PG_VERSION#v}"' in images
    cluster, _ = _offline_cluster()
    tag = cluster["spec"]["imageName"].removeprefix(f"{REGISTRY}/")
    assert f'tag="{tag}"' in images
    # The operator reads the major version from the tag: it must be the packages' major.
    dockerfile = (REPO / "images" / "offline" / "postgres" / "Dockerfile").read_text()
    major = tag.split(":")[1].split("-")[0]
    assert f"postgresql-{major} " in dockerfile
    assert f"/usr/lib/postgresql/{major}/bin" in dockerfile


def test_the_operator_manifest_runs_the_image_built_here_in_both_places() -> None:
    release = (
        "containers:\n- image: ghcr.io/cloudnative-pg/cloudnative-pg:1.28.0\n  env:\n"
        "  - name: OPERATOR_IMAGE_NAME\n    value: ghcr.io/cloudnative-pg/cloudnative-pg:1.28.0\n"
    )
    rendered = cloudnative_pg.render_operator(release, "localhost:5001/fraudstream/cnpg:1.28.0")
    assert "ghcr.io" not in rendered
    assert rendered.count("localhost:5001/fraudstream/cnpg:1.28.0") == 2
    with pytest.raises(SystemExit, match="no longer names"):
        cloudnative_pg.render_operator("image: quay.io/other:1\n", "x")


def test_the_offline_data_config_installs_the_operator_then_waits_for_the_cluster() -> None:
    configs = {
        d["metadata"]["name"]: d for d in yaml.safe_load_all((REPO / "skaffold.yaml").read_text())
    }
    (offline,) = [p for p in configs["data"]["profiles"] if p["name"] == "offline"]
    hooks = offline["deploy"]["kubectl"]["hooks"]
    before = [h["host"]["command"] for h in hooks["before"]]
    after = [h["host"]["command"] for h in hooks["after"]]
    script = "scripts/kind/cloudnative_pg.py"
    assert before[0][0] == "scripts/kind-secrets.sh"  # the roles' Secrets before the cluster
    assert before[1][1:] == [script, "operator"]
    # Restricted Pod Security is enforced before the cluster's pods are created.
    assert "pod-security.kubernetes.io/enforce=restricted" in after[0]
    assert after[1][1:] == [script, "cluster"]
    assert "operators/postgres.yaml" not in offline["manifests"]["rawYaml"]
