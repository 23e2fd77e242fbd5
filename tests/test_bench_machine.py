"""benchmarks.machine: how a benchmark line tells a paused background training from a running one."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from benchmarks.machine import process_state

pytestmark = pytest.mark.unit


def _state_settles(pid: int, stopped: bool) -> bool:
    for _ in range(50):  # the kernel applies a signal asynchronously
        if (process_state(pid) == "T") == stopped:
            return True
        time.sleep(0.02)
    return False


def test_stopped_follows_sigstop_and_sigcont() -> None:
    proc = subprocess.Popen(["sleep", "30"])
    try:
        assert _state_settles(proc.pid, False)
        os.kill(proc.pid, signal.SIGSTOP)
        assert _state_settles(proc.pid, True)
        os.kill(proc.pid, signal.SIGCONT)
        assert _state_settles(proc.pid, False)
    finally:
        proc.kill()
        proc.wait()


def test_a_process_that_is_gone_has_no_state() -> None:
    proc = subprocess.Popen(["true"])
    proc.wait()
    assert process_state(proc.pid) is None  # reaped between pgrep and the read: not counted
