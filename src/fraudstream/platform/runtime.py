"""The embedded platform's supervisor: `up`, `down`, `status`, `logs` and `reset`.

State lives under ``settings.platform.home``: one directory per service, logs in
``logs/``, process records in ``run/``. `up` (every service, or with ``only`` some and what
they need) is idempotent: it starts what is not running (restarting a dead service,
Airflow's processes included when Airflow was running, and recording the restart for
`status`), waits for health, then configures (roles, databases, migrations, buckets, topics).
`down` stops only what `up` started and verifies that none of the platform's ports still listen.
"""

from __future__ import annotations

import fcntl
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from fraudstream.adapters.kafka import broker_ids, ensure_topics
from fraudstream.platform import process
from fraudstream.platform.airflow import EmbeddedAirflow
from fraudstream.platform.kafka import KafkaNode
from fraudstream.platform.minio import MinioServer
from fraudstream.platform.mlflow import MlflowServer
from fraudstream.platform.postgres import PostgresServer
from fraudstream.platform.process import ProcessRecord
from fraudstream.platform.redis import RedisServer
from fraudstream.platform.service import Health, Service
from fraudstream.settings import Settings

Report = Callable[[str], None]

SERVICES = ("postgres", "minio", "kafka", "mlflow", "redis", "airflow")
"""What `up --only` names: each service as `status` shows it, Kafka's nodes (``kafka-1``...)
and Airflow's components (``airflow-scheduler``...) as one each."""

NEEDS: dict[str, tuple[str, ...]] = {
    "mlflow": ("postgres", "minio"),  # its tracking database and its artifact bucket
    "airflow": ("postgres",),  # its metadata database
}


class UnknownServiceError(ValueError):
    """A service name `up --only` does not know; the message lists the ones it does."""


def service_group(name: str) -> str:
    """The `--only` name of a service as `status` shows it: ``kafka-2`` -> ``kafka``."""
    for group in ("kafka", "airflow"):
        if name.startswith(f"{group}-"):
            return group
    return name


def closure(names: Iterable[str]) -> frozenset[str]:
    """``names`` and everything they need (``mlflow`` -> ``postgres``, ``minio``); an
    `UnknownServiceError` naming the valid names for a name that is none of them."""
    wanted = {service_group(n.strip()) for n in names if n.strip()}
    unknown = sorted(wanted - set(SERVICES))
    if unknown:
        raise UnknownServiceError(
            f"unknown service(s) {', '.join(unknown)}; the services are: {', '.join(SERVICES)}"
        )
    pending = list(wanted)
    while pending:
        for need in NEEDS.get(pending.pop(), ()):
            if need not in wanted:
                wanted.add(need)
                pending.append(need)
    return frozenset(wanted)


def needed(declared: Iterable[Iterable[str] | None]) -> frozenset[str] | None:
    """The services a set of users needs: the `closure` of the union of what each declares;
    None (everything) as soon as one declares nothing."""
    wanted: set[str] = set()
    for names in declared:
        if names is None:
            return None
        wanted.update(names)
    return closure(wanted)


class ServiceError(RuntimeError):
    """A service failed to start or become healthy; names it, the reason and its log."""

    def __init__(self, service: str, reason: str, log: str | None = None) -> None:
        self.service, self.reason, self.log = service, reason, log
        message = f"{service}: {reason}"
        if log:
            message += f"\n  log: {log}\n  last lines:\n" + "\n".join(
                "    " + line for line in process.tail(Path(log)).splitlines()
            )
        super().__init__(message)


@dataclass(frozen=True)
class ServiceStatus:
    service: str
    state: str  # running | unhealthy | stopped
    pid: int | None
    ports: list[int]
    healthy: bool
    detail: str
    url: str
    log: str
    restarts: int = 0
    """Times `up` restarted the service after it died (since it was last stopped)."""
    restarted_at: str | None = None


