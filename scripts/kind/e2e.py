"""make kind-e2e: the platform on the kind cluster of `make kind-up`, offline profile, end to end.

Deploys with `skaffold run -p offline` (scripts/kind/dev.sh, SKAFFOLD=run: the releases and their
values live in skaffold.yaml only): the images built and pushed to the registry beside the cluster,
the namespaces (restricted Pod Security enforced) and Secrets, the Spark Operator (its chart from
its Go module), CloudNativePG (its operator and PostgreSQL image built here) running
operators/postgres.yaml's cluster, charts/offline-stack (Kafka, MinIO, MLflow, Airflow), the online
store and the fraud-platform chart, whose post-install hook trains the first champion in a
training pod. Then applies Strimzi's and the Prometheus Operator's resources to the API server
with a server-side dry run (their CRDs installed) to prove they are accepted, and checks the users'
workflow: the generator's transactions scored by the SparkApplication into PostgreSQL, the API
answering through its Service (the analyst's read token answers, no token is 401, the read token
on a write is 403), `helm test`, the scorer's merchant stage reading the labels topic and running
with the merchant delay of the values, the retraining DAG run by the cluster's Airflow (each task
a KubernetesPodOperator training pod) and the running scorer switching to the model it promoted,
the NetworkPolicies enforced (a connection they forbid does not open, the same one from an
allowed pod does), executors scaled 1 -> 2 with kubectl, a broker added, a broker pod, the
Spark driver pod and PostgreSQL's primary deleted mid-stream (CloudNativePG promotes the standby),
and at the end every produced transaction scored exactly once.

Prints a line per step with its duration; the last line is one JSON object. Exit status 1 when a
check fails (the JSON line says which). Needs `make kind-up`; runs `make images` first when the
registry lacks the offline stack's images (a fresh cluster).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("FRAUDSTREAM_CACHE_DIR", Path.home() / ".cache" / "fraudstream"))
KIND = CACHE / "kind"
KUBECONFIG = KIND / "kubeconfig"
HELM = CACHE / "bin" / "helm"
KUBECTL = KIND / "bin" / "kubectl"
NS = "fraudstream"
RELEASE = "fraud-platform"
APP = f"{RELEASE}-scorer"
TIMEOUT = "900s"
SPARK_OPERATOR_CHART = CACHE / "k8s" / "spark-operator-chart"

DEPLOY_LOG = KIND / "logs" / "skaffold-run.log"
REGISTRY = "localhost:5001"
IMAGES_LOG = KIND / "logs" / "images.log"
MIN_FREE_GB = 15  # a run writes a few GB of checkpoints, lake files and logs
# The offline stack's images, which only `make images` builds (scripts/kind/images.sh OFFLINE_ONLY).
OFFLINE_IMAGES = tuple(
    f"fraudstream/{name}"
    for name in (
        "redis",
        "redis-exporter",
        "kafka",
        "postgres",
        "minio",
        "spark-operator",
        "cloudnative-pg",
    )
)

result: dict[str, Any] = {
    "profile": "offline",
    "nodes_ready": 0,
    "images_built": 0,
    "images_seconds": None,  # make images, run when the registry lacked the offline stack's
    "registry_images": 0,
    "pod_security": None,
    "deploy_seconds": None,
    "scored_rows": 0,
    "duplicates": None,
    "lost": None,
    "predictions_republished": None,
    "executors_scaled": False,
    "brokers_scaled": False,
    "broker_pod_deleted": False,
    "driver_pod_deleted": False,
    "api_answered": False,
    "api_read_token": False,
    "labels_read": None,
    "labels_produced": None,
    "merchant_delay_s": None,
    "helm_test_passed": False,
    "network_policy_agents": 0,  # nodes where kube-network-policies runs (make kind-up)
    "network_policy_refused": False,  # a connection the policies forbid did not open
    "network_policy_allowed": False,  # the same destination from an allowed pod did
    "strimzi_resources_accepted": False,
    "cloudnative_pg_running": False,  # its operator, the cluster Ready, the databases applied
    "postgres_instances_ready": 0,
    "postgres_failover_seconds": None,  # primary pod deleted -> a standby promoted and writable
    "monitoring_resources_accepted": False,
    "training_pod_succeeded": None,  # None: a champion existed, no training pod was needed
    "champion_version": None,
    "airflow_training_pods": 0,
    "retrain_gate": None,  # promoted | refused (then promoted by an operator's --override)
    "reloaded_version": None,
    "failed": [],
}
started = time.monotonic()


class StepError(RuntimeError):
    pass


def say(text: str) -> None:
    print(f"kind-e2e: {text}", flush=True)


def run(
    *argv: str | Path, stdin: str | None = None, check: bool = True, timeout: float = 1200
) -> str:
    env = {
        **os.environ,
        "KUBECONFIG": str(KUBECONFIG),
        "PATH": f"{KIND / 'bin'}:{os.environ['PATH']}",
    }
    done = subprocess.run(
        [str(a) for a in argv],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    if check and done.returncode != 0:
        command = " ".join(str(a) for a in argv[:6])
        raise StepError(f"{command} ...: {(done.stderr or done.stdout).strip()[-2000:]}")
    return done.stdout


def kubectl(*args: str, **kw: Any) -> str:
    return run(KUBECTL, *args, **kw)


def helm(*args: str | Path, **kw: Any) -> str:
    return run(HELM, *args, **kw)


def unstick(release: str, namespace: str) -> None:
    """A release left pending by an interrupted run blocks every upgrade: roll it back, or remove
    it when it never got installed."""
    done = subprocess.run(
        [
            str(HELM),
            "--kubeconfig",
            str(KUBECONFIG),
            "status",
            release,
            "-n",
            namespace,
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        return
    info = json.loads(done.stdout)
    if not info["info"]["status"].startswith("pending"):
        return
    say(f"release {release} was left {info['info']['status']}: recovering it")
    if info["version"] > 1:
        helm("rollback", release, "-n", namespace, "--wait", "--timeout", TIMEOUT)
    else:
        helm("uninstall", release, "-n", namespace, "--wait", "--timeout", TIMEOUT)


def step(name: str, fn: Callable[[], None], *, fatal: bool = True) -> None:
    t0 = time.monotonic()
    say(f"{name} ...")
    try:
        fn()
    except (StepError, subprocess.TimeoutExpired) as exc:
        result["failed"].append(name)
        say(f"{name}: FAILED after {time.monotonic() - t0:.0f}s: {exc}")
        if fatal:
            finish()
        return
    say(f"{name}: done in {time.monotonic() - t0:.0f}s")


def wait_for(what: str, check: Callable[[], bool], timeout: float, every: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except StepError:
            pass
        time.sleep(every)
    raise StepError(f"timed out after {timeout:.0f}s waiting for {what}")


PG_CLUSTER = "cluster.postgresql.cnpg.io/fraudstream-postgres"


def pg_primary() -> str:
    return kubectl("-n", NS, "get", PG_CLUSTER, "-o", "jsonpath={.status.currentPrimary}")


def psql(sql: str) -> str:
    return kubectl(
        "-n", NS, "exec", pg_primary(), "-c", "postgres", "--", "psql", "-U", "postgres",
        "-d", "fraud", "-tAc", sql,
    ).strip()  # fmt: skip


# -- the steps ----------------------------------------------------------------------------------


def cluster() -> None:
    nodes = json.loads(kubectl("get", "nodes", "-o", "json"))["items"]
    ready = [
        n for n in nodes
        if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])
    ]  # fmt: skip
    result["nodes_ready"] = len(ready)
    if len(ready) != len(nodes) or not nodes:
        raise StepError(f"{len(ready)} of {len(nodes)} nodes Ready (make kind-up)")
    # The nodes' volumes live on the Docker root's file system: MinIO refuses every write (507,
    # "minimum free drive threshold") once it is nearly full, and the scorer stops with it.
    root = run("docker", "info", "--format", "{{.DockerRootDir}}").strip() or "/var/lib/docker"
    free_gb = shutil.disk_usage(root).free / 1e9
    if free_gb < MIN_FREE_GB:
        raise StepError(
            f"{free_gb:.1f} GB free on {root}, under {MIN_FREE_GB} GB: MinIO in the cluster would "
            "refuse writes. Free space first (make kind-clean deletes the cluster's images)."
        )
    missing = sorted(set(OFFLINE_IMAGES) - registry_repositories())
    if missing:
        # A fresh cluster: `make images` first (skaffold builds only the package's six).
        say(f"the registry lacks {', '.join(missing)}: running make images (log: {IMAGES_LOG})")
        run_logged("make images", "images.sh", IMAGES_LOG, "images_seconds")
        missing = sorted(set(OFFLINE_IMAGES) - registry_repositories())
        if missing:
            raise StepError(f"the registry still lacks {', '.join(missing)} after make images")
    images = run("docker", "image", "ls", "--format", "{{.Repository}}", "fraudstream/*").split()
    result["images_built"] = len(
        set(images) - {"fraudstream/kind-node", "fraudstream/kind-base", "fraudstream/registry"}
    )
    result["registry_images"] = len(registry_repositories())


def run_logged(what: str, script: str, log_path: Path, seconds_key: str, **env: str) -> None:
    """scripts/kind/<script> with its output in ``log_path`` and its seconds in
    ``result[seconds_key]``; a failure raises with the log's last lines."""
    t0 = time.monotonic()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as log:
        done = subprocess.run(
            [str(ROOT / "scripts" / "kind" / script)],
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=3600,
        )
    result[seconds_key] = round(time.monotonic() - t0)
    if done.returncode != 0:
        tail = "\n".join(log_path.read_text().splitlines()[-30:])
        raise StepError(f"{what} failed ({log_path}):\n{tail}")


