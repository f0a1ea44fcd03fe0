"""What ``mantis up`` shows on the terminal: the demo's output and one status line.

A first run should read like a demo, not like a log: so, unless ``--verbose``, the
services' logs go to files.  ``logs_to_files`` points this process' file descriptor 2
(and so every actor process, Thespian's logger and anything else forked from it) at
``master.log``, keeps a handle on the real terminal for what the user must see (the
status line, errors), and names ``agent.log`` for the local agent, which is started
with its own output there.  Standard output is left alone: it carries the demo's events.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO


@dataclass
class LogFiles:
    """Where the logs went, and the terminal's own stream for the lines the user reads."""

    master: Path
    agent: Path
    terminal: TextIO


def logs_to_files(folder: str | Path) -> LogFiles:
    """Send this process' stderr (inherited by its children) to ``folder/master.log``;
    ``sys.stderr`` becomes the terminal again, for this process' own messages."""
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    master, agent = root / "master.log", root / "agent.log"
    terminal_fd = os.dup(2)
    sys.stderr.flush()
    fd = os.open(master, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 2)
    os.close(fd)
    terminal = os.fdopen(terminal_fd, "w", buffering=1)
    logs = LogFiles(master, agent, terminal)
    sys.stderr = terminal
    return logs


def status_line(url: str, job_id: str, logs: LogFiles | None) -> str:
    """The one line ``mantis up`` prints about itself once the demo job streams."""
    where = f"logs in {logs.master} and {logs.agent}" if logs else "logs on this terminal"
    return (f"mantis up: master at {url.rstrip('/')}/ (API /api/v1, metrics /metrics); streaming {job_id}; "
            f"{where}; Ctrl-C stops everything")
