"""Job sources of text lines: a file (read once or followed like ``tail -F``), TCP, HTTP.

Each returns an Observable of lines (``str``, without the line ending), emitted from a
thread of its own, that stops promptly when ``context.stopped`` is set or the
subscription is disposed (``mantis.runtime.sources.thread_fed``).  Bytes that are not UTF-8
are replaced, never fatal: one bad line must not stop a long-lived job.

- ``file_lines(context, path, follow=False)``: the file's lines; it completes at the
  end of the file unless ``follow``, in which case it keeps reading what is appended,
  starts over when the file is truncated, and reopens the path when the file is
  replaced (log rotation).  A file that does not exist yet is waited for when
  following, an error otherwise.
- ``tcp_lines(context, port, host)``: a line server: listens on ``host:port`` and emits
  the lines every connected producer sends (any number of producers, each read on its
  own thread).  It never completes.
- ``http_lines(context, url)``: GETs ``url`` and emits the lines of the (streaming)
  response as they arrive; when the response ends or the connection breaks it asks
  again after ``reconnect_s``.  It never completes.
"""
from __future__ import annotations

import os
import socket
import threading
import urllib.request

import reactivex

from mantis.runtime.listener import shut_down
from mantis.runtime.sources import Halt, thread_fed
from mantis.sdk.job_dsl import Context

POLL_S = 0.1
READ_CHUNK = 65536


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace").rstrip("\r")


def file_lines(context: Context, path: str, follow: bool = False) -> reactivex.Observable:
    """The lines of the file at ``path``; with ``follow``, forever, like ``tail -F``."""

    def loop(emit, halted: Halt) -> None:
        f = None
        partial = b""
        try:
            while not halted.is_set():
                if f is None:
                    try:
                        f = open(path, "rb")
                    except FileNotFoundError:
                        if not follow:
                            raise
                        halted.wait(POLL_S)
                        continue
                    partial = b""
                chunk = f.read(READ_CHUNK)
                if chunk:
                    *lines, partial = (partial + chunk).split(b"\n")
                    for line in lines:
                        emit(_decode(line))
                    continue
                if not follow:
                    if partial:
                        emit(_decode(partial))
                    return
                if _replaced_or_truncated(f, path):
                    f.close()
                    f = None  # reopen: rotated away, or truncated in place (start over)
                    continue
                halted.wait(POLL_S)
        finally:
            if f is not None:
                f.close()

    return thread_fed(context, f"file-lines {path}", loop)


def _replaced_or_truncated(f, path: str) -> bool:
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return False  # rotated and not recreated yet: keep the old file until it is
    mine = os.fstat(f.fileno())
    return (now.st_ino, now.st_dev) != (mine.st_ino, mine.st_dev) or now.st_size < f.tell()


def tcp_lines(context: Context, port: int, host: str = "127.0.0.1") -> reactivex.Observable:
    """The lines producers send to a line server on ``host:port`` (never completes)."""

    def loop(emit, halted: Halt) -> None:
        listener = socket.create_server((host, port), reuse_port=False)
        listener.settimeout(POLL_S)
        emit_lock = threading.Lock()  # producers' threads take turns: observers are not thread-safe

        def serve(conn: socket.socket) -> None:
            partial = b""
            with conn:
                conn.settimeout(POLL_S)
                while not halted.is_set():
                    try:
                        chunk = conn.recv(READ_CHUNK)
                    except TimeoutError:
                        continue
                    except OSError:
                        return
                    if not chunk:
                        break
                    *lines, partial = (partial + chunk).split(b"\n")
                    with emit_lock:
                        for line in lines:
                            emit(_decode(line))
                if partial and not halted.is_set():
                    with emit_lock:
                        emit(_decode(partial))

        with listener:
            while not halted.is_set():
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    continue
                except OSError:
                    return
                threading.Thread(target=serve, args=(conn,), daemon=True, name="tcp-lines-producer").start()
        halted.wait()  # never complete on our own

    return thread_fed(context, f"tcp-lines {host}:{port}", loop)


def http_lines(context: Context, url: str, reconnect_s: float = 1.0, timeout_s: float = 30.0) -> reactivex.Observable:
    """The lines of ``url``'s response, asked again whenever it ends (never completes)."""

    def loop(emit, halted: Halt) -> None:
        current: dict = {}  # the response being read, for the halt to unblock

        def stop_reading() -> None:
            response = current.get("response")
            if response is None:
                return
            try:
                sock = response.fp.raw._sock  # where http.client keeps the response's socket
            except AttributeError:
                return  # the response is closed already
            shut_down(sock)  # unblocks a pending read

        halted.on_halt(stop_reading)
        while not halted.is_set():
            try:
                with urllib.request.urlopen(url, timeout=timeout_s) as response:
                    current["response"] = response
                    for raw in response:
                        if halted.is_set():
                            return
                        emit(_decode(raw.rstrip(b"\n")))
            except (OSError, ValueError) as exc:
                if isinstance(exc, ValueError) and "unknown url type" in str(exc):
                    raise
            finally:
                current.pop("response", None)
            halted.wait(reconnect_s)

    return thread_fed(context, f"http-lines {url}", loop)
