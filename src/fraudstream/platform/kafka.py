"""An embedded Kafka node: KRaft, combined broker + controller, on loopback.

Three of these form the cluster. Each is formatted once with the shared cluster
id (``kafka.tools.StorageTool format``) and keeps its log under
``<home>/kafka-N/``, so a restart resumes where it stopped.
"""

from __future__ import annotations

import base64
import uuid
from importlib import resources
from pathlib import Path

from fraudstream.platform import toolchain
from fraudstream.platform.process import Launch
from fraudstream.platform.service import Health, Service, tcp_open
from fraudstream.settings import Settings


def new_cluster_id() -> str:
    """A Kafka cluster id: a random UUID in URL-safe base64 that does not start with '-'."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


class KafkaNode(Service):
    def __init__(self, settings: Settings, node_id: int) -> None:
        super().__init__(settings)
        self.node_id = node_id
        self.name = f"kafka-{node_id}"
        self.kafka = settings.kafka

    @property
    def client_port(self) -> int:
        return self.kafka.node_client_port(self.node_id)

    @property
    def controller_port(self) -> int:
        return self.kafka.node_controller_port(self.node_id)

    @property
    def ports(self) -> list[int]:
        return [self.client_port, self.controller_port]

    @property
    def url(self) -> str:
        return f"{self.kafka.host}:{self.client_port}"

    @property
    def properties_path(self) -> Path:
        return self.data_dir / "server.properties"

    def server_properties(self) -> dict[str, str]:
        k = self.kafka
        voters = ",".join(
            f"{i}@{k.host}:{k.node_controller_port(i)}" for i in range(1, k.nodes + 1)
        )
        internal_rf = str(min(3, k.nodes))
        internal_isr = str(min(k.min_insync_replicas, k.nodes))
        return {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://{k.host}:{self.client_port},"
            f"CONTROLLER://{k.host}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{k.host}:{self.client_port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir / "data"),
            "num.partitions": str(k.partitions),
            "default.replication.factor": str(k.replication_factor),
            "min.insync.replicas": str(k.min_insync_replicas),
            "offsets.topic.replication.factor": internal_rf,
            "transaction.state.log.replication.factor": internal_rf,
            "transaction.state.log.min.isr": internal_isr,
            "share.coordinator.state.topic.replication.factor": internal_rf,
            "share.coordinator.state.topic.min.isr": internal_isr,
            "auto.create.topics.enable": "false",
            "unclean.leader.election.enable": "false",
            "group.initial.rebalance.delay.ms": "0",
            "num.network.threads": "2",
            "num.io.threads": "2",
            "num.recovery.threads.per.data.dir": "1",
            "log.retention.hours": "168",
            "log.segment.bytes": str(256 * 1024 * 1024),
        }

    def _cluster_id(self) -> str:
        path = self.settings.platform.home / "kafka-cluster-id"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(new_cluster_id())
        return path.read_text().strip()

    def _classpath(self) -> str:
        return str(toolchain.kafka_jars(self.settings.platform.cache_dir) / "*")

    def _log4j(self) -> str:
        conf = resources.files("fraudstream.platform") / "conf" / "kafka-log4j2.properties"
        return str(conf)

    def _jvm(self, heap_mb: int) -> list[str]:
        return [
            toolchain.java_binary(),
            f"-Xms{heap_mb}m",
            f"-Xmx{heap_mb}m",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:+ExplicitGCInvokesConcurrent",
            "-XX:ParallelGCThreads=1",
            "-XX:ConcGCThreads=1",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self._log4j()}",
            "-cp",
            self._classpath(),
        ]

    def prepare(self) -> None:
        """Write server.properties every time (settings may change); format storage once."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        props = "\n".join(f"{k}={v}" for k, v in self.server_properties().items()) + "\n"
        self.properties_path.write_text(props)
        if (self.data_dir / "data" / "meta.properties").is_file():
            return
        toolchain.run_tool(
            [
                *self._jvm(256),
                "kafka.tools.StorageTool",
                "format",
                "-t",
                self._cluster_id(),
                "-c",
                str(self.properties_path),
                "--ignore-formatted",
            ],
            f"formatting the storage of {self.name}",
        )

    def launch(self) -> Launch:
        return Launch(
            argv=[*self._jvm(self.kafka.heap_mb), "kafka.Kafka", str(self.properties_path)],
            cwd=self.data_dir,
        )

    def check(self) -> Health:
        if tcp_open(self.kafka.host, self.client_port):
            return Health(True, "accepting clients")
        if tcp_open(self.kafka.host, self.controller_port):
            return Health(False, "controller up, broker not yet serving (waiting for quorum)")
        return Health(False, f"port {self.client_port} closed")
