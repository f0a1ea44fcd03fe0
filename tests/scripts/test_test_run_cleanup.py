"""A test run killed with SIGTERM leaves nothing running: its fixtures' teardowns stop the
masters, agents and workers its tests started (tests/conftest.py)."""
from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from mantis.tooling.local_processes import wait_for

REPO = Path(__file__).resolve().parents[2]


def _running_under(path: Path) -> list[int]:
    return [pid for pid in _all_pids() if str(path) in _cmdline(pid)]


def _all_pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def _cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def test_a_test_run_killed_with_sigterm_stops_the_services_its_tests_started(tmp_path):
    test_file = tmp_path / "test_sleeps_on_a_cluster.py"
    test_file.write_text(textwrap.dedent('''
        import time

        def test_sleeps(cluster):
            print("CLUSTER UP", flush=True)
            time.sleep(120)
    '''))
    base = tmp_path / "run"
    # The project's tests/conftest.py as a plugin: its ``cluster`` fixture and its SIGTERM handling.
    run = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                            "-p", "tests.conftest", f"--basetemp={base}", str(test_file)],
                           cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert run.stdout is not None
        for line in run.stdout:
            if "CLUSTER UP" in line:
                break
        started = _running_under(base)
        assert started, "the test's master and agent should be running"
        run.send_signal(signal.SIGTERM)
        run.wait(60)
        wait_for(lambda: not _running_under(base), timeout=30, what="every process of the killed run gone")
    finally:
        if run.poll() is None:
            run.kill()
        for pid in _running_under(base):
            subprocess.run(["kill", "-9", str(pid)], check=False)
