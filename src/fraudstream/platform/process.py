"""Child processes: start, identify, watch, stop, and see which ports listen.

Every process the package starts runs in its own session (process group) with its output
appended to a log after a banner, so stopping it also stops the workers it forked (MLflow's
server, for one). A platform service is detached: `up` records it (`spawn`, `ProcessRecord`)
and a later `down` stops it, identified by pid *and* start time, so a recycled pid is never
mistaken for our service. A step of the demo is a `Child`: the process that started it
watches it and stops it.
"""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from subprocess import DEVNULL, STDOUT, Popen, TimeoutExpired


@dataclass(frozen=True)
class Launch:
    """How to start one service."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    user: str | None = None  # run as this OS user (PostgreSQL refuses root)


@dataclass(frozen=True)
class ProcessRecord:
    """What `up` wrote about a process it started; kept in ``<home>/run/<service>.json``."""

    service: str
    pid: int
    start_ticks: int
    log: str
    started_at: str
    restarts: int = 0
    """Times `up` found this service dead and started it again (since it was last stopped)."""
    restarted_at: str | None = None
    """When `up` last did (UTC, ISO 8601); None if never."""

    def save(self, run_dir: Path) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / f"{self.service}.json").write_text(json.dumps(asdict(self)))

    @classmethod
    def load(cls, run_dir: Path, service: str) -> ProcessRecord | None:
        path = run_dir / f"{service}.json"
        if not path.is_file():
            return None
        return cls(**json.loads(path.read_text()))

    @staticmethod
    def forget(run_dir: Path, service: str) -> None:
        (run_dir / f"{service}.json").unlink(missing_ok=True)


def _read_stat(path: Path) -> tuple[str, list[str]] | None:
    """(command name, the fields after it, the first being the state letter) of a
    process's or thread's ``stat`` file, or None if it is gone."""
    try:
        raw = path.read_text()
    except OSError:  # gone (or not ours) between listing and reading
        return None
    # The command name may contain spaces and parentheses: split after the last ')'.
    close = raw.rindex(")")
    return raw[raw.index("(") + 1 : close], raw[close + 2 :].split()


def _stat_fields(pid: int | str) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (the first is the state
    letter), or None if the process does not exist."""
    stat = _read_stat(Path(f"/proc/{pid}/stat"))
    return None if stat is None else stat[1]


def _cpu_seconds(fields: list[str], ticks: int) -> float:
    """User + system CPU time from a ``stat`` file's fields after the command name."""
    return (int(fields[11]) + int(fields[12])) / ticks


def _stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks) of a pid, or None if it does not exist."""
    fields = _stat_fields(pid)
    return None if fields is None else (fields[0], int(fields[19]))


@dataclass(frozen=True)
class ProcessInfo:
    """One running process as /proc shows it: for tests and benchmarks that look around."""

    pid: int
    ppid: int
    cpu_seconds: float  # user + system, since it started
    cmdline: str


def running_processes() -> list[ProcessInfo]:
    """Every process this user can see, from /proc (Linux; empty elsewhere)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    ticks = os.sysconf("SC_CLK_TCK")
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(entry.name)
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if fields is None:
            continue
        found.append(
            ProcessInfo(
                pid=int(entry.name),
                ppid=int(fields[1]),
                cpu_seconds=_cpu_seconds(fields, ticks),
                cmdline=cmdline.replace(b"\0", b" ").decode(errors="replace").strip(),
            )
        )
    return found


def thread_cpu_seconds(pid: int) -> dict[int, tuple[str, float]]:
    """Each thread of ``pid``: thread id -> (its name as the kernel keeps it, at most 15
    characters; CPU seconds, user + system, since it started). Empty if ``pid`` is gone or
    /proc is missing. A JVM names its threads, so its compiler ("C2 CompilerThre") and
    collector ("GC Thread#0", "G1 Conc#0") threads can be told apart."""
    ticks = os.sysconf("SC_CLK_TCK")
    tasks = Path(f"/proc/{pid}/task")
    found: dict[int, tuple[str, float]] = {}
    try:
        entries = list(tasks.iterdir())
    except OSError:
        return found
    for entry in entries:
        stat = _read_stat(entry / "stat")
        if stat is not None:
            name, fields = stat
            found[int(entry.name)] = (name, _cpu_seconds(fields, ticks))
    return found


