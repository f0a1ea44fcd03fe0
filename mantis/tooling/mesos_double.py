"""A test double of a Mesos master's v1 scheduler HTTP API, on loopback.

A test double, not a product: it holds just enough of a Mesos master to exercise a
framework the way a real one would, and is written from Mesos' documents (the v1
scheduler HTTP API page, ``scheduler.proto`` and ``mesos.proto``), not from our client:

* ``POST /api/v1/scheduler`` takes JSON calls.  SUBSCRIBE answers ``200`` with a
  chunked RecordIO stream (``<length>\\n<json>`` per event) and a ``Mesos-Stream-Id``
  header; every other call must carry that header and the framework id, and is
  answered ``202 Accepted`` (``400`` for a malformed or unknown call, a wrong or
  missing stream id; ``415`` for a body that is not JSON).
* Events: SUBSCRIBED (framework_id, heartbeat_interval_seconds), OFFERS, RESCIND,
  UPDATE, FAILURE, ERROR and HEARTBEAT.
* Calls: ACCEPT (LAUNCH operations, ``filters.refuse_seconds`` for what is left of the
  offers), DECLINE (with filters), KILL, ACKNOWLEDGE (agent_id, task_id, uuid),
  RECONCILE (explicit: the tasks named; implicit: an empty list, every task), REVIVE
  (clears filters, ends suppression), SUPPRESS and TEARDOWN.

It holds simulated agents with resources (scalars cpus/mem/disk, ranges ports) and
attributes (text or scalar), offers each agent's unused resources to a subscribed
framework (one offer per agent at a time), honours decline filters, and rescinds
offers when an agent goes away (which also reports FAILURE and TASK_LOST).  Launched
tasks run as real local processes (``sh -c`` of the command) in a sandbox folder of
their own, with their ports in the environment (``PORT0``.., ``PORTS``); KILL sends
SIGTERM to the task's process group, then SIGKILL after the grace period.  A status
update (it carries a uuid) is sent again every ``update_retry_s`` until acknowledged,
and on a re-subscribe.  A framework
that re-subscribes with its id within its ``failover_timeout`` keeps its tasks; past
it (or on TEARDOWN) they are killed.

Besides the protocol it serves a few routes for tests under ``/double/`` (state,
adding, losing and draining agents, dropping a framework's stream, giving a framework a
task it does not know of); a real master has none of them.

Run: ``python -m mantis.tooling.mesos_double --port 5050 --sandbox /tmp/sb
--agent id=a1,cpus=4,mem=4096,ports=31000-31099,attr.zone=a``.
"""
from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("mantis.mesos_double")

TERMINAL_STATES = frozenset({"TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_ERROR", "TASK_LOST",
                             "TASK_DROPPED", "TASK_GONE", "TASK_GONE_BY_OPERATOR"})
CALL_TYPES = frozenset({"SUBSCRIBE", "TEARDOWN", "ACCEPT", "DECLINE", "REVIVE", "SUPPRESS", "KILL",
                        "ACKNOWLEDGE", "RECONCILE", "SHUTDOWN", "MESSAGE", "REQUEST", "ACCEPT_INVERSE_OFFERS",
                        "DECLINE_INVERSE_OFFERS", "ACKNOWLEDGE_OPERATION_STATUS", "RECONCILE_OPERATIONS"})
DEFAULT_REFUSE_S = 5.0  # Filters.refuse_seconds' default in mesos.proto


