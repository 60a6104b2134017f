"""The /proc readers benchmarks and platform tests use to see processes and threads, and the
`Child` a process starts, watches and stops (the demo's steps)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from fraudstream.platform.process import Child, Launch, jvm_thread_kind, thread_cpu_seconds

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def test_each_thread_of_a_process_with_the_cpu_it_used() -> None:
    stop, ready = threading.Event(), threading.Event()
    ids: list[int] = []

    def spin() -> None:
        ids.append(threading.get_native_id())
        ready.set()
        while not stop.is_set():
            sum(range(1000))

    worker = threading.Thread(target=spin)
    worker.start()
    try:
        ready.wait(10)
        before = thread_cpu_seconds(os.getpid())
        deadline = time.monotonic() + 10  # the kernel counts CPU time in ticks (often 10 ms)
        after = before
        while after[ids[0]][1] <= before[ids[0]][1] and time.monotonic() < deadline:
            time.sleep(0.05)
            after = thread_cpu_seconds(os.getpid())
    finally:
        stop.set()
        worker.join()
    assert threading.get_native_id() in after, "the calling thread is listed"
    name, seconds = after[ids[0]]
    assert name, "each thread has the name the kernel keeps"
    assert seconds > before[ids[0]][1], "a spinning thread's CPU time grows"


def test_a_process_that_is_gone_has_no_threads() -> None:
    with open("/proc/sys/kernel/pid_max") as limit:
        unused = int(limit.read()) + 1  # above the largest pid the kernel hands out
    assert thread_cpu_seconds(unused) == {}


def test_jvm_threads_are_told_apart_by_kind() -> None:
    assert jvm_thread_kind("C2 CompilerThre") == "jit"
    assert jvm_thread_kind("C1 CompilerThre") == "jit"
    assert jvm_thread_kind("GC Thread#0") == "gc"
    assert jvm_thread_kind("G1 Conc#0") == "gc"
    assert jvm_thread_kind("data-plane-kafk") == "other"
    assert jvm_thread_kind("ReplicaFetcherT") == "other"


def test_a_child_logs_after_a_banner_and_reports_its_exit(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "step.log"
    for code in (0, 3):
        script = f"import sys; print('run {code}'); sys.exit({code})"
        child = Child.start("step", Launch([sys.executable, "-c", script]), log)
        child.process.wait(10)
        assert not child.alive()
        assert child.returncode == code
    text = log.read_text()
    assert text.count("starting step\n") == 2  # each start appended, after its banner
    assert text.index("run 0") < text.index("run 3")


def test_a_child_stops_with_its_whole_process_group(tmp_path: Path) -> None:
    """SIGINT first; a child that ignores it (and its own children) is still stopped."""
    script = (
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        "time.sleep(600)\n"
    )
    child = Child.start("stubborn", Launch([sys.executable, "-c", script]), tmp_path / "c.log")
    time.sleep(1.0)
    started = time.monotonic()
    code = child.stop(grace_s=1.0)
    assert code == -signal.SIGTERM
    assert time.monotonic() - started < 10
    deadline = time.monotonic() + 5
    while True:
        group = subprocess.run(
            ["pgrep", "-g", str(child.process.pid)], capture_output=True, text=True, check=False
        )
        if not group.stdout.strip() or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert group.stdout.strip() == "", "a process of the child's group survived"
