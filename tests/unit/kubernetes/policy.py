"""Policy checks on rendered Kubernetes objects: what schemas cannot say.

Each check takes one object (a parsed manifest) and returns its violations as readable strings;
an empty list means the object complies. Pod-bearing objects are the workload kinds plus the
Spark Operator's SparkApplication, whose driver and executor carry their own security contexts
and sizes instead of a pod template.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

Obj = dict[str, Any]

_TEMPLATED = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}
_SECCOMP_OK = {"RuntimeDefault", "Localhost"}
_PINNED_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*[0-9][A-Za-z0-9_.-]*$")


def name_of(obj: Obj) -> str:
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


def pod_specs(obj: Obj) -> Iterator[tuple[str, Obj]]:
    """(where, pod spec) for every pod an object creates. A SparkApplication role is presented
    as a pod spec of one container so the same checks apply."""
    kind, spec = obj.get("kind"), obj.get("spec", {})
    if kind == "Pod":
        yield name_of(obj), spec
    elif kind in _TEMPLATED:
        yield name_of(obj), spec["template"]["spec"]
    elif kind == "CronJob":
        yield name_of(obj), spec["jobTemplate"]["spec"]["template"]["spec"]
    elif kind == "SparkApplication":
        for role in ("driver", "executor"):
            part = spec[role]
            container = {
                "name": role,
                "image": part.get("image", spec.get("image")),
                "securityContext": part.get("securityContext"),
            }
            pod = {"securityContext": part.get("podSecurityContext"), "containers": [container]}
            yield f"{name_of(obj)} {role}", pod


def _containers(pod: Obj) -> Iterator[Obj]:
    yield from pod.get("initContainers") or []
    yield from pod.get("containers") or []


def restricted_violations(obj: Obj) -> list[str]:
    """The "restricted" Pod Security Standard, plus a read-only root filesystem."""
    found = []
    for where, pod in pod_specs(obj):
        psc = pod.get("securityContext") or {}
        for key in ("hostNetwork", "hostPID", "hostIPC"):
            if pod.get(key):
                found.append(f"{where}: {key}")
        for volume in pod.get("volumes") or []:
            if "hostPath" in volume:
                found.append(f"{where}: hostPath volume {volume['name']}")
        for c in _containers(pod):
            found += [f"{where} container {c['name']}: {v}" for v in _container_issues(psc, c)]
    return found


def _container_issues(psc: Obj, container: Obj) -> list[str]:
    csc = container.get("securityContext") or {}
    issues = []
    if csc.get("runAsNonRoot", psc.get("runAsNonRoot")) is not True:
        issues.append("runAsNonRoot is not true")
    if csc.get("runAsUser", psc.get("runAsUser")) == 0:
        issues.append("runs as uid 0")
    seccomp = (csc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
    if seccomp not in _SECCOMP_OK:
        issues.append(f"seccompProfile {seccomp!r}")
    if csc.get("allowPrivilegeEscalation") is not False:
        issues.append("allowPrivilegeEscalation is not false")
    if csc.get("privileged"):
        issues.append("privileged")
    caps = csc.get("capabilities") or {}
    if "ALL" not in (caps.get("drop") or []):
        issues.append("capabilities do not drop ALL")
    if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
        issues.append(f"adds capabilities {caps['add']}")
    if csc.get("readOnlyRootFilesystem") is not True:
        issues.append("root filesystem is writable")
    issues += [f"hostPort {p['hostPort']}" for p in container.get("ports") or [] if "hostPort" in p]
    return issues


def resource_violations(obj: Obj) -> list[str]:
    """Every container requests and limits CPU and memory (a SparkApplication: cores, coreLimit
    and memory for driver and executor)."""
    if obj.get("kind") == "SparkApplication":
        return [
            f"{name_of(obj)} {role}: {key} unset"
            for role in ("driver", "executor")
            for key in ("cores", "coreLimit", "memory")
            if not obj["spec"][role].get(key)
        ]
    found = []
    for where, pod in pod_specs(obj):
        for c in _containers(pod):
            res = c.get("resources") or {}
            for part in ("requests", "limits"):
                for key in ("cpu", "memory"):
                    if not (res.get(part) or {}).get(key):
                        found.append(f"{where} container {c['name']}: {part}.{key} unset")
    return found


def images_of(obj: Obj) -> list[str]:
    images = []
    for _, pod in pod_specs(obj):
        images += [c["image"] for c in _containers(pod)]
    return images


def is_pinned(image: str) -> bool:
    """A digest, or a tag with a version number (never ``latest``, never absent)."""
    if "@sha256:" in image:
        return True
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return False
    tag = last.rsplit(":", 1)[1]
    return tag != "latest" and bool(_PINNED_TAG.match(tag))


def image_violations(obj: Obj) -> list[str]:
    """Images pinned, and none from Bitnami (its free images are frozen)."""
    found = []
    for image in images_of(obj):
        if not is_pinned(image):
            found.append(f"{name_of(obj)}: image {image} is not pinned")
        if "bitnami" in image.lower():
            found.append(f"{name_of(obj)}: Bitnami image {image}")
    return found


def strimzi_violations(obj: Obj) -> list[str]:
    """Strimzi 1.x serves only kafka.strimzi.io/v1."""
    api = str(obj.get("apiVersion", ""))
    if api.startswith("kafka.strimzi.io/") and api != "kafka.strimzi.io/v1":
        return [f"{name_of(obj)}: {api} (Strimzi 1.x serves only kafka.strimzi.io/v1)"]
    return []


def all_violations(obj: Obj) -> list[str]:
    return (
        restricted_violations(obj)
        + resource_violations(obj)
        + image_violations(obj)
        + strimzi_violations(obj)
    )