class CallError(Exception):
    """A call the master refuses: ``status`` (400, 415...) and the message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def record(event: dict) -> bytes:
    """One RecordIO record: the decimal byte length of the JSON, a newline, the JSON."""
    data = json.dumps(event, separators=(",", ":")).encode()
    return str(len(data)).encode() + b"\n" + data


# -- resources (mesos.proto Resource) ------------------------------------------------------

@dataclass
class Resources:
    """A bag of cpus, mem, disk and port ranges."""

    cpus: float = 0.0
    mem: float = 0.0
    disk: float = 0.0
    ports: list = field(default_factory=list)  # [(begin, end)]

    @classmethod
    def parse(cls, items: list) -> Resources:
        """From a list of Resource messages (JSON)."""
        r = cls()
        for item in items or []:
            name = item.get("name")
            if name in ("cpus", "mem", "disk"):
                setattr(r, name, getattr(r, name) + float(item["scalar"]["value"]))
            elif name == "ports":
                r.ports += [(int(x["begin"]), int(x["end"])) for x in item["ranges"]["range"]]
        return r

    def to_json(self, role: str = "*") -> list:
        """As Resource messages (JSON), each with ``role``."""
        out = [{"name": n, "type": "SCALAR", "scalar": {"value": round(getattr(self, n), 6)}, "role": role}
               for n in ("cpus", "mem", "disk") if getattr(self, n) > 0]
        if self.ports:
            out.append({"name": "ports", "type": "RANGES", "role": role,
                        "ranges": {"range": [{"begin": b, "end": e} for b, e in self.ports]}})
        return out

    def port_set(self) -> set[int]:
        """Every port of the ranges."""
        return {p for b, e in self.ports for p in range(b, e + 1)}

    def minus(self, other: Resources) -> Resources:
        """What is left of these once ``other`` is taken."""
        left = self.port_set() - other.port_set()
        return Resources(self.cpus - other.cpus, self.mem - other.mem, self.disk - other.disk, _ranges(left))

    def plus(self, other: Resources) -> Resources:
        """These and ``other`` together."""
        return Resources(self.cpus + other.cpus, self.mem + other.mem, self.disk + other.disk,
                         _ranges(self.port_set() | other.port_set()))

    def contains(self, other: Resources) -> bool:
        """Whether ``other`` fits in these."""
        eps = 1e-9
        return (other.cpus <= self.cpus + eps and other.mem <= self.mem + eps and other.disk <= self.disk + eps
                and other.port_set() <= self.port_set())


def _ranges(ports: set[int]) -> list:
    out: list = []
    for p in sorted(ports):
        if out and out[-1][1] == p - 1:
            out[-1] = (out[-1][0], p)
        else:
            out.append((p, p))
    return out


# -- the master's state ----------------------------------------------------------------------

@dataclass
class Agent:
    """A simulated agent: its total resources and attributes."""

    agent_id: str
    hostname: str
    total: Resources
    attributes: dict  # name -> str or float
    offerable: bool = True

    def attributes_json(self) -> list:
        """As Attribute messages (JSON): numbers as SCALAR, the rest as TEXT."""
        out = []
        for name, value in sorted(self.attributes.items()):
            if isinstance(value, (int, float)):
                out.append({"name": name, "type": "SCALAR", "scalar": {"value": float(value)}})
            else:
                out.append({"name": name, "type": "TEXT", "text": {"value": str(value)}})
        return out


@dataclass
class Task:
    """A launched task: where it runs, its state, its process."""

    task_id: str
    framework_id: str
    agent_id: str
    resources: Resources
    info: dict
    state: str = "TASK_STAGING"
    proc: Any = None
    sandbox: str = ""
    kill_requested: bool = False
    kill_at: float | None = None  # when SIGKILL follows the SIGTERM


@dataclass
class Framework:
    """A subscribed (or disconnected, within its failover timeout) framework."""

    framework_id: str
    info: dict
    stream_id: str = ""
    connected: bool = False
    disconnected_at: float = 0.0
    suppressed: bool = False
    filters: dict = field(default_factory=dict)  # agent id -> refused until (clock)
    unacked: dict = field(default_factory=dict)  # uuid (base64) -> status
    sent_at: dict = field(default_factory=dict)  # uuid -> when that update was last sent

    @property
    def failover_timeout_s(self) -> float:
        """FrameworkInfo.failover_timeout (0: none)."""
        return float(self.info.get("failover_timeout", 0.0))


@dataclass
class Offer:
    """An outstanding offer: one agent's unused resources, sent to one framework."""
    offer_id: str
    framework_id: str
    agent_id: str
    resources: Resources