def registry_repositories() -> set[str]:
    catalog = run("curl", "-sf", "--max-time", "10", f"http://{REGISTRY}/v2/_catalog", check=False)
    if not catalog:
        raise StepError(f"the registry http://{REGISTRY} does not answer (make kind-up)")
    return set(json.loads(catalog)["repositories"] or [])


def accepted(manifest: str) -> set[str]:
    """The kinds (lower-case plural.group) the API server accepted in a server-side dry run."""
    out = kubectl("apply", "--dry-run=server", "-n", NS, "-f", "-", stdin=manifest)
    return {line.split("/")[0] for line in out.splitlines() if "(server dry run)" in line}


def operator_resources() -> None:
    """The online profile's resources of operators that do not run offline, applied to the API
    server with their CRDs installed (server-side dry run: validated, admitted, not acted on):
    Strimzi's Kafka, and the platform's Prometheus Operator monitors and rules with its Grafana
    dashboards."""
    crds = CACHE / "k8s" / "crds"
    for name in ("strimzi", "prometheus-operator"):
        kubectl("apply", "--server-side", "-f", str(crds / name))
    kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=120s")
    kinds = accepted((ROOT / "operators" / "strimzi-kafka.yaml").read_text())
    monitoring = helm(
        "template", RELEASE, ROOT / "charts" / "fraud-platform", "-n", NS, *platform_values(),
        "--set", "monitoring.enabled=true", "--show-only", "templates/monitoring.yaml",
        "--kube-version", server_version(),
    )  # fmt: skip
    kinds |= accepted(monitoring)
    say(f"accepted by the API server: {', '.join(sorted(kinds))}")
    wanted = {
        "strimzi": ("kafka.kafka.strimzi.io", "kafkanodepool.kafka.strimzi.io",
                    "kafkatopic.kafka.strimzi.io", "kafkauser.kafka.strimzi.io"),
        "monitoring": ("servicemonitor.monitoring.coreos.com", "podmonitor.monitoring.coreos.com",
                       "prometheusrule.monitoring.coreos.com", "configmap"),
    }  # fmt: skip
    for group, names in wanted.items():
        result[f"{group.replace('-', '_')}_resources_accepted"] = all(n in kinds for n in names)
    if not all(result[f"{g.replace('-', '_')}_resources_accepted"] for g in wanted):
        raise StepError(f"not every resource was accepted: {sorted(kinds)}")


