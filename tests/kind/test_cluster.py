"""The kind cluster of `make kind-up` as its users rely on it: nodes and zones, the system pods,
pods talking across nodes through a Service, a NetworkPolicy refusing what it does not allow, a
volume claim bound, the project's images in the registry beside the cluster and pulled from it by
every worker, and a chart of ours installed and tested under the restricted Pod Security
standard."""

from __future__ import annotations

import json
import secrets
import subprocess
import textwrap

from .conftest import REPO, Cluster

VERSION = "0.1.0"
REGISTRY = "localhost:5001"  # scripts/kind/registry.sh
API_IMAGE = f"{REGISTRY}/fraudstream/api:{VERSION}"
PROJECT_IMAGES = ("api", "generator", "trainer", "mlflow", "scorer", "airflow")
# A pod spec that meets the restricted Pod Security standard.
RESTRICTED = {
    "runAsNonRoot": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def python_pod(
    name: str, script: str, labels: dict[str, str] | None = None, **spec: object
) -> dict[str, object]:
    """A pod that runs `script` once in the api image's Python, as the restricted standard wants."""
    container: dict[str, object] = {
        "name": name,
        "image": API_IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python", "-c", script],
        "securityContext": RESTRICTED,
    }
    volumes = spec.pop("volumeMounts", None)
    if volumes is not None:
        container["volumeMounts"] = volumes
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"restartPolicy": "Never", "containers": [container], **spec},
    }


def run_to_completion(cluster: Cluster, namespace: str, name: str) -> str:
    """Waits for the pod to succeed and returns the last line it printed."""
    cluster.kubectl(
        "-n", namespace, "wait", f"pod/{name}",
        "--for=jsonpath={.status.phase}=Succeeded", "--timeout=180s",
    )  # fmt: skip
    return cluster.kubectl("-n", namespace, "logs", name).strip().splitlines()[-1]


def test_every_node_is_ready_in_its_zone(cluster: Cluster) -> None:
    nodes = cluster.json("get", "nodes")["items"]
    assert len(nodes) == 4
    for node in nodes:
        ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"]
        assert ready == "True", node["metadata"]["name"]
        assert node["status"]["nodeInfo"]["kubeletVersion"] == "v1.37.0"
    workers = [
        n for n in nodes if "node-role.kubernetes.io/control-plane" not in n["metadata"]["labels"]
    ]
    zones = {n["metadata"]["labels"].get("topology.kubernetes.io/zone") for n in workers}
    assert zones == {"zone-a", "zone-b", "zone-c"}


def test_every_system_pod_runs(cluster: Cluster) -> None:
    for namespace in ("kube-system", "local-path-storage"):
        pods = cluster.json("-n", namespace, "get", "pods")["items"]
        assert pods, namespace
        for pod in pods:
            assert pod["status"]["phase"] == "Running", pod["metadata"]["name"]
    network = cluster.json("-n", "kube-system", "get", "daemonset", "kindnet")["status"]
    assert network["numberReady"] == network["desiredNumberScheduled"] == 4


def _host(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=600).stdout


def test_the_registry_serves_the_project_images_and_every_worker_pulls_from_it(
    cluster: Cluster,
) -> None:
    """`make images` pushes them to the registry beside the cluster; each worker's containerd
    resolves its name (certs.d) and pulls from it (the control plane is tainted)."""
    tags = {
        name: json.loads(_host("curl", "-sf", f"http://{REGISTRY}/v2/fraudstream/{name}/tags/list"))
        for name in PROJECT_IMAGES
    }
    missing = [name for name, listed in tags.items() if VERSION not in (listed.get("tags") or [])]
    assert not missing, f"the registry lacks {missing}: make images pushes them"
    workers = cluster.kubectl(
        "get", "nodes", "-l", "!node-role.kubernetes.io/control-plane", "-o", "name"
    ).split()
    assert len(workers) == 3
    for node in workers:
        name = node.removeprefix("node/")
        _host("docker", "exec", name, "crictl", "pull", API_IMAGE)
        assert API_IMAGE in cluster.node_images(name)


