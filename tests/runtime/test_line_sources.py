"""Line sources against real files, a real TCP socket and a real HTTP server on loopback."""
import http.server
import os
import socket
import threading

import pytest

from mantis.examples import lines as lines_example
from mantis.runtime.line_sources import file_lines, http_lines, tcp_lines
from mantis.sdk.job_dsl import Context, ParameterError, resolve_parameters
from tests.support import free_port, wait_for


class Collect:
    """Subscribes to an Observable; what it emitted and how it ended."""

    def __init__(self, observable):
        self.items, self.errors, self.done = [], [], threading.Event()
        self.subscription = observable.subscribe(self.items.append, self._error, self.done.set)

    def _error(self, exc):
        self.errors.append(exc)
        self.done.set()


def test_a_file_is_read_to_its_end_then_the_source_completes(tmp_path):
    path = tmp_path / "in.txt"
    path.write_bytes(b"one\r\ntwo\n\xffbad\nlast-without-newline")
    got = Collect(file_lines(Context("t-1"), str(path)))
    assert got.done.wait(5) and not got.errors
    assert got.items == ["one", "two", "\ufffdbad", "last-without-newline"]


def test_a_missing_file_is_an_error_unless_followed(tmp_path):
    got = Collect(file_lines(Context("t-1"), str(tmp_path / "nope.txt")))
    assert got.done.wait(5) and isinstance(got.errors[0], FileNotFoundError)


def test_a_followed_file_yields_appends_truncation_and_rotation(tmp_path):
    path = tmp_path / "app.log"
    context = Context("t-1")
    got = Collect(file_lines(context, str(path), follow=True))  # created later: waited for
    path.write_text("a\n")
    wait_for(lambda: got.items == ["a"], timeout=5, what="the first line")
    with open(path, "a") as f:
        f.write("b\npart")
        f.flush()
        wait_for(lambda: got.items == ["a", "b"], timeout=5, what="an appended line")
        f.write("ial\n")
    wait_for(lambda: got.items[-1] == "partial", timeout=5, what="a line written in two parts")
    path.write_text("c\n")  # truncated in place: read from the start again
    wait_for(lambda: got.items[-1] == "c", timeout=5, what="the line after truncation")
    os.rename(path, tmp_path / "app.log.1")  # rotated: the new file at the path is followed
    path.write_text("d\n")
    wait_for(lambda: got.items[-1] == "d", timeout=5, what="the line of the rotated-in file")
    context.stopped.set()
    wait_for(lambda: not [t for t in threading.enumerate() if t.name.startswith("file-lines")],
             timeout=5, what="the reader thread to stop")
    assert not got.done.is_set()  # stopped, not completed


def test_a_tcp_line_server_takes_lines_from_several_producers():
    port = free_port()
    got = Collect(tcp_lines(Context("t-1"), port))

    def produce(lines):
        wait_for(lambda: _connectable(port), timeout=5, what="the line server")
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(lines)

    produce(b"x1\nx2\n")
    produce(b"y1\ny2-no-newline")
    wait_for(lambda: sorted(got.items) == ["x1", "x2", "y1", "y2-no-newline"], timeout=5, what="all lines")
    got.subscription.dispose()
    wait_for(lambda: not _connectable(port), timeout=5, what="the server to close")


def _connectable(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


class _Lines(http.server.BaseHTTPRequestHandler):
    served = []

    def do_GET(self):
        n = len(self.served)
        self.served.append(n)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(f"request {n} line 1\nrequest {n} line 2\n".encode())

    def log_message(self, *args):
        pass


def test_http_lines_reads_the_response_and_asks_again_when_it_ends():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Lines)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        got = Collect(http_lines(Context("t-1"), f"http://127.0.0.1:{server.server_port}/", reconnect_s=0.1))
        wait_for(lambda: len(got.items) >= 4, timeout=10, what="two responses")
        assert got.items[:4] == ["request 0 line 1", "request 0 line 2", "request 1 line 1", "request 1 line 2"]
        got.subscription.dispose()
    finally:
        server.shutdown()


@pytest.mark.parametrize("text,kind", [("file:/tmp/x", "file"), ("tail:/var/log/a.log", "tail"),
                                       ("tcp:9000", "tcp"), ("tcp:0.0.0.0:9000", "tcp"),
                                       ("http://h:1/stream", "http")])
def test_the_lines_job_accepts_each_input_form(text, kind):
    assert lines_example.parse_input(text)[0] == kind


@pytest.mark.parametrize("text", ["ftp://x", "tcp:port", "file:", "stdin"])
def test_the_lines_job_refuses_other_inputs_at_submission(text):
    with pytest.raises(ParameterError, match="must be file:PATH"):
        resolve_parameters(lines_example.job, {"input": text})