class MesosDouble:
    """The master's state and its answer to every call; no I/O but the task processes.

    ``send(framework_id, event)`` delivers an event on the framework's stream (the HTTP
    shell sets it); ``clock`` is injectable so filters and timeouts are tested without
    waiting.  ``tick()`` allocates offers, watches task processes and expires failover
    timeouts.
    """

    def __init__(self, sandbox: str | Path, heartbeat_s: float = 1.0, kill_grace_s: float = 3.0,
                 clock: Callable[[], float] = time.monotonic, update_retry_s: float = 10.0):
        self.sandbox = Path(sandbox)
        self.update_retry_s = update_retry_s
        self.heartbeat_s = heartbeat_s
        self.kill_grace_s = kill_grace_s
        self.clock = clock
        self.send: Callable[[str, dict], None] = lambda fid, event: None
        self.close_stream: Callable[[str], None] = lambda fid: None
        self.agents: dict[str, Agent] = {}
        self.frameworks: dict[str, Framework] = {}
        self.offers: dict[str, Offer] = {}
        self.tasks: dict[str, Task] = {}
        self.calls: list[dict] = []   # every call received: {"type", "at", "body"}
        self.events: list[dict] = []  # every event sent but heartbeats: {"framework", "event"}

    # -- agents -----------------------------------------------------------------------

    def add_agent(self, agent_id: str, hostname: str = "127.0.0.1", cpus: float = 4, mem: float = 4096,
                  disk: float = 10240, ports: list | None = None, attributes: dict | None = None) -> Agent:
        """A new simulated agent with these resources (ports as ``[(begin, end)]``)."""
        agent = Agent(agent_id, hostname, Resources(cpus, mem, disk, list(ports or [])), dict(attributes or {}))
        self.agents[agent_id] = agent
        log.info("agent %s added: %s", agent_id, agent.total)
        return agent

    def set_offerable(self, agent_id: str, offerable: bool) -> None:
        """Stop (rescinding what is outstanding) or resume offering an agent's resources."""
        agent = self._agent(agent_id)
        agent.offerable = offerable
        if not offerable:
            self._rescind(lambda o: o.agent_id == agent_id)

    def lose_agent(self, agent_id: str) -> None:
        """The agent is gone: rescind its offers, its tasks are LOST (their processes
        killed, as the machine's loss would), frameworks get FAILURE."""
        self._agent(agent_id)
        self._rescind(lambda o: o.agent_id == agent_id)
        del self.agents[agent_id]
        for task in [t for t in self.tasks.values() if t.agent_id == agent_id]:
            _signal_group(task.proc, signal.SIGKILL)
            self._update(task, "TASK_LOST", "REASON_AGENT_REMOVED", "agent removed")
        for fid, fw in self.frameworks.items():
            if fw.connected:
                self._emit(fid, {"type": "FAILURE", "failure": {"agent_id": {"value": agent_id}}})
        log.info("agent %s lost", agent_id)

    def _agent(self, agent_id: str) -> Agent:
        if agent_id not in self.agents:
            raise CallError(404, f"no agent {agent_id}")
        return self.agents[agent_id]

    def _rescind(self, which: Callable[[Offer], bool]) -> None:
        for offer in [o for o in self.offers.values() if which(o)]:
            del self.offers[offer.offer_id]
            self._emit(offer.framework_id, {"type": "RESCIND", "rescind": {"offer_id": {"value": offer.offer_id}}})

    # -- events -----------------------------------------------------------------------

    def _emit(self, framework_id: str, event: dict) -> None:
        fw = self.frameworks.get(framework_id)
        if event["type"] != "HEARTBEAT":
            self.events.append({"framework": framework_id, "event": event, "at": self.clock()})
        if fw is not None and fw.connected:
            self.send(framework_id, event)

    def _update(self, task: Task, state: str, reason: str = "", message: str = "") -> None:
        """A status update for ``task``, to be acknowledged (it carries a uuid)."""
        task.state = state
        status = self._status(task, reason, message)
        status["uuid"] = base64.b64encode(uuid.uuid4().bytes).decode()
        fw = self.frameworks.get(task.framework_id)
        if fw is not None:
            fw.unacked[status["uuid"]] = status
            fw.sent_at[status["uuid"]] = self.clock()
        self._emit(task.framework_id, {"type": "UPDATE", "update": {"status": status}})
        if state in TERMINAL_STATES and fw is None:
            self.tasks.pop(task.task_id, None)

    def _status(self, task: Task, reason: str = "", message: str = "") -> dict:
        status = {"task_id": {"value": task.task_id}, "state": task.state,
                  "agent_id": {"value": task.agent_id}, "source": "SOURCE_EXECUTOR", "timestamp": time.time()}
        if reason:
            status["reason"] = reason
        if message:
            status["message"] = message
        return status

    # -- calls ------------------------------------------------------------------------

    def subscribe(self, call: dict) -> tuple[Framework, list[dict]]:
        """SUBSCRIBE: the framework and the first events of its new stream."""
        sub = call.get("subscribe")
        if not isinstance(sub, dict) or not isinstance(sub.get("framework_info"), dict):
            raise CallError(400, "Expecting 'subscribe' to be present with 'framework_info'")
        info = sub["framework_info"]
        if not info.get("user") or not info.get("name"):
            raise CallError(400, "'framework_info' needs 'user' and 'name'")
        wanted = (info.get("id") or {}).get("value")
        if wanted and (call.get("framework_id") or {}).get("value") != wanted:
            raise CallError(400, "'framework_id' differs from 'framework_info.id'")
        fid = wanted or f"{uuid.uuid4()}-0000"
        fw = self.frameworks.get(fid)
        if fw is None:
            fw = self.frameworks[fid] = Framework(fid, dict(info))
        else:
            if fw.connected:
                self.close_stream(fid)  # a new subscription takes over (a framework failover)
            fw.info = dict(info)
        fw.info["id"] = {"value": fid}
        fw.stream_id, fw.connected, fw.suppressed = str(uuid.uuid4()), True, False
        self.calls.append({"type": "SUBSCRIBE", "at": self.clock(), "body": call})
        log.info("framework %s subscribed (%s), stream %s", fid, "again" if wanted else "new", fw.stream_id)
        first: list[dict] = [{"type": "SUBSCRIBED", "subscribed": {"framework_id": {"value": fid},
                                                       "heartbeat_interval_seconds": self.heartbeat_s}},
                 {"type": "HEARTBEAT"}]
        first += [{"type": "UPDATE", "update": {"status": s}} for s in fw.unacked.values()]
        return fw, first

    def disconnected(self, framework_id: str, stream_id: str) -> None:
        """The framework's stream closed: its offers go, its failover timeout starts."""
        fw = self.frameworks.get(framework_id)
        if fw is None or fw.stream_id != stream_id or not fw.connected:
            return
        fw.connected, fw.disconnected_at = False, self.clock()
        self._rescind(lambda o: o.framework_id == framework_id)
        log.info("framework %s disconnected; failover timeout %.1fs", framework_id, fw.failover_timeout_s)

    def call(self, call: Any, stream_id: str | None) -> None:
        """Any call but SUBSCRIBE; raises CallError, else it is accepted (202)."""
        if not isinstance(call, dict) or call.get("type") not in CALL_TYPES:
            raise CallError(400, f"unknown call type {call.get('type') if isinstance(call, dict) else call!r}")
        kind = call["type"]
        fid = (call.get("framework_id") or {}).get("value")
        if not fid:
            raise CallError(400, "Expecting 'framework_id' to be present")
        fw = self.frameworks.get(fid)
        if fw is None:
            raise CallError(400, f"framework {fid} is not subscribed")
        if not stream_id:
            raise CallError(400, "All non-subscribe calls should include the 'Mesos-Stream-Id' header")
        if stream_id != fw.stream_id:
            raise CallError(400, f"The stream ID '{stream_id}' included in this request didn't match the "
                                 f"stream ID currently associated with framework ID {fid}")
        self.calls.append({"type": kind, "at": self.clock(), "body": call})
        handler = getattr(self, f"_call_{kind.lower()}", None)
        if handler is not None:
            handler(fw, call.get(kind.lower()) or {})

    def _call_teardown(self, fw: Framework, body: dict) -> None:
        self._teardown(fw, "framework torn down")

    def _teardown(self, fw: Framework, why: str) -> None:
        self._rescind(lambda o: o.framework_id == fw.framework_id)
        for task in [t for t in self.tasks.values() if t.framework_id == fw.framework_id]:
            self._kill(task)
        if fw.connected:
            self.close_stream(fw.framework_id)
        del self.frameworks[fw.framework_id]
        log.info("framework %s removed: %s", fw.framework_id, why)

    def _filter(self, fw: Framework, agent_ids: set, filters: dict | None) -> None:
        refuse = float((filters or {}).get("refuse_seconds", DEFAULT_REFUSE_S))
        for agent_id in agent_ids:
            fw.filters[agent_id] = self.clock() + refuse

    def _take_offers(self, fw: Framework, body: dict) -> list[Offer] | None:
        ids = [o.get("value") for o in body.get("offer_ids") or []]
        offers = [self.offers.get(i) for i in ids]
        if not ids or any(o is None or o.framework_id != fw.framework_id for o in offers):
            for i in ids:
                self.offers.pop(i, None)
            return None
        for i in ids:
            del self.offers[i]
        return [o for o in offers if o is not None]

    def _call_decline(self, fw: Framework, body: dict) -> None:
        offers = self._take_offers(fw, body) or []
        self._filter(fw, {o.agent_id for o in offers}, body.get("filters"))

    def _call_accept(self, fw: Framework, body: dict) -> None:
        offers = self._take_offers(fw, body)
        launches = [t for op in body.get("operations") or [] if op.get("type") == "LAUNCH"
                    for t in (op.get("launch") or {}).get("task_infos") or []]
        if offers is None:
            # Offers rescinded, declined or used already: Mesos drops the tasks.
            for info in launches:
                task = Task(info["task_id"]["value"], fw.framework_id, info.get("agent_id", {}).get("value", ""),
                            Resources(), info)
                self._update(task, "TASK_DROPPED", "REASON_INVALID_OFFERS", "the offers are no longer valid")
            return
        agents = {o.agent_id for o in offers}
        available = Resources()
        for o in offers:
            available = available.plus(o.resources)
        for info in launches:
            need = Resources.parse(info.get("resources"))
            task = Task(info["task_id"]["value"], fw.framework_id, offers[0].agent_id, need, info)
            agent_id = (info.get("agent_id") or {}).get("value")
            if len(agents) != 1 or agent_id not in agents:
                self._update(task, "TASK_ERROR", "REASON_TASK_INVALID", "the task's agent is not the offers' agent")
            elif task.task_id in self.tasks:
                self._update(task, "TASK_ERROR", "REASON_TASK_INVALID", "a task with this id exists")
            elif not available.contains(need):
                self._update(task, "TASK_ERROR", "REASON_TASK_INVALID", "the task uses resources not offered")
            else:
                available = available.minus(need)
                self._launch(task)
        self._filter(fw, agents, body.get("filters"))

    def _launch(self, task: Task) -> None:
        self.tasks[task.task_id] = task
        sandbox = self.sandbox / task.agent_id / task.task_id
        sandbox.mkdir(parents=True, exist_ok=True)
        task.sandbox = str(sandbox)
        command = task.info.get("command") or {}
        env = dict(os.environ)
        for var in (command.get("environment") or {}).get("variables") or []:
            env[var["name"]] = var.get("value", "")
        ports = sorted(task.resources.port_set())
        env.update({f"PORT{i}": str(p) for i, p in enumerate(ports)})
        env.update(PORTS=",".join(map(str, ports)), MESOS_SANDBOX=str(sandbox), MESOS_TASK_ID=task.task_id,
                   MESOS_AGENT_ID=task.agent_id, MESOS_FRAMEWORK_ID=task.framework_id)
        if command.get("shell", True):
            argv = ["/bin/sh", "-c", command.get("value", "")]
        else:
            argv = [command.get("value", "")] + list(command.get("arguments") or [])[1:]
        self._update(task, "TASK_STARTING")
        try:
            with open(sandbox / "stdout", "ab") as out, open(sandbox / "stderr", "ab") as err:
                task.proc = subprocess.Popen(argv, cwd=sandbox, env=env, stdout=out, stderr=err,
                                             start_new_session=True)
        except OSError as exc:
            self._update(task, "TASK_FAILED", "REASON_COMMAND_EXECUTOR_FAILED", str(exc))
            return
        log.info("task %s running on %s (pid %d, ports %s)", task.task_id, task.agent_id, task.proc.pid, ports)
        self._update(task, "TASK_RUNNING")

    def drop_stream(self, framework_id: str) -> None:
        """End a framework's event stream (as a Mesos master failover or a network cut
        would): it is disconnected until it subscribes again, its tasks kept."""
        fw = self.frameworks.get(framework_id)
        if fw is None or not fw.connected:
            raise CallError(404, f"no connected framework {framework_id}")
        self.close_stream(framework_id)
        self.disconnected(framework_id, fw.stream_id)

    def inject_task(self, framework_id: str, info: dict) -> None:
        """Run a task for a framework as if it had launched it (a test's way to give a
        framework a task it does not know of, e.g. one its earlier incarnation lost)."""
        if framework_id not in self.frameworks:
            raise CallError(404, f"no framework {framework_id}")
        agent_id = info["agent_id"]["value"]
        self._agent(agent_id)
        need = Resources.parse(info.get("resources") or [])
        self._launch(Task(info["task_id"]["value"], framework_id, agent_id, need, info))

    def _call_kill(self, fw: Framework, body: dict) -> None:
        task_id = (body.get("task_id") or {}).get("value")
        task = self.tasks.get(task_id or "")
        if task is None or task.framework_id != fw.framework_id:
            agent_id = (body.get("agent_id") or {}).get("value", "")
            ghost = Task(task_id or "", fw.framework_id, agent_id, Resources(), {})
            self._update(ghost, "TASK_LOST" if agent_id in self.agents or not agent_id else "TASK_UNKNOWN",
                         "REASON_RECONCILIATION", "no such task")
            return
        self._kill(task)

    def _kill(self, task: Task) -> None:
        if task.state in TERMINAL_STATES or task.kill_requested:
            return
        task.kill_requested = True
        task.kill_at = self.clock() + self.kill_grace_s
        _signal_group(task.proc, signal.SIGTERM)

    def _call_acknowledge(self, fw: Framework, body: dict) -> None:
        fw.unacked.pop(body.get("uuid", ""), None)
        fw.sent_at.pop(body.get("uuid", ""), None)
        self._forget_acked_terminals()

    def _call_reconcile(self, fw: Framework, body: dict) -> None:
        named = body.get("tasks") or []
        if not named:  # implicit: the latest state of every task the master knows
            for task in [t for t in self.tasks.values() if t.framework_id == fw.framework_id]:
                self._emit(fw.framework_id, {"type": "UPDATE", "update": {
                    "status": self._status(task, "REASON_RECONCILIATION")}})
            return
        for item in named:
            task_id = (item.get("task_id") or {}).get("value", "")
            known = self.tasks.get(task_id)
            if known is not None and known.framework_id == fw.framework_id:
                task = known
            else:
                agent_id = (item.get("agent_id") or {}).get("value", "")
                task = Task(task_id, fw.framework_id, agent_id, Resources(), {},
                            state="TASK_UNKNOWN" if agent_id in self.agents else "TASK_LOST")
            self._emit(fw.framework_id, {"type": "UPDATE", "update": {
                "status": self._status(task, "REASON_RECONCILIATION")}})

    def _call_revive(self, fw: Framework, body: dict) -> None:
        fw.filters.clear()
        fw.suppressed = False

    def _call_suppress(self, fw: Framework, body: dict) -> None:
        fw.suppressed = True

    # -- time -------------------------------------------------------------------------

    def tick(self) -> None:
        """Watch task processes, expire failover timeouts, send offers."""
        now = self.clock()
        for task in list(self.tasks.values()):
            if task.proc is None or task.state in TERMINAL_STATES:
                continue
            code = task.proc.poll()
            if code is None:
                if task.kill_at is not None and now >= task.kill_at:
                    _signal_group(task.proc, signal.SIGKILL)
                    task.kill_at = None
                continue
            _signal_group(task.proc, signal.SIGKILL)  # anything the command left in its group
            if task.kill_requested:
                self._update(task, "TASK_KILLED", "", f"killed (exit {code})")
            elif code == 0:
                self._update(task, "TASK_FINISHED", "", "command exited 0")
            else:
                self._update(task, "TASK_FAILED", "REASON_COMMAND_EXECUTOR_FAILED", f"command exited {code}")
        for fw in list(self.frameworks.values()):
            if not fw.connected and now - fw.disconnected_at > fw.failover_timeout_s:
                self._teardown(fw, "failover timeout passed")
            elif fw.connected:
                # An update not acknowledged is sent again (the agent retries status updates).
                for uid, status in list(fw.unacked.items()):
                    if now - fw.sent_at.get(uid, now) >= self.update_retry_s:
                        fw.sent_at[uid] = now
                        self._emit(fw.framework_id, {"type": "UPDATE", "update": {"status": status}})
        self._forget_acked_terminals()
        self.allocate(now)

    def _forget_acked_terminals(self) -> None:
        waiting = {s["task_id"]["value"] for fw in self.frameworks.values() for s in fw.unacked.values()}
        for task in [t for t in self.tasks.values() if t.state in TERMINAL_STATES]:
            if task.task_id not in waiting:
                del self.tasks[task.task_id]

    def free(self, agent: Agent) -> Resources:
        """What of ``agent`` neither a live task nor an outstanding offer holds."""
        left = agent.total
        for t in self.tasks.values():
            if t.agent_id == agent.agent_id and t.state not in TERMINAL_STATES:
                left = left.minus(t.resources)
        for o in self.offers.values():
            if o.agent_id == agent.agent_id:
                left = left.minus(o.resources)
        return left

    def allocate(self, now: float | None = None) -> None:
        """Offer each agent's free resources to each framework that takes offers."""
        now = self.clock() if now is None else now
        for fw in self.frameworks.values():
            if not fw.connected or fw.suppressed:
                continue
            batch = []
            for agent in self.agents.values():
                if not agent.offerable or fw.filters.get(agent.agent_id, 0) > now:
                    continue
                if any(o.agent_id == agent.agent_id for o in self.offers.values()):
                    continue
                free = self.free(agent)
                if free.cpus <= 0 or free.mem <= 0:
                    continue
                offer = Offer(str(uuid.uuid4()), fw.framework_id, agent.agent_id, free)
                self.offers[offer.offer_id] = offer
                role = fw.info.get("role", "*")
                batch.append({"id": {"value": offer.offer_id}, "framework_id": {"value": fw.framework_id},
                              "agent_id": {"value": agent.agent_id}, "hostname": agent.hostname,
                              "resources": free.to_json(role), "attributes": agent.attributes_json(),
                              "allocation_info": {"role": role}})
            if batch:
                self._emit(fw.framework_id, {"type": "OFFERS", "offers": {"offers": batch}})

    def heartbeat(self) -> None:
        """A HEARTBEAT event on every connected framework's stream."""
        for fid, fw in self.frameworks.items():
            if fw.connected:
                self._emit(fid, {"type": "HEARTBEAT"})

    def shutdown(self) -> None:
        """Kill every task's process group (the double's own exit)."""
        for task in self.tasks.values():
            _signal_group(task.proc, signal.SIGKILL)

    def state(self) -> dict:
        """Everything, as JSON, for tests (``GET /double/state``)."""
        return {
            "agents": {a.agent_id: {"hostname": a.hostname, "offerable": a.offerable,
                                    "attributes": a.attributes, "free": self.free(a).to_json()}
                       for a in self.agents.values()},
            "frameworks": {f.framework_id: {"connected": f.connected, "suppressed": f.suppressed,
                                            "filters": {k: v - self.clock() for k, v in f.filters.items()},
                                            "unacked": len(f.unacked), "stream_id": f.stream_id,
                                            "role": f.info.get("role"), "principal": f.info.get("principal"),
                                            "failover_timeout": f.failover_timeout_s}
                           for f in self.frameworks.values()},
            "offers": {o.offer_id: {"agent_id": o.agent_id, "framework_id": o.framework_id}
                       for o in self.offers.values()},
            "tasks": {t.task_id: {"agent_id": t.agent_id, "state": t.state, "framework_id": t.framework_id,
                                  "pid": t.proc.pid if t.proc is not None else None, "sandbox": t.sandbox,
                                  "ports": sorted(t.resources.port_set()), "info": t.info}
                      for t in self.tasks.values()},
            "calls": self.calls,
            "events": self.events,
        }


