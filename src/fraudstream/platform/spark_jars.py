"""The jars Spark needs beside its own: the Kafka connector and S3A, resolved once by Maven.

One pom (``maven/spark-pom.xml``) is the source for both runtimes: the scorer image
copies it and bakes the jars into ``/opt/spark/jars`` at build time; a local run
resolves the same pom into the shared cache and passes the jars as ``spark.jars``.
So the local scorer and the one on Kubernetes run the very same connector versions.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

from fraudstream.platform.toolchain import maven_jars

SPARK_VERSION = "4.2.0"
# Attached as a -javaagent by the Spark Operator on Kubernetes; not a classpath jar.
_AGENT_PREFIX = "jmx_prometheus_javaagent"


def _pom_digest() -> str:
    """A short digest of the pom, so an edited pom resolves into a fresh cache folder."""
    pom = resources.files("fraudstream.platform") / "maven" / "spark-pom.xml"
    return hashlib.sha256(pom.read_bytes()).hexdigest()[:12]


def spark_jars(cache_dir: Path) -> list[Path]:
    """Classpath jars for Spark (Kafka source and sink, S3A), resolved once into the cache.

    The first call runs Maven (seconds with a warm ``~/.m2``, a minute or two cold).
    """
    target = maven_jars(
        "spark-pom.xml",
        cache_dir / "jars" / f"spark-{SPARK_VERSION}-{_pom_digest()}",
        "the Spark Kafka and S3A jars",
    )
    return sorted(p for p in target.glob("*.jar") if not p.name.startswith(_AGENT_PREFIX))