def jvm_thread_kind(name: str) -> str:
    """``jit`` for a JVM's compiler threads, ``gc`` for its collector's, else ``other`` (by
    the names ``thread_cpu_seconds`` gives): how much of a JVM's CPU went to compiling,
    heavy for minutes after a start, and to collecting."""
    if name.startswith(("C1 Compiler", "C2 Compiler")):
        return "jit"
    if name.startswith(("GC Thread", "G1 ")):
        return "gc"
    return "other"


def alive(record: ProcessRecord) -> bool:
    """True while the recorded process runs (a zombie or a recycled pid is not alive)."""
    stat = _stat(record.pid)
    return stat is not None and stat[0] not in ("Z", "X") and stat[1] == record.start_ticks


def _open(name: str, launch: Launch, log_path: Path) -> Popen[bytes]:
    """Start ``launch`` in a session of its own, its output appended to ``log_path`` after a
    banner naming ``name``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **launch.env}
    with log_path.open("ab") as log:
        banner = f"\n=== {datetime.now(UTC).isoformat()} starting {name}\n"
        log.write(banner.encode())
        log.flush()
        return Popen(
            launch.argv,
            stdin=DEVNULL,
            stdout=log,
            stderr=STDOUT,
            env=env,
            cwd=launch.cwd,
            user=launch.user,
            group=launch.user,
            start_new_session=True,
        )


def spawn(service: str, launch: Launch, log_path: Path) -> ProcessRecord:
    """Start a service detached from this process; its output is appended to ``log_path``."""
    proc = _open(service, launch, log_path)
    stat = _stat(proc.pid)
    ticks = stat[1] if stat else 0
    return ProcessRecord(service, proc.pid, ticks, str(log_path), datetime.now(UTC).isoformat())


@dataclass
class Child:
    """A process this one starts, watches and stops (a step of the demo): its own process
    group, its output in ``log``."""

    name: str
    process: Popen[bytes]
    log: Path

    @classmethod
    def start(cls, name: str, launch: Launch, log_path: Path) -> Child:
        return cls(name, _open(name, launch, log_path), log_path)

    def alive(self) -> bool:
        return self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        """Its exit status once it has exited (negative: the signal that ended it)."""
        return self.process.poll()

    def stop(self, grace_s: float) -> int | None:
        """Stop its whole group: SIGINT (a clean stop: offsets committed, query stopped), then
        SIGTERM after ``grace_s``, then SIGKILL; returns its exit status."""
        for sig, wait_s in (
            (signal.SIGINT, grace_s),
            (signal.SIGTERM, 10.0),
            (signal.SIGKILL, 5.0),
        ):
            if not self.alive():
                break
            signal_group(self.process.pid, sig)
            try:
                self.process.wait(timeout=wait_s)
            except TimeoutExpired:
                continue
        return self.process.poll()


def exited_early(record: ProcessRecord) -> bool:
    """Reap our own child if it died, so it is not left a zombie."""
    try:
        pid, _ = os.waitpid(record.pid, os.WNOHANG)
    except ChildProcessError:
        return not alive(record)
    return pid == record.pid or not alive(record)


def terminate(record: ProcessRecord, sig: int, timeout_s: float) -> bool:
    """Stop a service's whole process group: ``sig`` first, SIGKILL after ``timeout_s``.

    Returns True if it stopped within the grace period, False if it had to be killed.
    """
    if not alive(record):
        return True
    signal_group(record.pid, sig)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        exited_early(record)
        if not alive(record):
            return True
        time.sleep(0.1)
    signal_group(record.pid, signal.SIGKILL)
    for _ in range(50):
        exited_early(record)
        if not alive(record):
            break
        time.sleep(0.1)
    return False


def signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return
    except PermissionError:
        os.kill(pid, sig)


def listening_ports() -> set[int]:
    """TCP ports in LISTEN state on this machine (IPv4 and IPv6), from /proc/net."""
    ports: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) > 3 and parts[3] == "0A":
                ports.add(int(parts[1].rsplit(":", 1)[1], 16))
    return ports


def tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a log file, for error messages."""
    if not path.is_file():
        return "(no log yet)"
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - 64 * 1024))
        text = fh.read().decode(errors="replace")
    return "\n".join(text.splitlines()[-lines:])
