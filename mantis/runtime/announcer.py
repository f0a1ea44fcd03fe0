"""Announcing a Started worker in ZooKeeper as a serverset member (Aurora's shape).

A worker of job ``<cluster>-<n>`` announces itself under
``<root>/announce/<cluster>/<jobId>/<stage>/member_<sequence>``: an ephemeral,
sequential znode (ZooKeeper numbers the members, as Aurora's and Finagle's serversets
do) whose data is

    {"serviceEndpoint": {"host": H, "port": P},
     "additionalEndpoints": {"output": {"host": H, "port": P}},
     "status": "ALIVE", "shard": <worker index>}

so any ZooKeeper client (kazoo's ``ChildrenWatch`` and ``get``, Finagle's serverset
resolver) can follow a job's workers without Mantis code.

The worker's own ZooKeeper session holds the znode, not the master's: the member then
lives exactly as long as the worker process (a worker killed with SIGKILL, or on a host
that vanished, leaves the set when its session expires, whether or not a master is up to
notice), a master failover does not withdraw and re-announce every worker, and no one
process holds a node per worker of the whole platform.  The worker withdraws the member
itself when it stops.  If its session expires while the worker lives (a long partition),
the member is created again once the client reconnects.
"""
from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import KazooException, NoNodeError

from mantis.model.ids import parse_job_id

log = logging.getLogger("mantis.announce")

ALIVE = "ALIVE"


@dataclass(frozen=True)
class AnnounceTarget:
    """Where workers announce themselves: a ZooKeeper ensemble and the root znode."""

    hosts: str
    root: str = "/mantis"
    session_timeout_s: float = 10.0


def announce_target(config) -> AnnounceTarget | None:
    """The ``[announce]`` target a master/agent config names, or None (no announcements).

    ``announce.hosts`` empty means the ensemble of ``leader_election.hosts``: a
    deployment with ZooKeeper announces its workers unless ``announce.enabled`` is false.
    """
    a = config.announce
    hosts = a.hosts or config.leader_election.hosts
    if not a.enabled or not hosts:
        return None
    return AnnounceTarget(hosts, a.root.rstrip("/") or "/", float(a.session_timeout_s))


def stage_path(root: str, job_id: str, stage: int) -> str:
    """The znode whose children are the members of one stage of one job."""
    cluster, _ = parse_job_id(job_id)
    return f"{root.rstrip('/')}/announce/{cluster}/{job_id}/{stage}"


def member_record(host: str, port: int, shard: int, additional: dict[str, int] | None = None) -> dict:
    """A serverset member's data (Aurora's ServiceInstance as JSON)."""
    endpoints = {name: {"host": host, "port": p} for name, p in (additional or {"output": port}).items()}
    return {"serviceEndpoint": {"host": host, "port": port}, "additionalEndpoints": endpoints,
            "status": ALIVE, "shard": shard}


class ServersetMember:
    """One worker's membership: joins on ``start`` (in the background, so a slow or
    absent ZooKeeper never holds up the worker), rejoins after a session expiry, and
    leaves on ``stop``.  ``path`` is the member's znode once joined."""

    def __init__(self, target: AnnounceTarget, parent: str, record: dict):
        self.target, self.parent = target, parent
        self.data = json.dumps(record).encode()
        self.path: str | None = None
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._client = KazooClient(hosts=target.hosts, timeout=target.session_timeout_s,
                                   connection_retry={"max_tries": -1, "max_delay": 5})
        self._client.add_listener(self._on_state)

    def start(self) -> None:
        """Connect and join, on a thread of its own."""
        threading.Thread(target=self._join, name="serverset-member", daemon=True).start()

    def _join(self) -> None:
        try:
            self._client.start(timeout=self.target.session_timeout_s * 3)
        except Exception as exc:  # noqa: BLE001  an unreachable ZooKeeper must not fail the worker
            log.warning("cannot announce in ZooKeeper %s: %s", self.target.hosts, exc)
            return
        self._create()

    def _create(self) -> None:
        with self._lock:
            if self._stopped.is_set():
                return
            try:
                if self.path is not None and self._client.exists(self.path):
                    return
                self.path = self._client.create(self.parent + "/member_", self.data, ephemeral=True,
                                                sequence=True, makepath=True)
                log.info("announced %s", self.path)
            except KazooException as exc:
                log.warning("cannot announce under %s: %s", self.parent, exc)

    def _on_state(self, state) -> None:
        # A lost session took the ephemeral member with it: join again once reconnected
        # (never from this callback, which runs on kazoo's event thread).
        if state == KazooState.LOST:
            self.path = None
        elif state == KazooState.CONNECTED and self.path is None and not self._stopped.is_set():
            threading.Thread(target=self._create, name="serverset-rejoin", daemon=True).start()

    def stop(self) -> None:
        """Leave the set (delete the member) and close the session."""
        self._stopped.set()
        with self._lock:
            try:
                if self.path is not None and self._client.connected:
                    self._client.delete(self.path)
                    log.info("withdrew %s", self.path)
            except (NoNodeError, KazooException):
                pass  # gone with the session already
            finally:
                self.path = None
                try:
                    self._client.stop()
                    self._client.close()
                except Exception:  # noqa: BLE001  closing a client that never connected
                    pass
