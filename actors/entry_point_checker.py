"""EntryPointCheckerActor: checks job entry points in child processes, never in the master.

Before a job is accepted, the master checks that its entry point loads and its parameters
resolve.  That means importing the user's module, and user code must never run inside
the master's actors: a module that hangs on import would stall the actor, one that
crashes the interpreter would kill it.  This actor (one per master) runs each check in
a fresh ``python -m mantis.sdk.entry_point_check`` process instead, and:

- never blocks: children are polled on a short timer, so many checks run at once and a
  hanging one delays no other;
- kills a child (and its process group) that runs past ``entry_point_check_timeout_s``
  and answers with a timeout error; a child that dies answers with its exit status;
- caches every answer per (url, parameters) for ``entry_point_cache_s``, because a
  cluster's jobs are submitted with the same definition again and again, and lets
  identical checks in flight share one child;
- kills every child it still has when it is asked to exit.

Messages: ``InitEntryPointChecker(config)`` -> Done; ``CheckEntryPoint(url, parameters,
token)`` -> ``EntryPointChecked(token, error)`` to the sender (or ``reply_to``);
``DescribeActors`` -> Done with its counters and children.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actors.base import MantisActor
from actors.messages import CheckEntryPoint, DescribeActors, Done, EntryPointChecked, InitEntryPointChecker
from mantis.config import MasterConfig
from mantis.sdk.entry_point_policy import allowed_packages, refusal

log = logging.getLogger("mantis.actors")

GLOBAL_NAME = "mantis-entry-point-checker"
POLL_S = 0.05  # how often outstanding children are looked at
KILL_WAIT_S = 2.0  # how long to wait for a SIGKILLed child to be reaped

# The folder holding the ``mantis`` package, so the child finds it even when the
# package is not installed (a checkout run from another directory).
_MANTIS_ROOT = str(Path(__file__).resolve().parent.parent)


@dataclass(frozen=True)
class _Poll:
    """The wakeupAfter payload that makes the actor look at its children."""


@dataclass
class _RunningCheck:
    """One child process checking one (url, parameters), and everyone waiting for it."""

    key: tuple
    url: str
    process: subprocess.Popen
    stderr: Any  # an unnamed temporary file: a pipe nobody reads could fill and block the child
    started: float
    waiters: list = field(default_factory=list)  # (address, token)


def cache_key(url: str, parameters: dict) -> tuple:
    """The (url, parameters) pair as a hashable key; parameter order does not matter."""
    return (url, json.dumps(parameters, sort_keys=True, default=str))


class EntryPointCheckerActor(MantisActor):
    """Answers CheckEntryPoint by running the check in a child process (see the module
    docstring); one per master, created by whoever needs checks and initialised with
    InitEntryPointChecker."""

    ACCEPTS = {
        # Checks are accepted in every phase so that the asker always gets an
        # EntryPointChecked carrying its token, even before init or after exit.
        "new": (InitEntryPointChecker, CheckEntryPoint, DescribeActors),
        "running": (CheckEntryPoint, DescribeActors),
        "stopped": (CheckEntryPoint, DescribeActors),
    }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The config's defaults until InitEntryPointChecker brings the master's settings.
        self.timeout_s = float(MasterConfig.entry_point_check_timeout_s)
        self.cache_s = float(MasterConfig.entry_point_cache_s)
        self.allowed = allowed_packages("")
        self.running: dict[tuple, _RunningCheck] = {}
        self.cache: dict[tuple, tuple[str | None, float]] = {}  # key -> (error, expires at)
        self.children_started = 0
        self.cache_hits = 0
        self.polling = False

    # -- requests --------------------------------------------------------------------

    def receiveMsg_InitEntryPointChecker(self, msg: InitEntryPointChecker, sender):
        master = msg.config.master
        self.timeout_s = float(master.entry_point_check_timeout_s)
        self.cache_s = float(master.entry_point_cache_s)
        self.allowed = allowed_packages(msg.config.access.allowed_packages)
        self.phase = "running"
        self.send(sender, Done({"timeout_s": self.timeout_s, "cache_s": self.cache_s}))

    def receiveMsg_CheckEntryPoint(self, msg: CheckEntryPoint, sender):
        asker = msg.reply_to or sender
        if self.phase != "running":
            why = "not initialised" if self.phase == "new" else "stopped"
            self.send(asker, EntryPointChecked(msg.token, f"entry point checker is {why}"))
            return
        refused = refusal(msg.url, self.allowed)
        if refused is not None:  # never imported, not even in a child
            self.send(asker, EntryPointChecked(msg.token, refused))
            return
        now = time.monotonic()
        key = cache_key(msg.url, msg.parameters)
        cached = self.cache.get(key)
        if cached is not None and cached[1] > now:
            self.cache_hits += 1
            self.send(asker, EntryPointChecked(msg.token, cached[0]))
            return
        if key in self.running:  # the same check is under way: wait for its answer
            self.running[key].waiters.append((asker, msg.token))
            return
        self._forget_expired(now)
        try:
            check = self._start(key, msg.url, msg.parameters, now)
        except OSError as exc:  # no process could be started (fork limits, memory)
            error = f"entry point '{msg.url}' could not be checked: cannot start a process: {exc}"
            log.error("%s", error)
            self.send(asker, EntryPointChecked(msg.token, error))
            return
        check.waiters.append((asker, msg.token))
        self.running[key] = check
        if not self.polling:
            self.polling = True
            self.wakeupAfter(POLL_S, payload=_Poll())

    def receiveMsg_DescribeActors(self, msg, sender):
        now = time.monotonic()
        self.answer(msg, sender, Done({
            "actor": "EntryPointCheckerActor", "address": str(self.myAddress), "phase": self.phase,
            "timeout_s": self.timeout_s, "cache_s": self.cache_s,
            "children_started": self.children_started, "cache_hits": self.cache_hits,
            "cached": sum(1 for _, expires in self.cache.values() if expires > now),
            "in_flight": [{"url": c.url, "pid": c.process.pid, "waiters": len(c.waiters),
                           "age_s": round(now - c.started, 3)} for c in self.running.values()],
        }))

    # -- children --------------------------------------------------------------------

    def _start(self, key: tuple, url: str, parameters: dict, now: float) -> _RunningCheck:
        """Start the child for one check; the request goes in through a temporary file,
        so writing it can never block on a child that does not read."""
        request = {"url": url, "parameters": parameters,
                   # The master's own path, so the child finds every module the master could.
                   "sys_path": [p for p in sys.path if isinstance(p, str)],
                   # The child ends itself a little after our own kill would have come.
                   "deadline_s": self.timeout_s + 1.0}
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_MANTIS_ROOT, env.get("PYTHONPATH")) if p)
        stderr = tempfile.TemporaryFile()
        try:
            with tempfile.TemporaryFile() as stdin:
                stdin.write(json.dumps(request, default=str).encode())
                stdin.seek(0)
                # start_new_session: the child leads its own process group, so a kill also
                # reaches whatever the user's module forked, and no terminal signal reaches it.
                process = subprocess.Popen([sys.executable, "-m", "mantis.sdk.entry_point_check"],
                                           stdin=stdin, stdout=subprocess.PIPE, stderr=stderr,
                                           env=env, start_new_session=True)
        except BaseException:
            stderr.close()
            raise
        assert process.stdout is not None  # started with stdout=PIPE
        os.set_blocking(process.stdout.fileno(), False)
        self.children_started += 1
        log.info("entry point check started: %s %s (pid %d)", url, key[1], process.pid)
        return _RunningCheck(key, url, process, stderr, now)

    def receiveMsg_WakeupMessage(self, message, sender):
        if not isinstance(message.payload, _Poll):
            return super().receiveMsg_WakeupMessage(message, sender)
        self._poll(time.monotonic())
        self.polling = bool(self.running)
        if self.polling:
            self.wakeupAfter(POLL_S, payload=_Poll())

    def _poll(self, now: float) -> None:
        """Answer every check whose child has ended, or has run out of time."""
        for key, check in list(self.running.items()):
            status = check.process.poll()
            if status is not None:
                error = self._outcome(check, status)
            elif now - check.started > self.timeout_s:
                _kill(check.process)
                error = f"entry point {check.url} did not load within {self.timeout_s:g}s"
            else:
                continue
            del self.running[key]
            self._finish(check, error, now)

    def _outcome(self, check: _RunningCheck, status: int) -> str | None:
        """The error a finished child reports, or why it reported nothing."""
        _kill_group(check.process.pid)  # anything the user's module left running
        answer = _read_available(check.process.stdout)
        if status == 0:
            try:
                return json.loads(answer.decode().strip().splitlines()[-1])["error"]
            except (ValueError, IndexError, KeyError, TypeError, UnicodeDecodeError):
                how = "without an answer"
        elif status < 0:
            try:
                how = f"killed by {signal.Signals(-status).name}"
            except ValueError:
                how = f"killed by signal {-status}"
        else:
            how = f"with exit status {status}"
        error = f"entry point {check.url}: the check process ended {how}"
        last = _last_line(check.stderr)
        return f"{error} ({last})" if last else error

    def _finish(self, check: _RunningCheck, error: str | None, now: float) -> None:
        """Cache the outcome and answer everyone waiting for it."""
        _close(check)
        # Every outcome is cached, timeouts too: resubmitting a job whose module hangs
        # must not start a new ten-second child each time.
        self.cache[check.key] = (error, now + self.cache_s)
        log.info("entry point check finished: %s in %.2fs: %s", check.url, now - check.started,
                 "ok" if error is None else error)
        for asker, token in check.waiters:
            self.send(asker, EntryPointChecked(token, error))

    def _forget_expired(self, now: float) -> None:
        for key in [k for k, (_, expires) in self.cache.items() if expires <= now]:
            del self.cache[key]

    def on_exit(self) -> None:
        """Kill every child still running and tell its askers the check did not finish."""
        self.phase = "stopped"
        for check in self.running.values():
            _kill(check.process)
            _close(check)
            log.info("entry point check abandoned: %s (checker exiting)", check.url)
            for asker, token in check.waiters:
                self.send(asker, EntryPointChecked(token, f"entry point {check.url} was not checked: "
                                                          "the entry point checker stopped"))
        self.running.clear()


def _kill_group(pgid: int) -> None:
    """SIGKILL the process group ``pgid``, if anything is left in it."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _kill(process: subprocess.Popen) -> None:
    """SIGKILL a child and its process group, and reap it."""
    _kill_group(process.pid)
    try:
        process.wait(timeout=KILL_WAIT_S)
    except subprocess.TimeoutExpired:  # stuck in the kernel; init reaps it once we are gone
        log.warning("entry point check process %d did not end after SIGKILL", process.pid)


def _read_available(pipe) -> bytes:
    """What the (non-blocking) pipe holds now; never waits, even if a grandchild keeps it open."""
    chunks = []
    while True:
        try:
            chunk = os.read(pipe.fileno(), 65536)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def _last_line(file, limit: int = 4096) -> str:
    """The last non-empty line of a child's stderr file, shortened to one line of 200 chars."""
    try:
        file.seek(0, os.SEEK_END)
        size = file.tell()
        file.seek(max(0, size - limit))
        lines = [line.strip() for line in file.read().decode(errors="replace").splitlines()]
    except (OSError, ValueError):
        return ""
    lines = [line for line in lines if line]
    return lines[-1][:200] if lines else ""


def _close(check: _RunningCheck) -> None:
    for f in (check.process.stdout, check.stderr):
        if f is None:
            continue
        try:
            f.close()
        except OSError:
            pass
