"""``mantis up`` on a first run: the terminal shows the demo's events and one status line
(with the master's URL and where the logs are), the master's and agent's logs go to
files, and ``--verbose`` brings the logs back to the terminal.  Everything it started is
gone when it returns."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from mantis.tooling.local_processes import write_config
from tests.support import make_config

EVENTS = 3


def run_up(tmp_path, *extra: str) -> tuple[subprocess.CompletedProcess, str, list[int]]:
    config = make_config(tmp_path, **{"master.local_agent": "true"})
    path = write_config(config, tmp_path / "up.toml")
    cmd = [sys.executable, "-m", "mantis.cli", "up", "--config", str(path), "--limit", str(EVENTS),
           "--log-dir", str(tmp_path / "logs"), *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, cwd=tmp_path)
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        left = _kill_leftovers(proc, str(path))
    return (subprocess.CompletedProcess(cmd, proc.returncode, out, err), f"http://127.0.0.1:{config.master.api_port}",
            left)


def _kill_leftovers(proc: subprocess.Popen, marker: str) -> list[int]:
    """Kill the command's group and any process naming our config (the agent has its own
    session); returns the pids that were still alive."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    alive = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if marker.encode() in f.read():
                        alive.append(int(entry))
            except OSError:
                pass
    for pid in alive:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return alive


def test_up_shows_the_demo_and_one_status_line_with_logs_in_files(tmp_path):
    done, url, left = run_up(tmp_path)
    assert done.returncode == 0, done.stderr
    assert left == [], "mantis up left processes behind"
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(events) == EVENTS and all("event" in e for e in events), done.stdout
    status = done.stderr.splitlines()
    assert len(status) == 1, done.stderr
    assert status[0].startswith("mantis up: ") and f"{url}/" in status[0] and "demo-1" in status[0]
    assert str(tmp_path / "logs" / "master.log") in status[0]
    master_log = (tmp_path / "logs" / "master.log").read_text()
    agent_log = (tmp_path / "logs" / "agent.log").read_text()
    assert "INFO mantis.master master API listening" in master_log
    assert "tornado.access" in master_log  # the access log is there, not on the terminal
    assert "INFO mantis.agent" in agent_log and "mantis.master" not in agent_log


def test_up_verbose_brings_the_logs_back_to_the_terminal(tmp_path):
    done, _, left = run_up(tmp_path, "--verbose")
    assert done.returncode == 0, done.stderr
    assert left == [], "mantis up left processes behind"
    assert len(done.stdout.splitlines()) == EVENTS
    assert "INFO mantis.master master API listening" in done.stderr
    assert "INFO mantis.agent" in done.stderr
    assert not (tmp_path / "logs").exists()