def _signal_group(proc: Any, sig: int) -> None:
    if proc is None:
        return
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


# -- the HTTP shell (Tornado) ------------------------------------------------------------------

def make_app(double: MesosDouble):
    """The Tornado application serving ``double``."""
    import asyncio

    import tornado.iostream
    import tornado.web

    streams: dict[str, Any] = {}  # framework id -> its SchedulerHandler

    def send(fid: str, event: dict) -> None:
        handler = streams.get(fid)
        if handler is not None:
            handler.push(record(event))

    def close_stream(fid: str) -> None:
        handler = streams.pop(fid, None)
        if handler is not None:
            handler.done.set()

    double.send, double.close_stream = send, close_stream

    class SchedulerHandler(tornado.web.RequestHandler):
        """``POST /api/v1/scheduler``: SUBSCRIBE keeps the request open as the event
        stream (chunked RecordIO); every other call is answered at once."""

        def initialize(self):
            self.done = asyncio.Event()
            self.subscription: tuple[str, str] | None = None

        def push(self, data: bytes) -> None:
            if self.done.is_set():
                return
            self.write(data)
            fut = self.flush()
            fut.add_done_callback(lambda f: f.exception() and self.on_connection_close())

        async def post(self):
            if "json" not in self.request.headers.get("Content-Type", ""):
                self._answer(415, "Expecting 'Content-Type' of application/json")
                return
            try:
                call = json.loads(self.request.body or b"")
            except ValueError as exc:
                self._answer(400, f"Failed to parse body into JSON: {exc}")
                return
            try:
                if isinstance(call, dict) and call.get("type") == "SUBSCRIBE":
                    await self._subscribe(call)
                    return
                double.call(call, self.request.headers.get("Mesos-Stream-Id"))
            except CallError as exc:
                self._answer(exc.status, exc.message)
                return
            self.set_status(202)

        def _answer(self, status: int, message: str) -> None:
            self.set_status(status)
            self.set_header("Content-Type", "text/plain")
            self.finish(message)

        async def _subscribe(self, call: dict) -> None:
            fw, first = double.subscribe(call)
            streams[fw.framework_id] = self
            self.subscription = (fw.framework_id, fw.stream_id)
            self.set_status(200)
            self.set_header("Content-Type", "application/json")
            self.set_header("Mesos-Stream-Id", fw.stream_id)
            for event in first:
                self.push(record(event))
            await self.done.wait()

        def on_connection_close(self):
            self.done.set()
            if self.subscription is not None:
                fid, sid = self.subscription
                if streams.get(fid) is self:
                    del streams[fid]
                double.disconnected(fid, sid)

    class StateHandler(tornado.web.RequestHandler):
        def get(self):
            self.finish(double.state())

    class AgentsHandler(tornado.web.RequestHandler):
        def post(self):
            body = json.loads(self.request.body)
            double.add_agent(body["id"], body.get("hostname", "127.0.0.1"), float(body.get("cpus", 4)),
                             float(body.get("mem", 4096)), float(body.get("disk", 10240)),
                             [tuple(r) for r in body.get("ports", [])], body.get("attributes") or {})
            self.set_status(201)

    class AgentActionHandler(tornado.web.RequestHandler):
        def post(self, agent_id, action):
            try:
                if action == "lose":
                    double.lose_agent(agent_id)
                elif action in ("unoffer", "reoffer"):
                    double.set_offerable(agent_id, action == "reoffer")
                else:
                    raise CallError(404, f"unknown action {action}")
            except CallError as exc:
                self.set_status(exc.status)
                self.finish(exc.message)
                return
            self.finish({"ok": True})

    class FrameworkActionHandler(tornado.web.RequestHandler):
        def post(self, framework_id, what):
            try:
                if what == "tasks":
                    double.inject_task(framework_id, json.loads(self.request.body))
                else:
                    double.drop_stream(framework_id)
            except CallError as exc:
                self.set_status(exc.status)
                self.finish(exc.message)
                return
            self.set_status(201 if what == "tasks" else 200)

    return tornado.web.Application([
        (r"/double/frameworks/([^/]+)/(tasks|disconnect)", FrameworkActionHandler),
        (r"/api/v1/scheduler", SchedulerHandler),
        (r"/double/state", StateHandler),
        (r"/double/agents", AgentsHandler),
        (r"/double/agents/([^/]+)/(\w+)", AgentActionHandler),
    ])