class EmbeddedPlatform:
    def __init__(self, settings: Settings, with_airflow: bool | None = None) -> None:
        self.settings = settings
        self.home = settings.platform.home
        self.run_dir = self.home / "run"
        self.postgres = PostgresServer(settings)
        self.minio = MinioServer(settings)
        self.kafka_nodes = [KafkaNode(settings, i) for i in range(1, settings.kafka.nodes + 1)]
        self.mlflow = MlflowServer(settings)
        self.redis = RedisServer(settings)
        self.airflow = EmbeddedAirflow(settings, with_airflow)

    @property
    def services(self) -> list[Service]:
        """All services in start order."""
        airflow = self.airflow.active(self.run_dir)
        return [self.postgres, self.minio, *self.kafka_nodes, self.mlflow, self.redis, *airflow]

    def service(self, name: str) -> Service:
        for svc in self.services:
            if svc.name == name:
                return svc
        names = ", ".join(s.name for s in self.services)
        raise KeyError(f"unknown service '{name}'; the services are: {names}")

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """One `up`/`down` at a time per platform home."""
        self.home.mkdir(parents=True, exist_ok=True)
        with (self.home / ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    # -- up ------------------------------------------------------------------------------

    def up(
        self, report: Report = lambda _: None, only: Iterable[str] | None = None
    ) -> list[ServiceStatus]:
        """Start, wait for and configure every service, or with ``only`` those services and
        what they need (see `closure`); naming ``airflow`` starts Airflow."""
        chosen = closure(SERVICES if only is None else only)
        if only is not None and "airflow" in chosen:
            self.airflow.enabled = True
        with self._locked():
            if only is None:  # Airflow when enabled now, or running before (and perhaps died)
                airflow = self.airflow.enabled or bool(self.airflow.active(self.run_dir))
            else:
                airflow = "airflow" in chosen
            for svc in [s for s in self.services if service_group(s.name) in chosen]:
                report(f"preparing {svc.name}")
                svc.prepare()
            first = [
                s
                for s in [self.postgres, self.minio, *self.kafka_nodes, self.redis]
                if service_group(s.name) in chosen
            ]
            records = {svc.name: self._start(svc, report) for svc in first}
            for svc in first:
                report(f"waiting for {svc.name}")
                self._wait_healthy(svc, records[svc.name])
            if "postgres" in chosen:
                report("configuring postgres (role, databases, migrations)")
                self.postgres.configure()
            if "minio" in chosen:
                report("configuring minio (buckets)")
                self.minio.configure()
            if "kafka" in chosen:
                report("waiting for the Kafka cluster to list every broker")
                self._wait_brokers()
                report("ensuring Kafka topics")
                ensure_topics(self.settings.kafka)
            if "mlflow" in chosen:
                record = self._start(self.mlflow, report)
                report("waiting for mlflow (first start migrates its database)")
                self._wait_healthy(self.mlflow, record, timeout_factor=2)
            if airflow:
                self._up_airflow(report)
        return self.status()

    def _up_airflow(self, report: Report) -> None:
        report("preparing airflow (database; the first migration takes about a minute)")
        self.airflow.config.ensure_database()
        for svc in self.airflow.services:
            record = self._start(svc, report)
            report(f"waiting for {svc.name}")
            self._wait_healthy(svc, record, timeout_factor=2)

    def _start(self, svc: Service, report: Report) -> ProcessRecord:
        previous = ProcessRecord.load(self.run_dir, svc.name)
        if previous is not None and process.alive(previous):
            return previous
        if previous is not None:
            report(f"{svc.name} is not running (pid {previous.pid} gone): restarting it")
        busy = sorted(set(svc.ports) & process.listening_ports())
        if busy:
            raise ServiceError(
                svc.name,
                f"port(s) {busy} already in use by another process; stop it or move "
                f"{svc.name} to other ports (see `fraudstream platform status` and README)",
            )
        report(f"starting {svc.name}")
        record = process.spawn(svc.name, svc.launch(), svc.log_path)
        if previous is not None:  # it died since `up` started it: a restart, shown by `status`
            record = replace(record, restarts=previous.restarts + 1, restarted_at=record.started_at)
        record.save(self.run_dir)
        return record

    def _wait_healthy(
        self, svc: Service, record: ProcessRecord, timeout_factor: float = 1.0
    ) -> None:
        timeout = self.settings.platform.health_timeout_s * timeout_factor
        deadline = time.monotonic() + timeout
        health = Health(False, "not checked yet")
        while time.monotonic() < deadline:
            if process.exited_early(record):
                raise ServiceError(svc.name, "the process exited during start-up", record.log)
            health = svc.check()
            if health.ok:
                return
            time.sleep(0.5)
        raise ServiceError(
            svc.name, f"not healthy after {timeout:.0f}s ({health.detail})", record.log
        )

    def _wait_brokers(self) -> None:
        kafka = self.settings.kafka
        deadline = time.monotonic() + self.settings.platform.health_timeout_s
        seen: list[int] = []
        while time.monotonic() < deadline:
            try:
                seen = broker_ids(kafka, timeout_s=5)
            except Exception:
                seen = []
            if len(seen) >= kafka.nodes:
                return
            time.sleep(0.5)
        raise ServiceError(
            "kafka",
            f"only brokers {seen} of {kafka.nodes} registered",
            str(self.kafka_nodes[0].log_path),
        )

    # -- down ----------------------------------------------------------------------------

    def down(self, report: Report = lambda _: None) -> list[str]:
        """Stop every service `up` started; returns problems (ports still listening)."""
        with self._locked():
            airflow = self.airflow.active(self.run_dir)
            stages: list[list[Service]] = [
                airflow,
                [self.mlflow, self.redis],
                list(self.kafka_nodes),
                [self.minio],
                [self.postgres],
            ]
            for stage in stages:
                self._stop_stage(stage, report)
            return self._leftover_ports(airflow)

    def _stop_stage(self, stage: list[Service], report: Report) -> None:
        running = []
        for svc in stage:
            record = ProcessRecord.load(self.run_dir, svc.name)
            if record is not None and process.alive(record):
                report(f"stopping {svc.name} (pid {record.pid})")
                process.signal_group(record.pid, svc.stop_signal)
                running.append((svc, record))
            else:
                ProcessRecord.forget(self.run_dir, svc.name)
        for svc, record in running:
            if not process.terminate(
                record, svc.stop_signal, self.settings.platform.stop_timeout_s
            ):
                report(f"{svc.name} did not stop in time and was killed")
            ProcessRecord.forget(self.run_dir, svc.name)

    def _leftover_ports(self, stopped: list[Service]) -> list[str]:
        ours = {port: svc.name for svc in [*self.services, *stopped] for port in svc.ports}
        deadline = time.monotonic() + 5
        while True:
            busy = set(ours) & process.listening_ports()
            if not busy or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        return [f"port {p} ({ours[p]}) still listening" for p in sorted(busy)]

    # -- status, logs, reset ------------------------------------------------------------

    def status(self) -> list[ServiceStatus]:
        rows = []
        for svc in self.services:
            record = ProcessRecord.load(self.run_dir, svc.name)
            running = record is not None and process.alive(record)
            health = svc.check() if running else Health(False, "not running")
            state = "running" if running and health.ok else "unhealthy" if running else "stopped"
            rows.append(
                ServiceStatus(
                    service=svc.name,
                    state=state,
                    pid=record.pid if running and record else None,
                    ports=svc.ports,
                    healthy=health.ok,
                    detail=health.detail,
                    url=svc.url,
                    log=str(svc.log_path),
                    restarts=record.restarts if record else 0,
                    restarted_at=record.restarted_at if record else None,
                )
            )
        return rows

    def status_document(self, only: Iterable[str] | None = None) -> dict[str, object]:
        """`status --json`: services, overall health and connection settings (no secrets).
        With ``only`` (as `up --only` takes it), health is that of those services and what
        they need; the others are listed as they are."""
        rows = self.status()
        chosen = None if only is None else closure(only)
        return {
            "healthy": all(
                r.healthy for r in rows if chosen is None or service_group(r.service) in chosen
            ),
            "services": [asdict(r) for r in rows],
            "connections": self.settings.connection_info(),
            "urls": {
                "mlflow_ui": self.mlflow.url,
                "minio_console": self.minio.console_url,
                **(
                    {"airflow_ui": self.airflow.config.airflow.url}
                    if self.airflow.active(self.run_dir)
                    else {}
                ),
            },
        }

    def reset(self) -> None:
        """Stop everything and delete all state (data, logs, generated credentials)."""
        self.down()
        for svc in self.services:
            svc.wipe()
        shutil.rmtree(self.home, ignore_errors=True)
