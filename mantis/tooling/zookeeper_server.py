"""A real, single-node ZooKeeper server on loopback, for tests and benchmarks.

``ZooKeeperServer`` writes a ``zoo.cfg`` into a temporary folder of its own, runs
Debian's ``zkServer.sh start-foreground`` as a child process (``start-foreground``
execs the JVM, so the child's pid is ZooKeeper's pid and a kill -9 reaches it), and
returns from ``start()`` only once a kazoo client has opened a session on it.  It
listens on 127.0.0.1 only, with the admin HTTP server and JMX off.

    with ZooKeeperServer() as zk:
        client = KazooClient(zk.hosts)

``kill9()`` then ``start()`` again restarts it on the same port and data folder, so a
test can cut every client off and let the sessions that have not yet expired resume.
"""
from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from kazoo.client import KazooClient

ZK_SERVER_SCRIPT = Path("/usr/share/zookeeper/bin/zkServer.sh")

# Refused connections are the expected answer while the JVM starts: keep them quiet.
_probe_log = logging.getLogger(__name__ + ".probe")
_probe_log.setLevel(logging.CRITICAL)


class ZooKeeperServerError(Exception):
    """The server could not be started; the message carries the tail of its output."""


def zookeeper_installed(script: Path = ZK_SERVER_SCRIPT) -> bool:
    """Whether Debian's ZooKeeper (``scripts/install_zookeeper.sh``) is on this machine."""
    return script.is_file() and shutil.which("java") is not None


def _free_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ZooKeeperServer:
    """One standalone ZooKeeper on ``127.0.0.1:port`` with its data in a temporary folder.

    ``port=0`` picks a free port (re-picked if another process takes it first).
    ``tick_time_ms`` is ZooKeeper's tickTime: sessions may last from 2 to 20 ticks, so
    the default of 500 ms allows session timeouts of 1 s to 10 s.  The folder is
    removed by ``stop()`` unless ``keep_data`` is true.
    """

    def __init__(self, port: int = 0, tick_time_ms: int = 500, start_timeout: float = 30.0,
                 script: Path = ZK_SERVER_SCRIPT, heap_mb: int = 256):
        self.requested_port, self.port = port, port
        self.tick_time_ms, self.start_timeout = tick_time_ms, start_timeout
        self.script, self.heap_mb = Path(script), heap_mb
        self.directory: Path | None = None
        self.process: subprocess.Popen | None = None

    @property
    def hosts(self) -> str:
        """The connection string for kazoo: ``"127.0.0.1:<port>"``."""
        return f"127.0.0.1:{self.port}"

    @property
    def session_timeout_range(self) -> tuple[float, float]:
        """The (min, max) session timeout in seconds that this server grants."""
        return 2 * self.tick_time_ms / 1000, 20 * self.tick_time_ms / 1000

    def __enter__(self) -> ZooKeeperServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> ZooKeeperServer:
        """Start (or restart after ``kill9``) and wait until it opens sessions; returns self."""
        if self.process is not None and self.process.poll() is None:
            return self
        if not zookeeper_installed(self.script):
            raise ZooKeeperServerError(f"{self.script} not found: run scripts/install_zookeeper.sh")
        if self.directory is None:
            self.directory = Path(tempfile.mkdtemp(prefix="mantis-zk-"))
        directory = self.directory
        # A port picked by us may be taken between picking and binding: try a few.
        attempts = 5 if self.requested_port == 0 else 1
        for attempt in range(attempts):
            if self.requested_port == 0 and (attempt > 0 or not self.port):
                self.port = _free_loopback_port()
            try:
                self._launch_and_wait(directory)
                return self
            except ZooKeeperServerError:
                self._terminate(signal.SIGKILL)
                if attempt == attempts - 1 or "Address already in use" not in self.output():
                    raise
        raise AssertionError("unreachable")

    def _launch_and_wait(self, directory: Path) -> None:
        config = self._write_config(directory)
        env = dict(os.environ, JMXDISABLE="true",
                   # Later -D flags win: keep logs in our folder, not /var/log/zookeeper.
                   JVMFLAGS=f"-Xmx{self.heap_mb}m -Dzookeeper.log.dir={directory} "
                            "-Dzookeeper.admin.enableServer=false")
        log = open(directory / "zookeeper.out", "ab")
        try:
            process = self.process = subprocess.Popen(
                [str(self.script), "start-foreground", str(config)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                start_new_session=True)
        finally:
            log.close()
        self._wait_until_serving(process)

    def _write_config(self, directory: Path) -> Path:
        data = directory / "data"
        data.mkdir(exist_ok=True)
        config = directory / "zoo.cfg"
        config.write_text("\n".join([
            f"tickTime={self.tick_time_ms}",
            f"dataDir={data}",
            f"clientPort={self.port}",
            "clientPortAddress=127.0.0.1",
            "admin.enableServer=false",
            # Every test client comes from 127.0.0.1; the default cap is 60 per address.
            "maxClientCnxns=0",
            "4lw.commands.whitelist=ruok,srvr,stat,mntr",
        ]) + "\n")
        return config

    def _wait_until_serving(self, process: subprocess.Popen) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise ZooKeeperServerError(
                    f"zookeeper exited with {process.returncode}: {self.output()[-2000:]}")
            probe = KazooClient(self.hosts, timeout=2.0, logger=_probe_log)
            try:
                probe.start(timeout=1.0)
                return
            except Exception:
                time.sleep(0.1)
            finally:
                probe.stop()
                probe.close()
        raise ZooKeeperServerError(
            f"zookeeper on {self.hosts} not serving after {self.start_timeout}s: {self.output()[-2000:]}")

    def output(self) -> str:
        """What the server printed so far on stdout and stderr."""
        if self.directory is None:
            return ""
        path = self.directory / "zookeeper.out"
        return path.read_text(errors="replace") if path.exists() else ""

    @property
    def pid(self) -> int | None:
        """The JVM's pid while it runs."""
        return self.process.pid if self.process is not None and self.process.poll() is None else None

    def kill9(self) -> None:
        """SIGKILL the server, as a crash would; the data folder stays for a ``start()``."""
        self._terminate(signal.SIGKILL)

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s) and remove its folder."""
        self._terminate(signal.SIGTERM)
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def _terminate(self, sig: int) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            try:
                self.process.send_signal(sig)
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
            except ProcessLookupError:
                pass
        self.process = None
