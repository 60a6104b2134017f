"""The DAGs import cleanly in Airflow, and their Kubernetes pods are what the cluster expects.

Airflow lives in its own virtualenv (``make airflow-venv``), so the DAGs are parsed there, in
a subprocess, once per mode: ``local`` (tasks are local processes) and ``kubernetes`` (tasks
are KubernetesPodOperator pods). For the pods, every template is rendered for a fixed data
interval and ``build_pod_request_obj(dry_run=True)`` builds the pod without a cluster; the
pods are then checked field by field, against the restricted Pod Security policy, and by
kubeconform against the Kubernetes schemas.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
import yaml

from .policy import all_violations
from .toolchain import REPO, Toolchain

AIRFLOW_PYTHON = REPO / ".venv-airflow" / "bin" / "python"
IMAGE = "registry.example.com/fraudstream/trainer@sha256:" + "a" * 64
CUTOFF = "2026-02-01T03:00:00+00:00"
TRIGGERED = "2026-02-01T11:22:33+00:00"  # a run triggered by hand, without a logical date
SECRET_VARS = {
    "FRAUDSTREAM_KAFKA_SASL_PASSWORD": ("fraudstream-trainer", "password"),
    "FRAUDSTREAM_POSTGRES_USER": ("fraudstream-postgres-app", "username"),
    "FRAUDSTREAM_POSTGRES_PASSWORD": ("fraudstream-postgres-app", "password"),
    "FRAUDSTREAM_S3_ACCESS_KEY": ("fraudstream-s3", "access-key"),
    "FRAUDSTREAM_S3_SECRET_KEY": ("fraudstream-s3", "secret-key"),
}

# Runs inside the Airflow virtualenv: parse the DAG folder in both modes and describe it.
DESCRIBE = r"""
import copy, datetime, json, os, sys
import pathlib
from types import SimpleNamespace
from airflow.dag_processing.dagbag import BundleDagBag
from kubernetes.client import ApiClient

