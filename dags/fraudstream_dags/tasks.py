"""The one place that decides how a task runs: a pod on Kubernetes, a local process elsewhere.

Every task of every DAG is a call of the project's CLI (``fraudstream <args>``):

- ``kubernetes``: a KubernetesPodOperator running the trainer image, with the chart's
  ConfigMap of settings, credentials only from Secrets, a dedicated service account
  without an API token, requests and limits, the restricted Pod Security profile, and the
  pod deleted when it finishes (logs stay in Airflow);
- ``local`` (the embedded platform): a BashOperator running the main virtualenv's
  ``fraudstream`` with the environment Airflow was started with (the platform's ports and
  home), so a task behaves as the same command typed in a shell.

Arguments may hold Jinja templates (``{{ params.days }}``...); both operators render
them. ``skip_on_exit_code`` turns a CLI's "nothing to do" exit code into a skipped task.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, Literal

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import BaseOperator

from fraudstream_dags.config import DagConfig, PodDefaults

Size = Literal["small", "training"]

RESOURCES: dict[Size, dict[str, dict[str, str]]] = {
    "small": {
        "requests": {"cpu": "250m", "memory": "512Mi"},
        "limits": {"cpu": "1", "memory": "1Gi"},
    },
    "training": {
        "requests": {"cpu": "1", "memory": "4Gi"},
        "limits": {"cpu": "2", "memory": "8Gi"},
    },
}
"""Requests and limits per kind of task (the trainer builds features in memory)."""

RUN_AS = 10001
"""The non-root user of the package images (images/python/Dockerfile)."""


class CliOperator(BashOperator):
    """BashOperator for one CLI call whose arguments are rendered first, then shell-quoted.

    Quoting before rendering would hand Jinja a mangled template, and a rendered value (a
    manual run's parameter) must never be able to break out of its argument.
    """

    template_fields = ("cli_args", "env", "cwd")

    def __init__(self, *, cli: str, cli_args: Sequence[str], **kwargs: Any) -> None:
        super().__init__(bash_command=shlex.join([cli, *cli_args]), **kwargs)
        self.cli = cli
        self.cli_args = list(cli_args)

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        super().render_template_fields(context, jinja_env)
        self.bash_command = shlex.join([self.cli, *(str(a) for a in self.cli_args)])


def default_args(config: DagConfig) -> dict[str, Any]:
    """Retries with exponential back-off: a failed attempt shows in the UI and is retried."""
    return {
        "owner": "fraudstream",
        "retries": config.retries,
        "retry_delay": timedelta(seconds=config.retry_delay_s),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(hours=1),
    }


def cli_task(
    config: DagConfig,
    task_id: str,
    args: Sequence[str],
    *,
    size: Size = "small",
    skip_on_exit_code: int | None = None,
    doc_md: str | None = None,
    timeout: timedelta = timedelta(hours=2),
) -> BaseOperator:
    """A task running ``fraudstream <args>`` where the DAG runs (see the module doc)."""
    common: dict[str, Any] = {
        "task_id": task_id,
        "doc_md": doc_md,
        "execution_timeout": timeout,
    }
    if config.runtime == "kubernetes":
        return _pod(config.pods, list(args), size, skip_on_exit_code, common)
    return CliOperator(cli=config.cli, cli_args=args, skip_on_exit_code=skip_on_exit_code, **common)


def _secret_env(name: str, secret: str, key: str) -> Any:
    from kubernetes.client import models as k8s

    return k8s.V1EnvVar(
        name=name,
        value_from=k8s.V1EnvVarSource(secret_key_ref=k8s.V1SecretKeySelector(name=secret, key=key)),
    )


def pod_env(pods: PodDefaults) -> list[Any]:
    """Credentials by reference only, the names the platform chart's workloads use."""
    from kubernetes.client import models as k8s

    return [
        k8s.V1EnvVar(name="FRAUDSTREAM_MODE", value="kubernetes"),
        k8s.V1EnvVar(name="FRAUDSTREAM_KAFKA_SASL_USERNAME", value=pods.kafka_user),
        _secret_env("FRAUDSTREAM_KAFKA_SASL_PASSWORD", pods.kafka_user, "password"),
        _secret_env("FRAUDSTREAM_POSTGRES_USER", pods.postgres_secret, "username"),
        _secret_env("FRAUDSTREAM_POSTGRES_PASSWORD", pods.postgres_secret, "password"),
        _secret_env("FRAUDSTREAM_S3_ACCESS_KEY", pods.s3_secret, pods.s3_access_key_key),
        _secret_env("FRAUDSTREAM_S3_SECRET_KEY", pods.s3_secret, pods.s3_secret_key_key),
    ]


def _pod(
    pods: PodDefaults,
    args: list[str],
    size: Size,
    skip_on_exit_code: int | None,
    common: dict[str, Any],
) -> BaseOperator:
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from kubernetes.client import models as k8s

    resources = RESOURCES[size]
    volumes = [k8s.V1Volume(name="tmp", empty_dir=k8s.V1EmptyDirVolumeSource())]
    mounts = [k8s.V1VolumeMount(name="tmp", mount_path="/tmp")]  # noqa: S108 (read-only root)
    if pods.kafka_ca_secret:  # no CA where the Kafka listener has no TLS (the offline profile)
        volumes.append(
            k8s.V1Volume(
                name="kafka-ca",
                secret=k8s.V1SecretVolumeSource(
                    secret_name=pods.kafka_ca_secret,
                    items=[k8s.V1KeyToPath(key="ca.crt", path="ca.crt")],
                ),
            )
        )
        mounts.append(
            k8s.V1VolumeMount(
                name="kafka-ca", mount_path="/etc/fraudstream/kafka-ca", read_only=True
            )
        )
    return KubernetesPodOperator(
        name=f"fraudstream-{common['task_id'].replace('_', '-')}",
        namespace=pods.namespace,
        image=pods.image,
        image_pull_policy=pods.image_pull_policy,
        cmds=["fraudstream"],
        arguments=args,
        labels={
            "app.kubernetes.io/name": "fraudstream",
            "app.kubernetes.io/component": "trainer",
            "app.kubernetes.io/part-of": "fraudstream",
        },
        service_account_name=pods.service_account,
        automount_service_account_token=False,
        container_resources=k8s.V1ResourceRequirements(
            requests=resources["requests"], limits=resources["limits"]
        ),
        security_context=k8s.V1PodSecurityContext(
            run_as_non_root=True,
            run_as_user=RUN_AS,
            run_as_group=RUN_AS,
            fs_group=RUN_AS,
            seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
        ),
        container_security_context=k8s.V1SecurityContext(
            run_as_non_root=True,
            run_as_user=RUN_AS,
            allow_privilege_escalation=False,
            read_only_root_filesystem=True,
            capabilities=k8s.V1Capabilities(drop=["ALL"]),
            seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
        ),
        env_from=[
            k8s.V1EnvFromSource(config_map_ref=k8s.V1ConfigMapEnvSource(name=pods.config_map))
        ],
        env_vars=pod_env(pods),
        volumes=volumes,
        volume_mounts=mounts,
        # Service links would add <SERVICE>_PORT variables: a Service named fraudstream-mlflow
        # sets FRAUDSTREAM_MLFLOW_PORT=tcp://..., which the package's settings read as theirs.
        full_pod_spec=k8s.V1Pod(spec=k8s.V1PodSpec(containers=[], enable_service_links=False)),
        on_finish_action="delete_pod",
        get_logs=True,
        in_cluster=True,
        reattach_on_restart=True,
        startup_timeout_seconds=pods.startup_timeout_s,
        skip_on_exit_code=skip_on_exit_code,
        **common,
    )