def cloudnative_pg() -> None:
    """CloudNativePG runs the platform's PostgreSQL: its operator, every instance of the cluster
    ready with one primary, and the MLflow and Airflow databases created by their Database
    resources."""
    kubectl(
        "-n", "cnpg-system", "rollout", "status", "deploy/cnpg-controller-manager", "--timeout=60s"
    )
    cluster = json.loads(kubectl("-n", NS, "get", PG_CLUSTER, "-o", "json"))
    result["postgres_instances_ready"] = cluster["status"].get("readyInstances", 0)
    databases = json.loads(kubectl("-n", NS, "get", "databases.postgresql.cnpg.io", "-o", "json"))
    applied = sorted(
        d["spec"]["name"] for d in databases["items"] if d.get("status", {}).get("applied")
    )
    say(
        f"cluster {cluster['status'].get('phase')!r}: {result['postgres_instances_ready']} of "
        f"{cluster['spec']['instances']} instances ready, primary {pg_primary()}, "
        f"PostgreSQL {psql('SHOW server_version').split()[0]}; databases: {', '.join(applied)}"
    )
    whole = result["postgres_instances_ready"] == cluster["spec"]["instances"]
    result["cloudnative_pg_running"] = whole and applied == ["airflow", "mlflow"]
    if not result["cloudnative_pg_running"]:
        raise StepError(f"CloudNativePG's cluster is not whole: {cluster['status']}")


RELEASES = (("spark-operator", "spark-operator"), ("offline-stack", NS), ("online-store", NS),
            (RELEASE, NS))  # fmt: skip


def deploy() -> None:
    """`skaffold run -p offline` (scripts/kind/dev.sh): images built and pushed, the namespaces,
    Secrets and releases of skaffold.yaml's offline profile, the first champion trained by the
    platform's post-install hook. Its output goes to DEPLOY_LOG."""
    for release, namespace in RELEASES:
        unstick(release, namespace)
    one_executor()
    run_logged("skaffold run", "dev.sh", DEPLOY_LOG, "deploy_seconds", SKAFFOLD="run")
    labels = json.loads(kubectl("get", "namespace", NS, "-o", "json"))["metadata"]["labels"]
    result["pod_security"] = labels.get("pod-security.kubernetes.io/enforce")
    if result["pod_security"] != "restricted":
        raise StepError(f"namespace {NS} enforces {result['pod_security']!r}, not restricted")


def platform_values() -> list[str | Path]:
    ci = ROOT / "charts" / "fraud-platform" / "ci"
    return ["-f", ci / "kind-values.yaml", "-f", ci / "kind-offline-values.yaml"]


def server_version() -> str:
    return str(json.loads(kubectl("version", "-o", "json"))["serverVersion"]["gitVersion"])


CHAMPION = """
from mlflow import MlflowClient
from fraudstream.settings import load_settings
m = load_settings().mlflow
client = MlflowClient(m.tracking_uri)
try:
    print(client.get_model_version_by_alias(m.model_name, m.model_alias).version)
except Exception:
    print("none")
"""