def _echo_servers(namespace: str) -> str:
    """Three replicas, one per zone, each answering with the name of its node."""
    script = textwrap.dedent(
        """
        import http.server, os
        class Echo(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = os.environ["NODE"].encode()
                self.send_response(200); self.end_headers(); self.wfile.write(body)
        http.server.HTTPServer(("", 8080), Echo).serve_forever()
        """
    )
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "echo", "namespace": namespace},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "echo"}},
            "template": {
                "metadata": {"labels": {"app": "echo"}},
                "spec": {
                    "topologySpreadConstraints": [
                        {
                            "maxSkew": 1,
                            "topologyKey": "topology.kubernetes.io/zone",
                            "whenUnsatisfiable": "DoNotSchedule",
                            "labelSelector": {"matchLabels": {"app": "echo"}},
                        }
                    ],
                    "containers": [
                        {
                            "name": "echo",
                            "image": API_IMAGE,
                            "imagePullPolicy": "IfNotPresent",
                            "command": ["python", "-c", script],
                            "env": [
                                {
                                    "name": "NODE",
                                    "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}},
                                }
                            ],
                            "ports": [{"containerPort": 8080}],
                            "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 2},
                            "securityContext": RESTRICTED,
                        }
                    ],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "echo", "namespace": namespace},
        "spec": {"selector": {"app": "echo"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": [deployment, service]})


def test_pods_reach_pods_on_other_nodes_through_a_service(cluster: Cluster, namespace: str) -> None:
    cluster.apply(_echo_servers(namespace), namespace)
    cluster.kubectl("-n", namespace, "rollout", "status", "deployment/echo", "--timeout=180s")
    pods = cluster.json("-n", namespace, "get", "pods", "-l", "app=echo")["items"]
    server_nodes = {pod["spec"]["nodeName"] for pod in pods}
    assert len(server_nodes) == 3
    client = (
        "import collections, json, urllib.request\n"
        "ask = lambda: urllib.request.urlopen('http://echo/', timeout=5).read().decode()\n"
        "seen = collections.Counter(ask() for _ in range(60))\n"
        "print(json.dumps(seen))\n"
    )
    cluster.apply(json.dumps(python_pod("client", client)), namespace)
    answered = json.loads(run_to_completion(cluster, namespace, "client"))
    assert sum(answered.values()) == 60
    # kube-proxy spreads the connections: answers come from pods on more than one node.
    assert len(set(answered) & server_nodes) >= 2, answered


def test_a_network_policy_refuses_the_connections_it_does_not_allow(
    cluster: Cluster, namespace: str
) -> None:
    """kube-network-policies (make kind-up) enforces NetworkPolicies on every node: with ingress to
    the echo servers allowed only from pods labelled role=allowed, such a pod gets answers from
    servers on several nodes, and a pod without the label opens no connection at all."""
    cluster.apply(_echo_servers(namespace), namespace)
    policy = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "echo-allowed-only"},
        "spec": {
            "podSelector": {"matchLabels": {"app": "echo"}},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "allowed"}}}]}],
        },
    }
    cluster.apply(json.dumps(policy), namespace)
    cluster.kubectl("-n", namespace, "rollout", "status", "deployment/echo", "--timeout=180s")
    client = (
        "import collections, json, urllib.request\n"
        "def ask():\n"
        "    try:\n"
        "        return urllib.request.urlopen('http://echo/', timeout=3).read().decode()\n"
        "    except OSError as exc:\n"
        "        return type(exc).__name__\n"
        "print(json.dumps(collections.Counter(ask() for _ in range(12))))\n"
    )
    for name, labels in (("allowed", {"role": "allowed"}), ("denied", {})):
        cluster.apply(json.dumps(python_pod(name, client, labels)), namespace)
    allowed = json.loads(run_to_completion(cluster, namespace, "allowed"))
    denied = json.loads(run_to_completion(cluster, namespace, "denied"))
    nodes = {pod["spec"]["nodeName"] for pod in cluster.json(
        "-n", namespace, "get", "pods", "-l", "app=echo")["items"]}  # fmt: skip
    assert set(allowed) <= nodes, allowed  # every connection answered, by a server's node
    assert len(allowed) >= 2, allowed
    assert not set(denied) & nodes, denied  # not one answer
    assert sum(denied.values()) == 12, denied


def test_a_volume_claim_binds_and_keeps_what_a_pod_wrote(cluster: Cluster, namespace: str) -> None:
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "64Mi"}}},
    }
    writer = python_pod(
        "writer",
        "open('/data/f', 'w').write('kept'); print(open('/data/f').read())",
        securityContext={"fsGroup": 10001, "runAsUser": 10001},
        volumeMounts=[{"name": "data", "mountPath": "/data"}],
        volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
    )
    cluster.apply(
        json.dumps({"apiVersion": "v1", "kind": "List", "items": [claim, writer]}), namespace
    )
    assert run_to_completion(cluster, namespace, "writer") == "kept"
    assert cluster.json("-n", namespace, "get", "pvc", "data")["status"]["phase"] == "Bound"


def test_the_restricted_standard_refuses_a_privileged_pod(cluster: Cluster, namespace: str) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "privileged"},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": API_IMAGE,
                    "imagePullPolicy": "IfNotPresent",
                    "securityContext": {"privileged": True},
                }
            ]
        },
    }
    answer = cluster.kubectl(
        "-n", namespace, "apply", "-f", "-", stdin=json.dumps(pod), check=False
    )
    assert "violates PodSecurity" in answer, answer
    assert "restricted" in answer, answer


def test_the_online_store_chart_installs_and_passes_its_helm_test(
    cluster: Cluster, namespace: str
) -> None:
    password = secrets.token_urlsafe(24)
    cluster.kubectl(
        "-n",
        namespace,
        "create",
        "secret",
        "generic",
        "fraudstream-redis",
        f"--from-literal=password={password}",
    )
    chart = REPO / "charts" / "online-store"
    install = cluster.helm(
        "install",
        "online-store",
        str(chart),
        "-n",
        namespace,
        "--wait",
        "--timeout",
        "5m",
        "-f",
        str(chart / "ci" / "kind-values.yaml"),
        "-f",
        str(chart / "ci" / "kind-offline-values.yaml"),
    )
    assert install.returncode == 0, install.stderr
    try:
        # The test pod is deleted once it succeeds (its hook-delete-policy): helm reports it.
        test = cluster.helm("test", "online-store", "-n", namespace, "--timeout", "3m")
        assert test.returncode == 0, test.stdout + test.stderr
        assert "TEST SUITE:     online-store-test" in test.stdout
        assert "Phase:          Succeeded" in test.stdout
        server = cluster.json("-n", namespace, "get", "pod", "online-store-0")
        assert {c["name"]: c["ready"] for c in server["status"]["containerStatuses"]} == {
            "redis": True,
            "exporter": True,
        }
    finally:
        cluster.helm("uninstall", "online-store", "-n", namespace, "--wait")
