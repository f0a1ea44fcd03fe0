"""Probing a worker once for a health or readiness check: HTTP, TCP or a command.

``probe`` blocks for at most the check's timeout and returns ``(ok, message)``; it never
raises for a failed probe (a refused connection or a non-zero exit is a result, not an
error).  The agent's health checker runs these on its own threads.
"""
from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
from dataclasses import dataclass, field

from mantis.model.checks import CheckDefinition


@dataclass(frozen=True)
class ProbeTarget:
    """Where a worker is, for its checks: host, its assigned ports, and the ports it
    really serves on (output, the runtime's health endpoint); ``env`` for commands."""

    host: str
    ports: tuple[int, ...] = ()
    output_port: int | None = None
    health_port: int | None = None
    env: dict = field(default_factory=dict)

    def port_for(self, check: CheckDefinition) -> int | None:
        """The port ``check`` probes (None when the worker has no such port)."""
        if check.port_index is not None:
            return self.ports[check.port_index] if check.port_index < len(self.ports) else None
        return self.health_port if check.protocol == "HTTP" else self.output_port


def probe(check: CheckDefinition, target: ProbeTarget, readiness: bool = False) -> tuple[bool, str]:
    """Run ``check`` once against ``target``; ``(passed, what happened)``."""
    try:
        if check.protocol == "COMMAND":
            return _command(check, target)
        port = target.port_for(check)
        if port is None:
            return False, f"{check.describe()}: the worker has no such port"
        if check.protocol == "TCP":
            with socket.create_connection((target.host, port), timeout=check.timeout_s):
                return True, f"TCP {target.host}:{port} accepted"
        return _http(check, target.host, port, readiness)
    except (OSError, http.client.HTTPException) as exc:
        return False, f"{check.describe()}: {type(exc).__name__}: {exc}"


def _http(check: CheckDefinition, host: str, port: int, readiness: bool) -> tuple[bool, str]:
    path = check.path or ("/ready" if readiness else "/health")
    conn = http.client.HTTPConnection(host, port, timeout=check.timeout_s)
    try:
        conn.request("GET", path)
        status = conn.getresponse().status
    finally:
        conn.close()
    return check.accepts_status(status), f"HTTP GET {path} on port {port} answered {status}"


def _command(check: CheckDefinition, target: ProbeTarget) -> tuple[bool, str]:
    assert check.command is not None  # CheckDefinition requires it for COMMAND
    # A session of its own, so a timeout kills the command's children too, not only its shell.
    proc = subprocess.Popen(check.command, shell=True, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, **target.env}, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=check.timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return False, f"command {check.command!r} timed out after {check.timeout_s:g}s"
    if proc.returncode == 0:
        return True, f"command {check.command!r} exited 0"
    tail = (err or out or b"").decode(errors="replace").strip().splitlines()[-1:]
    return False, f"command {check.command!r} exited {proc.returncode}" + (f": {tail[0]}" if tail else "")
