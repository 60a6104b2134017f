"""A real Kubernetes API server for server-side dry runs: etcd and kube-apiserver on loopback.

kube-apiserver is built from the k8s.io/kubernetes Go module by scripts/k8s-tools.sh; etcd comes
from the system (Debian's etcd-server). The server runs with a static admin token, no controllers
and no kubelets: it admits or rejects objects exactly as a cluster's API server would (schemas,
CRD validation rules, Pod Security admission), and ``dryRun=All`` keeps every object out of etcd.
"""

from __future__ import annotations

import secrets
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

Obj = dict[str, Any]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _service_account_keys(directory: Path) -> tuple[Path, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private, public = directory / "sa.key", directory / "sa.pub"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


@dataclass
class ApiServer:
    """A started API server: ``client`` talks to it as cluster admin."""

    client: httpx.Client
    _plurals: dict[tuple[str, str], tuple[str, bool]] = field(default_factory=dict)

    def resource(self, api_version: str, kind: str) -> tuple[str, bool]:
        """(collection path prefix, namespaced) of a kind, from the server's discovery."""
        if (api_version, kind) not in self._plurals:
            base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
            listing = self.client.get(base)
            listing.raise_for_status()
            for item in listing.json()["resources"]:
                if "/" not in item["name"]:
                    self._plurals[(api_version, item["kind"])] = (
                        f"{base}/{item['name']}",
                        item["namespaced"],
                    )
        return self._plurals[(api_version, kind)]

    def create(self, obj: Obj, namespace: str, *, dry_run: bool) -> httpx.Response:
        """POST an object with strict field validation; ``dry_run`` stores nothing."""
        collection, namespaced = self.resource(obj["apiVersion"], obj["kind"])
        if namespaced:
            prefix, _, plural = collection.rpartition("/")
            ns = obj.get("metadata", {}).get("namespace", namespace)
            collection = f"{prefix}/namespaces/{ns}/{plural}"
        params = {"fieldValidation": "Strict"}
        if dry_run:
            params["dryRun"] = "All"
        return self.client.post(collection, json=obj, params=params)

    def install_crds(self, crds: list[Obj], timeout_s: float = 60) -> None:
        """Create CRDs for real and wait until the server serves each of them."""
        for crd in crds:
            response = self.create(crd, "", dry_run=False)
            if response.status_code not in (201, 409):
                raise RuntimeError(f"CRD {crd['metadata']['name']}: {response.text}")
        deadline = time.monotonic() + timeout_s
        for crd in crds:
            path = (
                f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd['metadata']['name']}"
            )
            while not _established(self.client.get(path).json()):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"CRD {crd['metadata']['name']} not established")
                time.sleep(0.2)
        self._plurals.clear()


def _established(crd: Obj) -> bool:
    conditions = crd.get("status", {}).get("conditions", [])
    return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)


@contextmanager
def running(
    apiserver: Path, etcd: Path, workdir: Path, timeout_s: float = 90
) -> Iterator[ApiServer]:
    """Start etcd and kube-apiserver under ``workdir``; stop both (SIGTERM, then kill) on exit."""
    token = secrets.token_hex(16)
    (workdir / "tokens.csv").write_text(f"{token},admin,admin,system:masters\n")
    private, public = _service_account_keys(workdir)
    etcd_port, etcd_peer, api_port = _free_port(), _free_port(), _free_port()
    etcd_url = f"http://127.0.0.1:{etcd_port}"
    logs = (workdir / "etcd.log").open("w"), (workdir / "apiserver.log").open("w")
    procs = [
        subprocess.Popen(
            [str(etcd), "--data-dir", str(workdir / "etcd"), "--listen-client-urls", etcd_url,
             "--advertise-client-urls", etcd_url,
             "--listen-peer-urls", f"http://127.0.0.1:{etcd_peer}"],
            stdout=logs[0], stderr=subprocess.STDOUT,
        ),
        subprocess.Popen(
            [str(apiserver), "--etcd-servers", etcd_url, "--bind-address", "127.0.0.1",
             "--secure-port", str(api_port), "--cert-dir", str(workdir / "certs"),
             "--token-auth-file", str(workdir / "tokens.csv"), "--authorization-mode", "RBAC",
             "--service-account-issuer", "https://kubernetes.default.svc",
             "--service-account-key-file", str(public),
             "--service-account-signing-key-file", str(private),
             "--service-cluster-ip-range", "10.96.0.0/16",
             # No controller manager runs, so no "default" ServiceAccount is ever created.
             "--disable-admission-plugins", "ServiceAccount"],
            stdout=logs[1], stderr=subprocess.STDOUT,
        ),
    ]  # fmt: skip
    client = None
    try:
        # The server writes its self-signed certificate (with its CA) before it serves.
        certificate = workdir / "certs" / "apiserver.crt"
        _wait(lambda: certificate.exists(), procs, workdir, timeout_s)
        client = httpx.Client(
            base_url=f"https://127.0.0.1:{api_port}",
            headers={"Authorization": f"Bearer {token}"},
            verify=ssl.create_default_context(cafile=str(certificate)),
            timeout=30,
        )
        _wait(lambda: _ready(client), procs, workdir, timeout_s)
        yield ApiServer(client)
    finally:
        if client is not None:
            client.close()
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        for log in logs:
            log.close()


def _ready(client: httpx.Client) -> bool:
    try:
        return client.get("/readyz").status_code == 200
    except httpx.TransportError:
        return False


def _wait(
    condition: Callable[[], bool],
    procs: list[subprocess.Popen[bytes]],
    workdir: Path,
    timeout_s: float,
) -> None:
    """Poll until condition holds; fail early, with the log tail, if a process exits."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        for proc in procs:
            if proc.poll() is not None:
                tail = (workdir / "apiserver.log").read_text()[-2000:]
                raise RuntimeError(f"{proc.args[0]} exited {proc.returncode}: {tail}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"kube-apiserver not ready after {timeout_s} s (logs in {workdir})")
        time.sleep(0.5)