def champion() -> str | None:
    out = kubectl(
        "-n", NS, "exec", f"deploy/{RELEASE}-api", "-c", "api", "--", "python", "-c", CHAMPION
    ).strip().splitlines()[-1]  # fmt: skip
    return None if out == "none" else out


def first_champion() -> None:
    """The platform's post-install hook trained the first model in a training pod (the trainer
    image, the training pods' identity) and promoted it; an upgrade of a release that has a
    champion runs no hook. A release without a champion (its registry was wiped) gets the hook
    again, as the release rendered it (`helm get hooks`)."""
    job = kubectl("-n", NS, "get", "job", "bootstrap-champion", "-o", "json", check=False)
    if job:
        status = json.loads(job).get("status", {})
        result["training_pod_succeeded"] = bool(status.get("succeeded"))
        if status.get("startTime") and status.get("completionTime"):
            took = datetime.fromisoformat(status["completionTime"]) - datetime.fromisoformat(
                status["startTime"]
            )
            say(f"bootstrap-champion's training pod took {took.total_seconds():.0f}s")
    kubectl(
        "-n", NS, "wait", "pod", "-l", "app.kubernetes.io/component=api",
        "--for=jsonpath={.status.phase}=Running", "--timeout=900s", timeout=960,
    )  # fmt: skip
    if (version := champion()) is None:
        say("no champion: running the release's bootstrap hook again")
        hooks = helm("get", "hooks", RELEASE, "-n", NS)
        docs = [d for d in hooks.split("\n---") if "name: bootstrap-champion" in d]
        if not docs:
            raise StepError("no champion, and the release has no bootstrap-champion hook")
        kubectl("-n", NS, "delete", "job", "bootstrap-champion", "--ignore-not-found", "--wait")
        kubectl("-n", NS, "apply", "-f", "-", stdin=docs[0])
        kubectl(
            "-n", NS, "wait", "job/bootstrap-champion", "--for=condition=Complete",
            "--timeout=1800s", timeout=1900,
        )  # fmt: skip
        result["training_pod_succeeded"] = True
        version = champion()
    if version is None:
        raise StepError("no champion after the bootstrap training pod")
    if result["training_pod_succeeded"] is False:
        raise StepError("the bootstrap training pod did not succeed")
    result["champion_version"] = version
    say(f"champion: version {version}")


def platform_ready() -> None:
    for name in ("api", "generator", "label-ingest"):
        kubectl(
            "-n",
            NS,
            "rollout",
            "status",
            f"deployment/{RELEASE}-{name}",
            "--timeout=900s",
            timeout=960,
        )

    def running() -> bool:
        app = json.loads(kubectl("-n", NS, "get", "sparkapplication", APP, "-o", "json"))
        state = app.get("status", {}).get("applicationState", {}).get("state")
        return state == "RUNNING" and len(executor_pods()) >= 1

    wait_for("the SparkApplication to run with an executor", running, 900)


def scored() -> int:
    return int(psql("SELECT count(*) FROM transactions_with_score") or 0)


def scores_flow() -> None:
    wait_for("scores in PostgreSQL", lambda: scored() > 0, 900)
    first = scored()
    wait_for("more scores", lambda: scored() > first, 300)
    say(f"{scored()} scores in PostgreSQL")


def api() -> None:
    """GET /health/ready through the API's Service, from another pod of the release (the network
    policies let every pod of the release reach the API)."""
    url = f"http://{RELEASE}-api:8000/health/ready"
    probe = f"import urllib.request\nprint(urllib.request.urlopen({url!r}, timeout=10).status)"
    out = kubectl(
        "-n", NS, "exec", f"deploy/{RELEASE}-label-ingest", "-c", "label-ingest", "--",
        "python", "-c", probe,
    ).strip()  # fmt: skip
    result["api_answered"] = out == "200"
    if not result["api_answered"]:
        raise StepError(f"the API's readiness answered {out!r}")


TOKENS = """
import json, os, sys, urllib.error, urllib.request
def status(method, path, token=None, body=None):
    request = urllib.request.Request(sys.argv[1] + path, method=method, data=body)
    if token:
        request.add_header("Authorization", "Bearer " + token)
    if body is not None:
        request.add_header("Content-Type", "application/json")
    try:
        return urllib.request.urlopen(request, timeout=30).status
    except urllib.error.HTTPError as exc:
        return exc.code
read = os.environ["FRAUDSTREAM_API_READ_TOKEN"]
verdict = json.dumps({"verdict": "confirmed", "analyst": "kind-e2e"}).encode()
print(json.dumps({
    "read": status("GET", "/model", read),
    "none": status("GET", "/model"),
    "read_on_write": status("POST", "/alerts/kind-e2e/verdict", read, verdict),
}))
"""


