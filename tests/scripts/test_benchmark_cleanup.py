"""Benchmarks leave nothing running: SIGTERM at any moment stops every process they started.

The master's actors daemonize into sessions of their own and the agent's workers are
forked from it, so neither process groups nor parent links find them all.  Every
process of the control-plane benchmark carries its temp dir in its command line (the
config file there), which is how these tests find what it started.
"""
from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXIT_WITHIN_S = 15.0   # from SIGTERM to the benchmark's exit, everything stopped
GONE_WITHIN_S = 5.0    # after its exit, for the last processes to disappear


def pids_mentioning(text: str) -> set[int]:
    """Live processes (not this one) whose command line contains ``text``."""
    needle, found = text.encode(), set()
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if needle in f.read():
                        found.add(int(entry))
            except OSError:
                pass
    return found


def children_of(pid: int) -> set[int]:
    """Live processes whose parent is ``pid``."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    # The name (2nd field) is in parentheses and may hold spaces.
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.add(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return found


def alive(pids: set[int]) -> set[int]:
    """Those of ``pids`` still running (zombies count as gone: they hold nothing)."""
    left = set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                    left.add(pid)
        except (OSError, IndexError):
            pass
    return left


def kill_all(pids: set[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class Script:
    """A benchmark script run as a child process, its output lines collected as they come."""

    def __init__(self, *args: str):
        self.proc = subprocess.Popen([sys.executable, *args], cwd=REPO, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue = queue.Queue()
        self.stdout: list[str] = []
        self.seen: list[str] = []
        threading.Thread(target=self._read, args=(self.proc.stderr, None), daemon=True).start()
        threading.Thread(target=self._read, args=(self.proc.stdout, self.stdout), daemon=True).start()

    def _read(self, stream, keep) -> None:
        for line in stream:
            self.lines.put(line)
            if keep is not None:
                keep.append(line)

    def wait_for_line(self, pattern: str, timeout: float) -> re.Match:
        """The first output line matching ``pattern``; fails after ``timeout`` or at the exit."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None and self.lines.empty():
                    break
                continue
            self.seen.append(line)
            match = re.search(pattern, line)
            if match:
                return match
        pytest.fail(f"no line matching {pattern!r} within {timeout}s; output so far:\n{''.join(self.seen)}")

    def terminate(self) -> tuple[int, float]:
        """SIGTERM; (exit status, seconds until the exit)."""
        started = time.time()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(EXIT_WITHIN_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {EXIT_WITHIN_S}s after SIGTERM")
        return code, time.time() - started

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def wait_gone(pids_now, timeout: float) -> set[int]:
    """Poll ``pids_now()`` until it is empty or ``timeout`` passes; the pids left."""
    deadline = time.time() + timeout
    left = pids_now()
    while left and time.time() < deadline:
        time.sleep(0.1)
        left = pids_now()
    return left


@pytest.mark.parametrize("agents, moment", [
    ([], "master up at"),                           # the real agent starting meanwhile
    ([], "submitted 5 jobs"),                       # worker processes starting
    (["--agents", "3"], "submitted 5 jobs"),        # the simulated agents' process
], ids=["master-up", "workers-starting", "simulated-agents"])
def test_sigterm_stops_everything_the_control_plane_benchmark_started(agents, moment):
    """SIGTERM at several moments: the benchmark exits promptly, and no process of it is
    left (master, actors, agents, workers), nor its temp dir."""
    script = Script("scripts/bench_control_plane.py", "--jobs", "5", "--clients", "2", "--timeout", "60", *agents)
    tmp = None
    try:
        tmp = script.wait_for_line(r"logs in (/\S+)\)", timeout=30).group(1)
        script.wait_for_line(re.escape(moment), timeout=60)
        started = pids_mentioning(tmp)
        assert started, "the benchmark's processes should be found by their command line"

        code, took = script.terminate()

        left = wait_gone(lambda: pids_mentioning(tmp), GONE_WITHIN_S)
        assert not left, f"left running after SIGTERM: {left}"
        assert code == 128 + signal.SIGTERM
        assert took < EXIT_WITHIN_S
        assert not Path(tmp).exists(), "the temp dir should be removed"
        report = json.loads(script.stdout[-1])
        assert report["error"] == "interrupted" and report["jobs"] == 5
    finally:
        script.kill()
        if tmp:
            kill_all(pids_mentioning(tmp))
            shutil.rmtree(tmp, ignore_errors=True)


def test_sigterm_stops_the_pipeline_benchmarks_stage_processes():
    """bench_pipeline runs each stage and the sink in a process of its own: SIGTERM in the
    middle of a run stops them all."""
    script = Script("scripts/bench_pipeline.py", "--events", "100000000", "--repeat", "1")
    seen: set[int] = set()
    try:
        # Three stages and the sink (and multiprocessing's resource tracker).
        deadline = time.time() + 60
        while len(seen) < 4 and time.time() < deadline and script.proc.poll() is None:
            seen |= children_of(script.proc.pid)
            time.sleep(0.1)
        assert len(seen) >= 4, f"expected the stage and sink processes, saw {seen}"
        time.sleep(1.0)  # into the run: events flowing
        seen |= children_of(script.proc.pid)

        code, took = script.terminate()

        left = wait_gone(lambda: alive(seen), GONE_WITHIN_S)
        assert not left, f"left running after SIGTERM: {left}"
        assert code == 128 + signal.SIGTERM
        assert took < EXIT_WITHIN_S
    finally:
        script.kill()
        kill_all(alive(seen))


def test_sigterm_stops_everything_the_autoscale_benchmark_started():
    """SIGTERM while the autoscaling benchmark's job runs: master, agent, Job Master and
    workers all stop, and the temp dir goes."""
    script = Script("scripts/bench_autoscale.py", "--profile", "100:5s,400:120s,100:5s")
    tmp = None
    try:
        tmp = script.wait_for_line(r"logs in (/\S+)\)", timeout=30).group(1)
        script.wait_for_line(r"profile .* started", timeout=90)
        started = pids_mentioning(tmp)
        assert len(started) >= 4, "master, agent and the job's workers should be found by their command line"

        code, took = script.terminate()

        left = wait_gone(lambda: pids_mentioning(tmp), GONE_WITHIN_S)
        assert not left, f"left running after SIGTERM: {left}"
        assert code == 128 + signal.SIGTERM
        assert took < EXIT_WITHIN_S
        assert not Path(tmp).exists(), "the temp dir should be removed"
    finally:
        script.kill()
        if tmp:
            kill_all(pids_mentioning(tmp))
            shutil.rmtree(tmp, ignore_errors=True)
