"""One probe of each kind against real sockets, a real HTTP endpoint and real commands."""
import os
import socket

from mantis.model.checks import CheckDefinition
from mantis.runtime.health_endpoint import HealthEndpoint
from mantis.runtime.health_probes import ProbeTarget, probe


def check(**fields):
    return CheckDefinition.from_json({"intervalSeconds": 2, "timeoutSeconds": 1, **fields})


def test_http_probe_asks_the_runtime_endpoint_which_follows_the_hooks():
    state = {"healthy": True, "ready": False}
    endpoint = HealthEndpoint(lambda: state["healthy"], lambda: state["ready"], host="127.0.0.1")
    try:
        target = ProbeTarget("127.0.0.1", health_port=endpoint.port)
        assert probe(check(protocol="HTTP"), target) == (
            True, f"HTTP GET /health on port {endpoint.port} answered 200")
        assert probe(check(protocol="HTTP"), target, readiness=True)[0] is False  # /ready: 503
        state.update(healthy=False, ready=True)
        assert probe(check(protocol="HTTP"), target)[1].endswith("answered 503")
        assert probe(check(protocol="HTTP"), target, readiness=True)[0] is True
        assert probe(check(protocol="HTTP", path="/nope", httpStatusCodes=[404]), target)[0] is True
    finally:
        endpoint.close()
    ok, message = probe(check(protocol="HTTP"), target)
    assert not ok and "ConnectionRefusedError" in message


def test_a_hook_that_raises_means_unhealthy():
    endpoint = HealthEndpoint(lambda: 1 / 0, lambda: True, host="127.0.0.1")
    try:
        assert probe(check(protocol="HTTP"), ProbeTarget("127.0.0.1", health_port=endpoint.port))[0] is False
    finally:
        endpoint.close()


def test_tcp_probe_passes_while_the_port_accepts():
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    target = ProbeTarget("127.0.0.1", ports=(1, port), output_port=port)
    assert probe(check(protocol="TCP"), target)[0] is True
    assert probe(check(protocol="TCP", portIndex=1), target)[0] is True
    server.close()
    assert probe(check(protocol="TCP"), target)[0] is False
    assert probe(check(protocol="TCP", portIndex=5), target) == (
        False, "TCP port #5: the worker has no such port")


def test_command_probe_passes_on_exit_zero_with_the_workers_environment(tmp_path):
    target = ProbeTarget("127.0.0.1", env={"MANTIS_WORKER_NUMBER": "7"})
    flag = tmp_path / "sick-7"
    command = check(protocol="COMMAND", command=f"test ! -e {tmp_path}/sick-$MANTIS_WORKER_NUMBER")
    assert probe(command, target)[0] is True
    flag.touch()
    assert probe(command, target) == (False, f"command {command.command!r} exited 1")
    slow = check(protocol="COMMAND", command="sleep 37.25; true", timeoutSeconds=0.2)
    assert probe(slow, target) == (False, f"command {slow.command!r} timed out after 0.2s")
    assert not _running("sleep\x0037.25")  # the shell's child was killed with it


def _running(fragment: str) -> bool:
    """True when a process's command line (NUL-separated) contains ``fragment``."""
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if fragment.encode() in f.read():
                    return True
        except OSError:
            continue
    return False