def api_tokens() -> None:
    """The analyst's read token (api.readTokenKey of the API's Secret) through the Service: a read
    with it answers, without a token it is 401, and the read token on a write is 403."""
    out = kubectl(
        "-n", NS, "exec", f"deploy/{RELEASE}-api", "-c", "api", "--", "python", "-c", TOKENS,
        f"http://{RELEASE}-api:8000",
    ).strip().splitlines()[-1]  # fmt: skip
    got = json.loads(out)
    say(f"GET /model with the read token {got['read']}, without a token {got['none']}; "
        f"a verdict with the read token {got['read_on_write']}")  # fmt: skip
    result["api_read_token"] = got == {"read": 200, "none": 401, "read_on_write": 403}
    if not result["api_read_token"]:
        raise StepError(f"expected 200, 401 and 403: {got}")


def spark_app() -> dict[str, Any]:
    out = kubectl("-n", NS, "get", "sparkapplication", APP, "-o", "json")
    app: dict[str, Any] = json.loads(out)
    return app


LABELS = """
import json, sys
from confluent_kafka import Consumer, TopicPartition
from fraudstream.adapters.object_store import s3_client
from fraudstream.settings import load_settings
settings = load_settings()
bucket, prefix, topic = sys.argv[1], sys.argv[2].rstrip("/") + "/", sys.argv[3]
client = s3_client(settings.s3)
pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
batches = [k for k in keys if "/offsets/" in k and k.rsplit("/", 1)[-1].isdigit()]
read = None
if batches:
    last = max(batches, key=lambda k: int(k.rsplit("/", 1)[-1]))
    for line in client.get_object(Bucket=bucket, Key=last)["Body"].read().decode().splitlines()[2:]:
        offsets = json.loads(line) if line.startswith("{") else {}
        if topic in offsets:
            read = sum(offsets[topic].values())
k = settings.kafka
c = Consumer({"bootstrap.servers": k.bootstrap, **k.client_security(), "group.id": "kind-e2e"})
parts = c.list_topics(topic, timeout=30).topics[topic].partitions
produced = sum(c.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1] for p in parts)
print(json.dumps({"read": read, "produced": produced}))
"""


def labels_read() -> None:
    """The merchant stage reads the labels topic of the values (scorer.labelsTopic): the query's
    latest committed offsets in its S3A checkpoint hold that topic, past its first records, while
    the generator publishes labels to it (their delays scaled down)."""
    app = spark_app()
    env = {e["name"]: e.get("value") for e in app["spec"]["driver"].get("env", [])}
    topic = env.get("FRAUDSTREAM_SCORER_LABELS_TOPIC")
    if not topic:
        raise StepError("the SparkApplication sets no FRAUDSTREAM_SCORER_LABELS_TOPIC")
    arguments = app["spec"]["arguments"]
    checkpoint = arguments[arguments.index("--checkpoint") + 1]
    bucket, _, prefix = checkpoint.split("://", 1)[1].partition("/")
    got: dict[str, Any] = {}

    def read() -> bool:
        out = kubectl(
            "-n", NS, "exec", f"deploy/{RELEASE}-api", "-c", "api", "--", "python", "-c", LABELS,
            bucket, prefix, topic,
        ).strip().splitlines()[-1]  # fmt: skip
        got.update(json.loads(out))
        return bool(got["read"]) and got["produced"] > 0

    try:
        wait_for(f"the scorer's checkpoint past the first records of {topic}", read, 900, 30)
    finally:
        result["labels_read"], result["labels_produced"] = got.get("read"), got.get("produced")
    say(f"{topic}: {got['produced']} labels published, the scorer's checkpoint is at {got['read']}")


SCORER_SETTINGS = """
from fraudstream.settings import ScorerSettings
s = ScorerSettings()
print(s.labels_topic, s.merchant_delay_s)
"""


def merchant_delay() -> None:
    """The running driver's settings carry the values' scorer.merchantDelaySeconds (and labels
    topic), as the package reads them (the scorer keeps scoring with it: the other checks)."""
    app = spark_app()
    env = {e["name"]: e.get("value") for e in app["spec"]["driver"].get("env", [])}
    wanted = float(env.get("FRAUDSTREAM_SCORER_MERCHANT_DELAY_S") or 0)
    out = kubectl(
        "-n", NS, "exec", f"{APP}-driver", "-c", "spark-kubernetes-driver", "--", "python3", "-c",
        SCORER_SETTINGS,
    ).split()  # fmt: skip
    topic, delay = out[-2], float(out[-1])
    result["merchant_delay_s"] = delay
    say(f"the running driver: labels topic {topic}, merchant delay {delay:g}s")
    if not wanted or delay != wanted or topic != env.get("FRAUDSTREAM_SCORER_LABELS_TOPIC"):
        raise StepError(f"the driver runs with {topic}/{delay}, the values say {env}")


def helm_test() -> None:
    helm("test", RELEASE, "-n", NS, "--timeout", "600s")
    result["helm_test_passed"] = True


def executor_pods() -> list[str]:
    out = kubectl(
        "-n", NS, "get", "pods", "-l", f"sparkoperator.k8s.io/app-name={APP},spark-role=executor",
        "--field-selector=status.phase=Running", "-o", "name",
    )  # fmt: skip
    return out.split()


