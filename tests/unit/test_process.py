"""The /proc readers benchmarks and platform tests use to see processes and threads."""

from __future__ import annotations

import os
import sys
import threading
import time

import pytest

from fraudstream.platform.process import jvm_thread_kind, thread_cpu_seconds

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
