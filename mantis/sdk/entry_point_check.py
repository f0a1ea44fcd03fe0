"""Check a job's entry point in a process of its own: ``python -m mantis.sdk.entry_point_check``.

The master must never run user code inside its actors: a job module that hangs on import
would stall the actor, one that crashes the interpreter would kill it.  So the
EntryPointCheckerActor (``actors/entry_point_checker.py``) starts this module as a child
process for each check, and kills it if it takes too long.

Protocol: stdin carries one JSON object::

    {"url": "package.module:attribute", "parameters": {...},
     "sys_path": [...],          # the parent's sys.path, so the same modules are found
     "deadline_s": 10.0}         # optional: the process ends itself after about this long

and stdout carries exactly one JSON line, ``{"error": null}`` when the job loads and the
parameters resolve, else ``{"error": "one-line reason"}``.  Whatever the user's module
writes to stdout (``print``, or straight to file descriptor 1) goes to stderr instead, so
it can never corrupt the answer.
"""
from __future__ import annotations

import json
import math
import os
import signal
import sys

from mantis.sdk.job_dsl import JobLoadError, ParameterError, error_line, load_job, resolve_parameters

# The longest error we report; the reasons from the job DSL are far shorter.
MAX_ERROR_CHARS = 1000


def check(url: str, parameters: dict) -> str | None:
    """None if the job at ``url`` loads and ``parameters`` resolve against it, else the
    one-line reason.  Runs the user's code in this process: call it only in a child."""
    try:
        resolve_parameters(load_job(url), parameters)
    except (JobLoadError, ParameterError) as exc:
        return str(exc)
    except BaseException as exc:  # noqa: BLE001  user code may raise anything, even SystemExit
        return f"checking entry point '{url}' failed: {error_line(exc)}"
    return None


def _answer_channel() -> int:
    """Keep the real stdout for the answer and point file descriptor 1 (and sys.stdout)
    at stderr, so that nothing the user's code prints can reach the answer."""
    answer_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return answer_fd


def main() -> int:
    """Read the request on stdin, check it, write the one-line JSON answer; exit status 0
    whenever an answer was written (a refused entry point is an answer, not a failure)."""
    answer_fd = _answer_channel()
    try:
        request = json.loads(sys.stdin.read())
        url, parameters = request["url"], request.get("parameters") or {}
    except (ValueError, KeyError, TypeError) as exc:
        error: str | None = f"bad entry point check request: {exc}"
    else:
        deadline = request.get("deadline_s")
        if deadline:
            # A backstop in case the checker dies without killing us: SIGALRM's default
            # action ends the process in the kernel, even while user code holds the GIL.
            signal.alarm(max(1, math.ceil(float(deadline))))
        # Put the parent's path first, keeping ours, so the same modules are found.
        parent_path = [p for p in request.get("sys_path") or [] if isinstance(p, str)]
        sys.path[:] = parent_path + [p for p in sys.path if p not in parent_path]
        error = check(url, parameters)
    if error is not None:
        error = " ".join(error.split())[:MAX_ERROR_CHARS]
    os.write(answer_fd, (json.dumps({"error": error}) + "\n").encode())
    os.close(answer_fd)
    return 0


if __name__ == "__main__":
    # os._exit: the answer is written; do not let a user module's atexit hooks or
    # non-daemon threads keep this process alive or change its exit status.
    status = main()
    sys.stderr.flush()
    os._exit(status)