def one_executor() -> None:
    """A re-run starts from the values' single executor. Helm leaves the count an earlier run
    scaled to, and beside three Spark pods of one CPU each a training pod's CPU request fits on
    no node of a 2-core kind cluster (a re-run's retraining DAG waited unscheduled)."""
    found = kubectl(
        "-n", NS, "get", "sparkapplication", APP, "--ignore-not-found",
        "-o", "jsonpath={.spec.executor.instances}",
    ).strip()  # fmt: skip
    if found not in ("", "1"):
        say(f"an earlier run left {found} executors: back to 1")
        kubectl(
            "-n", NS, "patch", "sparkapplication", APP, "--type", "merge",
            "-p", json.dumps({"spec": {"executor": {"instances": 1}}}),
        )  # fmt: skip


def scale_executors() -> None:
    kubectl(
        "-n", NS, "patch", "sparkapplication", APP, "--type", "merge",
        "-p", json.dumps({"spec": {"executor": {"instances": 2}}}),
    )  # fmt: skip
    wait_for("two running executors", lambda: len(executor_pods()) >= 2, 900)
    result["executors_scaled"] = True


def scale_brokers() -> None:
    kubectl("-n", NS, "scale", "statefulset", "fraudstream-kafka", "--replicas=4")
    kubectl("-n", NS, "rollout", "status", "statefulset/fraudstream-kafka", "--timeout=600s")
    result["brokers_scaled"] = True


def delete_broker() -> None:
    before = scored()
    kubectl("-n", NS, "delete", "pod", "fraudstream-kafka-1", "--wait=false")
    wait_for("scores after the broker's restart", lambda: scored() > before, 600)
    kubectl("-n", NS, "rollout", "status", "statefulset/fraudstream-kafka", "--timeout=600s")
    result["broker_pod_deleted"] = True


def driver_uid() -> str:
    return kubectl("-n", NS, "get", "pod", f"{APP}-driver", "-o", "jsonpath={.metadata.uid}")


def delete_driver() -> None:
    """The driver pod is deleted; the operator resubmits the application, which resumes from its
    checkpoint: scores must grow again after the new driver runs."""
    old = driver_uid()
    kubectl("-n", NS, "delete", "pod", f"{APP}-driver", "--wait=false")

    def new_driver_running() -> bool:
        phase = kubectl("-n", NS, "get", "pod", f"{APP}-driver", "-o", "jsonpath={.status.phase}")
        return driver_uid() != old and phase == "Running"

    wait_for("a new driver pod", new_driver_running, 900)
    before = scored()
    # Its first micro-batch holds everything produced while no driver ran: on a loaded 2-core
    # machine that batch alone took nine minutes.
    wait_for("scores from the new driver", lambda: scored() > before, 1800)
    result["driver_pod_deleted"] = True


def postgres_failover() -> None:
    """PostgreSQL's primary pod deleted mid-stream: CloudNativePG promotes the standby (which had
    every commit: replication is synchronous), the scorer's writes go on, and the old primary
    comes back as a standby."""
    old = pg_primary()
    t0 = time.monotonic()
    kubectl("-n", NS, "delete", "pod", old, "--wait=false")

    def promoted() -> bool:
        new = pg_primary()
        if new in ("", old):
            return False
        return psql("SELECT pg_is_in_recovery()") == "f"

    wait_for("a standby promoted", promoted, 600)
    result["postgres_failover_seconds"] = round(time.monotonic() - t0)
    say(f"{pg_primary()} promoted {result['postgres_failover_seconds']}s after {old} was deleted")
    before = scored()
    wait_for("scores written to the new primary", lambda: scored() > before, 900)
    kubectl("-n", NS, "wait", PG_CLUSTER, "--for=condition=Ready", "--timeout=600s")


AIRFLOW = "deploy/fraudstream-airflow"
RETRAIN_TASKS = ("extract_training_set", "train", "evaluate", "promote")
retrain: dict[str, Any] = {}


def airflow(*args: str) -> str:
    return kubectl("-n", NS, "exec", AIRFLOW, "-c", "scheduler", "--", "airflow", *args)


def dag_runs() -> list[dict[str, Any]]:
    """fraud_retrain's runs (Airflow's CLI prints warnings on stdout before its JSON line)."""
    out = airflow("dags", "list-runs", "fraud_retrain", "-o", "json")
    line = next(x for x in reversed(out.splitlines()) if x.startswith("["))
    runs: list[dict[str, Any]] = json.loads(line)
    return runs