def parse_agent(text: str) -> dict:
    """``id=a1,host=127.0.0.1,cpus=4,mem=4096,disk=1000,ports=31000-31099,attr.zone=a``."""
    spec: dict = {"attributes": {}}
    for part in text.split(","):
        key, _, value = part.partition("=")
        if key.startswith("attr."):
            spec["attributes"][key[5:]] = value
        elif key == "ports":
            spec["ports"] = [tuple(int(x) for x in r.split("-")) for r in value.split(";")]
        elif key in ("cpus", "mem", "disk"):
            spec[key] = float(value)
        else:
            spec[{"host": "hostname"}.get(key, key)] = value
    return spec


def main(argv: list[str] | None = None) -> int:
    """Run the double until SIGTERM/SIGINT; its tasks are killed on the way out."""
    import asyncio

    import tornado.httpserver
    import tornado.netutil

    p = argparse.ArgumentParser(prog="mesos_double", description="A Mesos v1 scheduler API double on loopback.")
    p.add_argument("--port", type=int, default=5050)
    p.add_argument("--sandbox", required=True)
    p.add_argument("--agent", action="append", default=[], help="id=..,cpus=..,mem=..,ports=a-b,attr.k=v")
    p.add_argument("--heartbeat-s", type=float, default=1.0)
    p.add_argument("--allocation-s", type=float, default=0.2)
    p.add_argument("--kill-grace-s", type=float, default=3.0)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    double = MesosDouble(args.sandbox, args.heartbeat_s, args.kill_grace_s)
    for text in args.agent:
        spec = parse_agent(text)
        double.add_agent(spec.pop("id"), **spec)

    async def serve():
        app = make_app(double)
        server = tornado.httpserver.HTTPServer(app)
        server.add_sockets(tornado.netutil.bind_sockets(args.port, address="127.0.0.1"))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        last_beat = 0.0
        log.info("mesos double listening on 127.0.0.1:%d", args.port)
        while not stop.is_set():
            double.tick()
            if time.monotonic() - last_beat >= args.heartbeat_s:
                double.heartbeat()
                last_beat = time.monotonic()
            try:
                await asyncio.wait_for(stop.wait(), args.allocation_s)
            except TimeoutError:
                pass
        server.stop()

    try:
        asyncio.run(serve())
    finally:
        double.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
