"""A TCP listener whose accept loop runs on a thread of its own.

Both of a worker's output servers (``output_server`` for subscribers, ``stage_output``
for the next stage's workers) listen the same way: bind, accept on a daemon thread,
hand each connection to the server, and stop promptly on ``close``.  The accept waits
at most ``ACCEPT_POLL_S`` at a time, and ``close`` shuts the socket down, which wakes a
blocked accept on Linux at once.

``shut_down`` is the one way the runtime wakes a thread blocked on a socket.
"""
from __future__ import annotations

import socket
import threading
from collections.abc import Callable

ACCEPT_POLL_S = 0.5


def shut_down(sock: socket.socket) -> None:
    """Shut ``sock`` down both ways, waking any thread blocked reading, writing or accepting on it.

    Shutdown, not close: close does not wake a call blocked on the socket (and would
    free its descriptor for reuse under that call).  A socket already closed or never
    connected is left as it is.
    """
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class Listener:
    """Listens on ``host:port`` (0: any free port) and calls ``on_connection(conn, address)``
    on its accept thread for every connection, until ``close``.  ``on_connection`` must
    return promptly (start a thread for long work); returning False stops accepting."""

    def __init__(self, host: str, port: int, on_connection: Callable[[socket.socket, tuple], bool | None],
                 name: str):
        self._on_connection = on_connection
        self._closed = False
        self._socket = socket.create_server((host, port), backlog=64)
        self._socket.settimeout(ACCEPT_POLL_S)
        self.port: int = self._socket.getsockname()[1]
        self._thread = threading.Thread(target=self._accept_loop, daemon=True, name=f"{name}-{self.port}")
        self._thread.start()

    def close(self) -> None:
        """Stop listening; the accept thread ends within ``2 * ACCEPT_POLL_S``."""
        self._closed = True
        shut_down(self._socket)  # wakes a blocked accept on Linux
        self._socket.close()
        if threading.current_thread() is not self._thread:
            self._thread.join(ACCEPT_POLL_S * 2)

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                conn, address = self._socket.accept()
            except TimeoutError:
                continue
            except OSError:
                break  # the listener was closed
            if self._on_connection(conn, address) is False:
                break