def retrain_started() -> None:
    """The Airflow of the offline stack runs the retraining DAG: unpaused, it starts the run of
    its latest daily interval at once (as on a deployment's first day); a cluster where that run
    is over gets a manual run. Each task is a KubernetesPodOperator training pod. The scorer
    keeps scoring meanwhile."""
    wait_for("the DAG fraud_retrain", lambda: "fraud_retrain" in airflow("dags", "list"), 600)
    retrain.update(champion=champion(), started=time.monotonic())
    airflow("dags", "unpause", "fraud_retrain")
    active: list[dict[str, Any]] = []

    def scheduled() -> bool:
        active[:] = [r for r in dag_runs() if r["state"] in ("queued", "running")]
        return bool(active)

    try:
        wait_for("the scheduled run", scheduled, 90)
        run_id = active[0]["run_id"]
    except StepError:
        run_id = f"kind-e2e-{int(time.time())}"
        conf = {"candidates": 2, "smote": False, "reason": "kind-e2e"}
        airflow("dags", "trigger", "fraud_retrain", "--run-id", run_id, "--conf", json.dumps(conf))
    retrain["run_id"] = run_id
    say(f"fraud_retrain run {run_id} (champion: version {retrain['champion']})")


def run_of_retrain() -> dict[str, Any]:
    return next(r for r in dag_runs() if r["run_id"] == retrain["run_id"])


def training_pods() -> int:
    """Pods scheduled for the DAG's tasks (named `fraudstream-<task>-<suffix>` by the operator)
    in the events the API server still keeps (about an hour): every run's, not this run's only."""
    out = kubectl("-n", NS, "get", "events", "--field-selector", "reason=Scheduled", "-o", "json")
    names = {e["involvedObject"]["name"] for e in json.loads(out)["items"]}
    prefixes = tuple(f"fraudstream-{t.replace('_', '-')}-" for t in RETRAIN_TASKS)
    return sum(1 for name in names if name.startswith(prefixes))


def retrain_finished() -> None:
    """The run succeeds; when its gate promoted the challenger, or else once an operator promoted
    it with --override (the gate compares two models of nearly the same data, so either outcome
    is legitimate), the scorer must switch to the new champion without a restart: scores of that
    version reach PostgreSQL while the driver pod stays the same."""
    if not retrain:
        raise StepError("the retraining run was never triggered")

    def ended() -> bool:
        return run_of_retrain()["state"] in ("success", "failed")

    wait_for("the retraining run to end", ended, 2400, 15)
    run = run_of_retrain()
    state = run["state"]
    result["airflow_training_pods"] = training_pods()
    say(f"fraud_retrain {state} in {time.monotonic() - retrain['started']:.0f}s, "
        f"{result['airflow_training_pods']} training pods")  # fmt: skip
    if state != "success":
        tasks = airflow("tasks", "states-for-dag-run", "fraud_retrain", retrain["run_id"])
        raise StepError(f"the retraining run {state}:\n{tasks}")
    driver = driver_uid()
    new = champion()
    if new != retrain["champion"]:
        result["retrain_gate"] = "promoted"
    else:
        result["retrain_gate"] = "refused"
        # The run's cutoff keys its training set (dags/fraudstream_dags/intervals.py).
        cutoff = datetime.fromisoformat(run["run_after"]).astimezone(UTC)
        key = cutoff.strftime("%Y%m%dT%H%M%SZ")
        kubectl(
            "-n", NS, "exec", f"deploy/{RELEASE}-api", "-c", "api", "--", "fraudstream", "promote",
            "--training-set", f"s3://fraudstream-datasets/training/fraud_retrain/{key}/",
            "--override", "kind-e2e: the scorer's hot reload is under test", "--decided-by",
            "kind-e2e", timeout=900,
        )  # fmt: skip
        new = champion()
        if new == retrain["champion"]:
            raise StepError("the override did not move @champion")
    say(f"@champion: version {retrain['champion']} -> {new} ({result['retrain_gate']} by the gate)")
    sql = f"SELECT count(*) FROM transactions_with_score WHERE model_version = '{new}'"
    wait_for(f"scores of version {new}", lambda: int(psql(sql) or 0) > 0, 600)
    # The running driver switched (a restarted one would log "(was None)").
    logs = kubectl("-n", NS, "logs", f"{APP}-driver", "-c", "spark-kubernetes-driver")
    if (
        f"now serving version {new} (was {retrain['champion']})" not in logs
        or driver_uid() != driver
    ):
        raise StepError("the scorer did not switch models in its running driver")
    result["reloaded_version"] = new
    result["champion_version"] = new


COUNT = """
from confluent_kafka import Consumer, TopicPartition
from fraudstream.settings import load_settings
from fraudstream.topics import FRAUD_PREDICTIONS, TRANSACTIONS
k = load_settings().kafka
c = Consumer({"bootstrap.servers": k.bootstrap, **k.client_security(), "group.id": "kind-e2e-count",
              "isolation.level": "read_committed"})
for topic in (TRANSACTIONS.name, FRAUD_PREDICTIONS.name):
    parts = c.list_topics(topic, timeout=30).topics[topic].partitions
    print(sum(c.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1] for p in parts))
"""


def topic_counts() -> tuple[int, int]:
    """Records in the transactions and the predictions topic (sums of end offsets)."""
    out = kubectl(
        "-n", NS, "exec", f"deploy/{RELEASE}-api", "-c", "api", "--", "python", "-c", COUNT
    )
    transactions, predictions = (int(x) for x in out.split())
    return transactions, predictions


