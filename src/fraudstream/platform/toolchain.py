"""Binaries and jars the embedded platform runs, installed once into the shared cache.

Everything here is cached under ``cache_dir`` (outside the clone), keyed by
version, and completed atomically, so a second clone or an interrupted install
never sees half a download.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

KAFKA_VERSION = "4.4.0"
# MinIO publishes no semver tags; this pseudo-version pins the last community commit.
MINIO_MODULE = "github.com/minio/minio"
MINIO_VERSION = "v0.0.0-20260212201848-7aac2a2c5b7c"
MIN_JAVA = 17
MIN_POSTGRES = 15


class ToolchainError(RuntimeError):
    """A prerequisite is missing; the message says how to get it."""


def run_tool(argv: list[str], what: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    except FileNotFoundError as exc:
        raise ToolchainError(f"{what}: {argv[0]} is not installed ({exc})") from None
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip().splitlines()[-15:]
        raise ToolchainError(f"{what} failed (exit {result.returncode}):\n" + "\n".join(output))
    return result  # type: ignore[no-any-return]


def require(binary: str, hint: str) -> str:
    path = shutil.which(binary)
    if path is None:
        raise ToolchainError(f"`{binary}` was not found on PATH. {hint}")
    return path


def java_binary() -> str:
    """The `java` launcher, checked to be at least Java 17 (Kafka 4 needs it)."""
    java = require("java", "Install a JDK 17+: `apt-get install openjdk-17-jdk-headless`.")
    out = run_tool([java, "-version"], "java -version")
    match = re.search(r'version "(\d+)', out.stderr + out.stdout)
    if match is None or int(match[1]) < MIN_JAVA:
        raise ToolchainError(f"Java {MIN_JAVA}+ is needed, found: {out.stderr.splitlines()[:1]}")
    return java


def _complete(folder: Path) -> bool:
    return (folder / ".complete").is_file()


def maven_jars(pom_name: str, target: Path, what: str, *properties: str) -> Path:
    """Resolve a packaged pom's dependencies into ``target`` once (``mvn
    dependency:copy-dependencies``); later calls return at once.

    Maven writes into a staging folder that is renamed into place only when complete, so an
    interrupted resolution is never used.
    """
    if _complete(target):
        return target
    mvn = require("mvn", "Install Maven: `apt-get install maven` (or `make system-deps`).")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{target.name}-", dir=target.parent))
    pom = resources.files("fraudstream.platform") / "maven" / pom_name
    with resources.as_file(pom) as pom_path:
        run_tool(
            [
                mvn, "-B", "-q", "-f", str(pom_path), *properties,
                "dependency:copy-dependencies", f"-DoutputDirectory={staging}",
            ],
            f"resolving {what} from Maven Central",
        )  # fmt: skip
    (staging / ".complete").write_text(target.name)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


def kafka_jars(cache_dir: Path) -> Path:
    """Directory with the Kafka broker's classpath, resolved by Maven from the packaged pom."""
    return maven_jars(
        "kafka-pom.xml", cache_dir / "jars" / f"kafka-{KAFKA_VERSION}", "the Kafka jars",
        f"-Dkafka.version={KAFKA_VERSION}", "-DincludeScope=runtime",
    )  # fmt: skip


def minio_binary(cache_dir: Path) -> Path:
    """The MinIO server, built once with `go install` at the pinned version."""
    target = cache_dir / "bin" / f"minio-{MINIO_VERSION}"
    if target.is_file():
        return target
    go = require("go", "Install Go 1.24+ from the Go website or your distribution (see README).")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="minio-build-", dir=target.parent) as gobin:
        run_tool(
            [go, "install", f"{MINIO_MODULE}@{MINIO_VERSION}"],
            "building MinIO with go install (a few minutes, once)",
            env={**os.environ, "GOBIN": gobin, "CGO_ENABLED": "0"},
        )
        Path(gobin, "minio").rename(target)
    return target


def postgres_bin_dir(configured: Path | None) -> Path:
    """Directory holding `initdb` and `postgres` (PostgreSQL 15 or newer)."""
    candidates: list[Path] = []
    if configured is not None:
        candidates.append(configured)
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if out.returncode == 0:
            candidates.append(Path(out.stdout.strip()))
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates.extend(debian)
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "postgres").is_file():
            version = _postgres_major(folder)
            if version >= MIN_POSTGRES:
                return folder
    raise ToolchainError(
        f"PostgreSQL {MIN_POSTGRES}+ server binaries were not found. Install them with "
        "`apt-get install postgresql` (or `make system-deps`), or point "
        "FRAUDSTREAM_POSTGRES_BIN_DIR at the directory holding initdb and postgres."
    )


def _postgres_major(bin_dir: Path) -> int:
    out = subprocess.run(
        [str(bin_dir / "postgres"), "--version"], capture_output=True, text=True, check=False
    )
    match = re.search(r"(\d+)(?:\.\d+)?", out.stdout)
    return int(match[1]) if match else 0