END = datetime.datetime.fromisoformat(sys.argv[2])
# A scheduled run has its interval in the context and on dag_run; a run triggered without a
# logical date (Airflow 3's CLI and API default) has neither, only the moment it was triggered.
TRIGGERED = datetime.datetime.fromisoformat(sys.argv[3])
SCHEDULED = {
    "data_interval_end": END, "dag_run": SimpleNamespace(data_interval_end=END, run_after=END),
}
MANUAL = {"dag_run": SimpleNamespace(data_interval_end=None, run_after=TRIGGERED)}
out = {}
for mode in ("local", "kubernetes"):
    os.environ["FRAUDSTREAM_MODE"] = mode
    # As the DAG processor parses a bundle: its folder is importable (fraudstream_dags).
    bag = BundleDagBag(dag_folder=sys.argv[1], bundle_path=pathlib.Path(sys.argv[1]))
    dags = {}
    for dag_id, dag in bag.dags.items():
        tasks = {}
        for task in dag.tasks:
            info = {
                "type": type(task).__name__,
                "retries": task.retries,
                "skip_on_exit_code": sorted(getattr(task, "skip_on_exit_code", None) or []),
            }
            if mode == "local" and hasattr(task, "bash_command"):
                manual = copy.deepcopy(task)
                context = {"params": dag.params.dump(), **MANUAL}
                manual.render_template_fields(context, jinja_env=dag.get_template_env())
                info["manual_bash_command"] = manual.bash_command
                context = {"params": dag.params.dump(), **SCHEDULED}
                task.render_template_fields(context, jinja_env=dag.get_template_env())
                info["bash_command"] = task.bash_command
            if type(task).__name__ == "KubernetesPodOperator":
                manual = copy.deepcopy(task)
                context = {"params": dag.params.dump(), **MANUAL}
                manual.render_template_fields(context, jinja_env=dag.get_template_env())
                info["manual_arguments"] = manual.arguments
                context = {"params": dag.params.dump(), **SCHEDULED}
                task.render_template_fields(context, jinja_env=dag.get_template_env())
                pod = task.build_pod_request_obj(dry_run=True)
                info["pod"] = ApiClient().sanitize_for_serialization(pod)
                info["on_finish_action"] = task.on_finish_action.value
            tasks[task.task_id] = info
        dags[dag_id] = {
            "schedule": str(dag.timetable.expression),
            "max_active_runs": dag.max_active_runs,
            "tasks": tasks,
        }
    out[mode] = {
        "import_errors": {str(k): str(v) for k, v in bag.import_errors.items()},
        "dags": dags,
    }
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def described(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if not AIRFLOW_PYTHON.is_file():
        pytest.fail(f"{AIRFLOW_PYTHON} is missing: run `make airflow-venv`", pytrace=False)
    home = tmp_path_factory.mktemp("airflow-home")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "FRAUDSTREAM_TRAINER_IMAGE": IMAGE,
        "FRAUDSTREAM_CLI": "/opt/fraudstream/bin/fraudstream",
    }
    proc = subprocess.run(
        [str(AIRFLOW_PYTHON), "-c", DESCRIBE, str(REPO / "dags"), CUTOFF, TRIGGERED],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    doc: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return doc


@pytest.mark.parametrize("mode", ["local", "kubernetes"])
def test_dagbag_imports_without_errors(described: dict[str, Any], mode: str) -> None:
    parsed = described[mode]
    assert parsed["import_errors"] == {}
    assert set(parsed["dags"]) == {"fraud_retrain", "fraud_monitor", "fraud_retention"}
    retrain, monitor = parsed["dags"]["fraud_retrain"], parsed["dags"]["fraud_monitor"]
    assert retrain["schedule"] == "0 3 * * *"
    assert monitor["schedule"] == "0 * * * *"
    assert retrain["max_active_runs"] == monitor["max_active_runs"] == 1
    assert list(retrain["tasks"]) == ["extract_training_set", "train", "evaluate", "promote"]
    assert list(monitor["tasks"]) == ["monitor", "breach_gate", "trigger_retrain"]
    assert parsed["dags"]["fraud_retention"]["schedule"] == "30 1 * * *"
    assert list(parsed["dags"]["fraud_retention"]["tasks"]) == ["retention"]
    for dag in parsed["dags"].values():
        for task in dag["tasks"].values():
            assert task["retries"] >= 1


def test_local_tasks_run_the_project_cli(described: dict[str, Any]) -> None:
    tasks = described["local"]["dags"]["fraud_retrain"]["tasks"]
    assert {t["type"] for t in tasks.values()} == {"CliOperator"}
    for task_id, task in tasks.items():
        assert task["bash_command"].startswith("/opt/fraudstream/bin/fraudstream "), task_id
    # Rendered, then quoted: the conditional flag is one plain argument.
    assert tasks["train"]["bash_command"] == (
        "/opt/fraudstream/bin/fraudstream train --training-set "
        "s3://fraudstream-datasets/training/fraud_retrain/20260201T030000Z/ "
        "--candidates 20 --smote --run-key fraud_retrain/20260201T030000Z --json"
    )
    assert tasks["extract_training_set"]["skip_on_exit_code"] == [4]
    gate = described["local"]["dags"]["fraud_monitor"]["tasks"]["breach_gate"]
    assert gate["skip_on_exit_code"] == [99]
    assert gate["bash_command"].endswith("monitor-gate --window-end 2026-02-01T03:00:00+00:00")


def _pods(described: dict[str, Any]) -> dict[str, dict[str, Any]]:
    pods = {}
    for dag_id, dag in described["kubernetes"]["dags"].items():
        for task_id, task in dag["tasks"].items():
            if "pod" in task:
                pods[f"{dag_id}.{task_id}"] = task
    return pods


def test_every_cli_task_is_a_pod_on_kubernetes(described: dict[str, Any]) -> None:
    pods = _pods(described)
    assert set(pods) == {
        "fraud_retrain.extract_training_set",
        "fraud_retrain.train",
        "fraud_retrain.evaluate",
        "fraud_retrain.promote",
        "fraud_monitor.monitor",
        "fraud_monitor.breach_gate",
        "fraud_retention.retention",
    }
    trigger = described["kubernetes"]["dags"]["fraud_monitor"]["tasks"]["trigger_retrain"]
    assert trigger["type"] == "TriggerDagRunOperator"


def test_pods_run_the_trainer_image_with_the_cli(described: dict[str, Any]) -> None:
    pods = _pods(described)
    for where, task in pods.items():
        pod = task["pod"]
        (container,) = pod["spec"]["containers"]
        assert container["image"] == IMAGE, where
        assert container["command"] == ["fraudstream"], where
        assert pod["spec"]["serviceAccountName"] == "fraud-platform-trainer", where
        assert pod["spec"]["automountServiceAccountToken"] is False, where
        assert pod["spec"]["enableServiceLinks"] is False, where
        assert {v["name"] for v in pod["spec"]["volumes"]} == {"tmp", "kafka-ca"}, where
        assert pod["metadata"]["namespace"] == "fraudstream", where
        assert task["on_finish_action"] == "delete_pod", where
    train = pods["fraud_retrain.train"]["pod"]["spec"]["containers"][0]
    assert train["args"][:3] == [
        "train",
        "--training-set",
        "s3://fraudstream-datasets/training/fraud_retrain/20260201T030000Z/",
    ]
    assert "--smote" in train["args"]
    extract = pods["fraud_retrain.extract_training_set"]["pod"]["spec"]["containers"][0]
    assert extract["args"][:3] == ["extract-training-set", "--as-of", CUTOFF]
    promote = pods["fraud_retrain.promote"]["pod"]["spec"]["containers"][0]
    key = promote["args"][promote["args"].index("--request-key") + 1]
    assert key == "fraud_retrain/20260201T030000Z"
    # A retried train reuses the version registered under the same cutoff.
    assert train["args"][train["args"].index("--run-key") + 1] == key
    monitor = pods["fraud_monitor.monitor"]["pod"]["spec"]["containers"][0]
    assert monitor["args"][:3] == ["monitor", "--window-end", CUTOFF]
    retention = pods["fraud_retention.retention"]["pod"]["spec"]["containers"][0]
    assert retention["args"] == ["retention", "--today", CUTOFF, "--json"]


def test_a_run_triggered_without_a_logical_date_is_cut_off_when_it_was_triggered(
    described: dict[str, Any],
) -> None:
    """Airflow 3's `dags trigger` and the REST API start a run with no logical date and no data
    interval: every task still renders, keyed by the moment of the trigger."""
    tasks = described["kubernetes"]["dags"]
    extract = tasks["fraud_retrain"]["tasks"]["extract_training_set"]["manual_arguments"]
    assert extract[:3] == ["extract-training-set", "--as-of", TRIGGERED]
    train = tasks["fraud_retrain"]["tasks"]["train"]["manual_arguments"]
    assert "s3://fraudstream-datasets/training/fraud_retrain/20260201T112233Z/" in train
    monitor = tasks["fraud_monitor"]["tasks"]["monitor"]["manual_arguments"]
    assert monitor[:3] == ["monitor", "--window-end", TRIGGERED]
    local = described["local"]["dags"]["fraud_retention"]["tasks"]["retention"]
    assert f"--today {TRIGGERED}" in local["manual_bash_command"]


def test_pods_size_training_apart(described: dict[str, Any]) -> None:
    pods = _pods(described)
    train = pods["fraud_retrain.train"]["pod"]["spec"]["containers"][0]["resources"]
    gate = pods["fraud_monitor.breach_gate"]["pod"]["spec"]["containers"][0]["resources"]
    assert train == {
        "requests": {"cpu": "1", "memory": "4Gi"},
        "limits": {"cpu": "2", "memory": "8Gi"},
    }
    assert gate["limits"] == {"cpu": "1", "memory": "1Gi"}


def test_credentials_come_only_from_secrets(described: dict[str, Any]) -> None:
    for where, task in _pods(described).items():
        container = task["pod"]["spec"]["containers"][0]
        env = {e["name"]: e for e in container["env"]}
        for name, (secret, key) in SECRET_VARS.items():
            assert "value" not in env[name], f"{where}: {name} is inline"
            assert env[name]["valueFrom"]["secretKeyRef"] == {"name": secret, "key": key}, where
        assert container["envFrom"] == [{"configMapRef": {"name": "fraud-platform-env"}}]
        assert env["FRAUDSTREAM_MODE"]["value"] == "kubernetes"


def test_pods_meet_the_restricted_policy(described: dict[str, Any]) -> None:
    for where, task in _pods(described).items():
        pod = task["pod"]
        assert all_violations(pod) == [], where
        assert pod["spec"]["securityContext"]["runAsUser"] == 10001
        container = pod["spec"]["containers"][0]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert {"/tmp", "/etc/fraudstream/kafka-ca"} <= mounts  # noqa: S108 (emptyDir mount)


def test_pods_validate_as_kubernetes_objects(described: dict[str, Any], chain: Toolchain) -> None:
    pods = [task["pod"] for task in _pods(described).values()]
    count, problems = chain.validate(yaml.safe_dump_all(pods))
    assert problems == []
    assert count == len(pods)


def test_validation_rejects_a_broken_pod(described: dict[str, Any], chain: Toolchain) -> None:
    pod = json.loads(json.dumps(_pods(described)["fraud_retrain.train"]["pod"]))
    pod["spec"]["containers"][0]["resources"]["limits"]["cpu"] = {"cores": 2}
    pod["spec"]["containers"][0]["imagePullPolicy"] = ["IfNotPresent"]
    _, problems = chain.validate(yaml.safe_dump(pod))
    assert problems


def _dag_config(monkeypatch: pytest.MonkeyPatch) -> Any:
    """dags/fraudstream_dags/config.py as a module of its own (Airflow is not imported)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "dag_config", REPO / "dags" / "fraudstream_dags" / "config.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "dag_config", module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_an_empty_kafka_ca_secret_means_a_listener_without_tls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The offline profile sets FRAUDSTREAM_TRAINER_KAFKA_CA_SECRET to "": no CA to mount."""
    module = _dag_config(monkeypatch)
    monkeypatch.setenv("FRAUDSTREAM_TRAINER_KAFKA_CA_SECRET", "")
    assert module.DagConfig.from_env().pods.kafka_ca_secret == ""
    monkeypatch.delenv("FRAUDSTREAM_TRAINER_KAFKA_CA_SECRET")
    assert module.DagConfig.from_env().pods.kafka_ca_secret == "fraudstream-cluster-ca-cert"


def test_the_retrain_defaults_are_sized_by_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A scheduled fraud_retrain takes its parameters' defaults; a small cluster lowers them."""
    module = _dag_config(monkeypatch)
    config = module.DagConfig.from_env()
    assert (config.retrain_candidates, config.retrain_smote) == (20, True)
    monkeypatch.setenv("FRAUDSTREAM_RETRAIN_CANDIDATES", "4")
    monkeypatch.setenv("FRAUDSTREAM_RETRAIN_SMOTE", "false")
    config = module.DagConfig.from_env()
    assert (config.retrain_candidates, config.retrain_smote) == (4, False)