def nothing_lost() -> None:
    kubectl("-n", NS, "scale", "deployment", f"{RELEASE}-generator", "--replicas=0")
    kubectl(
        "-n", NS, "wait", "--for=delete", "pod", "-l", "app.kubernetes.io/component=generator",
        "--timeout=120s",
    )  # fmt: skip
    total, _ = topic_counts()
    wait_for(f"all {total} transactions scored", lambda: scored() >= total, 900)
    time.sleep(30)  # a batch in flight finishes its Kafka writes
    rows, distinct = (
        int(x)
        for x in psql(
            "SELECT count(*) || ' ' || count(DISTINCT transaction_id) FROM transactions_with_score"
        ).split()
    )
    _, predictions = topic_counts()
    result["scored_rows"] = rows
    result["duplicates"] = rows - distinct
    result["lost"] = total - distinct
    # The topics are at least once (docs/scorer.md): a batch replayed after a restart publishes
    # its predictions again, which consumers deduplicate by transaction id. Reported, not failed.
    result["predictions_republished"] = predictions - distinct
    say(f"{total} transactions produced, {distinct} scored, {predictions} predictions published")
    kubectl("-n", NS, "scale", "deployment", f"{RELEASE}-generator", "--replicas=1")
    if result["duplicates"] or result["lost"]:
        raise StepError(f"{result['lost']} transactions lost, {result['duplicates']} scored twice")


CONNECT = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])).close()
    print("open")
except OSError as exc:
    print(f"refused: {exc!r}")
"""


def connect_from(deployment: str, container: str, host: str, port: int) -> str:
    return kubectl(
        "-n", NS, "exec", f"deploy/{RELEASE}-{deployment}", "-c", container, "--",
        "python", "-c", CONNECT, host, str(port), "8",
    ).strip().splitlines()[-1]  # fmt: skip


def network_policies() -> None:
    """The release's NetworkPolicies are enforced (kube-network-policies on every node, from
    `make kind-up`): the online store takes connections only from the API and the scorer, so the
    generator's connection to it does not open while the API's does."""
    agents = json.loads(
        kubectl("-n", "kube-system", "get", "daemonset", "kube-network-policies", "-o", "json")
    )["status"]  # fmt: skip
    result["network_policy_agents"] = agents.get("numberReady", 0)
    if result["network_policy_agents"] < result["nodes_ready"]:
        raise StepError(
            f"kube-network-policies ready on {result['network_policy_agents']} of "
            f"{result['nodes_ready']} nodes (make kind-up installs it)"
        )
    host, port = "online-store", 6379
    forbidden = connect_from("generator", "generator", host, port)
    allowed = connect_from("api", "api", host, port)
    say(f"generator -> {host}:{port}: {forbidden}; api -> {host}:{port}: {allowed}")
    result["network_policy_refused"] = forbidden.startswith("refused")
    result["network_policy_allowed"] = allowed == "open"
    if not (result["network_policy_refused"] and result["network_policy_allowed"]):
        raise StepError(f"generator: {forbidden}; api: {allowed}")


def finish() -> None:
    result["seconds"] = round(time.monotonic() - started)
    print(json.dumps(result), flush=True)
    sys.exit(1 if result["failed"] else 0)


def main() -> None:
    if not KUBECONFIG.is_file():
        say(f"no cluster ({KUBECONFIG} missing): run `make kind-up` first")
        sys.exit(2)
    step("cluster, registry and images", cluster)
    step("skaffold run -p offline: images pushed, releases, first champion", deploy)
    step("CloudNativePG runs PostgreSQL", cloudnative_pg, fatal=False)
    step("operator resources accepted by the API server", operator_resources, fatal=False)
    step("first champion from a training pod", first_champion)
    step("scorer SparkApplication, API, generator, label ingest running", platform_ready)
    step("scores reach PostgreSQL", scores_flow)
    step("the retraining DAG triggered in Airflow", retrain_started, fatal=False)
    step("the API answers through its Service", api, fatal=False)
    step("the API's read token: 200 with it, 401 without, 403 on a write", api_tokens, fatal=False)
    step("helm test", helm_test, fatal=False)
    step("NetworkPolicies: a forbidden connection refused, an allowed one open", network_policies,
         fatal=False)  # fmt: skip
    step("the scorer runs with the values' merchant delay", merchant_delay, fatal=False)
    step("training pods retrain, the scorer hot-reloads", retrain_finished, fatal=False)
    step("the merchant stage reads the labels topic", labels_read, fatal=False)
    step("kubectl scales the executors 1 -> 2", scale_executors, fatal=False)
    step("kubectl scales the brokers 3 -> 4", scale_brokers, fatal=False)
    step("a broker pod deleted mid-stream", delete_broker, fatal=False)
    step("the Spark driver pod deleted mid-stream", delete_driver, fatal=False)
    step("PostgreSQL's primary deleted mid-stream", postgres_failover, fatal=False)
    step("every transaction scored once", nothing_lost, fatal=False)
    finish()


if __name__ == "__main__":
    main()
