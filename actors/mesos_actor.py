"""MesosFrameworkActor: the master's framework in a Mesos cluster (thin shell).

When ``scheduler.resource_manager = "mesos"`` the master starts this actor instead of
waiting for agents of ours.  It subscribes through ``scheduler.mesos_client.MesosLink``
(with the framework id kept in the store, so a restarted or failed-over master
subscribes again as the same framework and its tasks survive), feeds what Mesos says
into ``scheduler.mesos_manager.MesosManager`` and carries out the effects: to the
SchedulerActor every Mesos agent is an agent of ours (RegisterAgent, AgentHeartbeat,
AgentGone), and the scheduler's LaunchWorker / StopWorkerOnAgent / UpdateUpstream come
here.  The link's events are drained every ``POLL_S``; statuses go to the scheduler
every heartbeat interval, with a GetPending whose answer decides REVIVE or SUPPRESS.
"""
from __future__ import annotations

import dataclasses
import getpass
import logging
import queue
import sys
import time

from actors.base import MantisActor
from actors.messages import (
    AgentGone,
    AgentHeartbeat,
    AgentOfferInfo,
    DescribeActors,
    Done,
    GetPending,
    InitMesos,
    LaunchWorker,
    MesosWorkerReport,
    RegisterAgent,
    Rejected,
    ReRegister,
    StopWorkerOnAgent,
    UpdateUpstream,
    WorkerStatus,
)
from mantis.ha import master_address
from scheduler.mesos_manager import (
    Accept,
    Decline,
    ForgetAgent,
    Kill,
    MesosManager,
    Reconcile,
    RegisterMesosAgent,
    ReportStatuses,
    Revive,
    Suppress,
    TaskCommand,
)

log = logging.getLogger("mantis.mesos")

GLOBAL_NAME = "mantis-mesos"
FRAMEWORK_RECORD = "mesos-framework"
POLL_S = 0.1


def task_command(config) -> TaskCommand:
    """How tasks run workers: the configured command (default: this Python's
    ``-m mantis.cli worker``) with the way to the leading master in the environment."""
    m, e = config.master, config.leader_election
    env = {master_address.URL_VAR: f"http://{m.host}:{m.api_port}",
           "MANTIS_HEARTBEAT_S": str(config.workers.heartbeat_interval_s)}
    if e.hosts:
        env[master_address.ZOOKEEPER_VAR] = e.hosts
        env[master_address.LEADER_PATH_VAR] = e.path
    return TaskCommand(config.mesos.worker_command or f"{sys.executable} -m mantis.cli worker", env)


def _statuses(reports: list) -> list:
    return [WorkerStatus(r.worker_key, r.status, r.reason, r.metrics) for r in reports]


class MesosFrameworkActor(MantisActor):
    """Mesos offers as the scheduler's agents; Mesos tasks as its workers."""

    ACCEPTS = {"new": (InitMesos,),
               "running": (LaunchWorker, StopWorkerOnAgent, UpdateUpstream, ReRegister, MesosWorkerReport,
                           DescribeActors, Done, Rejected)}

    def receiveMsg_InitMesos(self, msg: InitMesos, sender):
        from mantis.stores import open_store
        from scheduler.mesos_client import MesosLink

        try:
            import avmesos.client  # noqa: F401  (used by the link's thread)
        except ImportError:
            self.send(sender, Rejected(503, "scheduler.resource_manager is \"mesos\" but the Mesos client is not "
                                            "installed: pip install '.[mesos]'"))
            return
        config = msg.config
        self.scheduler = msg.scheduler
        self.store = open_store(config.store)
        known = self.store.meta(FRAMEWORK_RECORD) or {}
        self.framework_id = known.get("frameworkId")
        cfg = config.mesos
        self.manager = MesosManager(task_command(config), cfg.offer_hold_s, cfg.refuse_s)
        self.heartbeat_s = float(config.workers.heartbeat_interval_s)
        self.beat_at = 0.0
        self.link = MesosLink(cfg, self.framework_id, cfg.user or getpass.getuser()).start()
        self.phase = "running"
        self.start_ticking(POLL_S)
        log.info("mesos framework %s subscribing to %s as role %s", self.framework_id or "(new)", cfg.master,
                 cfg.role)
        self.send(sender, Done({"frameworkId": self.framework_id}))

    # -- effects ------------------------------------------------------------------------

    def _carry_out(self, effects: list) -> None:
        for e in effects:
            try:
                self._one(e)
            except Exception as exc:  # noqa: BLE001  a failed call is logged; Mesos resends or reconciles
                log.warning("mesos: %s failed: %s", type(e).__name__, exc)

    def _one(self, e) -> None:
        if isinstance(e, RegisterMesosAgent):
            offer = AgentOfferInfo(**dataclasses.asdict(e.lease))
            self.send(self.scheduler, RegisterAgent(offer, e.workers, _statuses(e.statuses)))
        elif isinstance(e, ReportStatuses):
            self.send(self.scheduler, AgentHeartbeat(e.agent_id, _statuses(e.statuses), sent_at=time.time()))
        elif isinstance(e, ForgetAgent):
            self.send(self.scheduler, AgentGone(e.agent_id, e.reason))
        elif isinstance(e, Accept):
            log.info("mesos: launching %s on offer(s) %s", ", ".join(t["task_id"]["value"] for t in e.task_infos),
                     ", ".join(e.offer_ids))
            self.link.accept(e.offer_ids, e.task_infos, e.refuse_s)
        elif isinstance(e, Decline):
            log.info("mesos: declining %d unused offer(s) for %.0fs", len(e.offer_ids), e.refuse_s)
            self.link.decline(e.offer_ids, e.refuse_s)
        elif isinstance(e, Kill):
            log.info("mesos: killing task %s on %s", e.task_id, e.agent_id)
            self.link.kill(e.task_id, e.agent_id)
        elif isinstance(e, Revive):
            log.info("mesos: workers wait; reviving offers")
            self.link.revive()
        elif isinstance(e, Suppress):
            log.info("mesos: no worker waits; suppressing offers")
            self.link.suppress()
        elif isinstance(e, Reconcile):
            log.info("mesos: reconciling %s", f"{len(e.tasks)} task(s)" if e.tasks else "every task (implicit)")
            self.link.reconcile(e.tasks)
        else:
            raise TypeError(f"unknown mesos effect {e!r}")

    # -- the link's events --------------------------------------------------------------

    def _drain(self, now: float) -> None:
        while True:
            try:
                kind, payload = self.link.events.get_nowait()
            except queue.Empty:
                return
            m = self.manager
            if kind == "SUBSCRIBED":
                if payload != self.framework_id:
                    # Durable before anything is launched under it.
                    self.store.put_meta(FRAMEWORK_RECORD, {"frameworkId": payload})
                log.info("mesos: subscribed as framework %s%s", payload,
                         " (the same as before)" if payload == self.framework_id else "")
                self.framework_id = payload
                self._carry_out(m.subscribed())
            elif kind == "OFFERS":
                self._carry_out(m.offered(payload, now))
            elif kind == "RESCIND":
                self.link.forget_offer(payload)
                log.info("mesos: offer %s rescinded", payload)
                self._carry_out(m.rescinded(payload))
            elif kind == "UPDATE":
                self._carry_out(m.updated(payload))
            elif kind == "FAILURE":
                if "executor_id" not in payload and "agent_id" in payload:
                    log.warning("mesos: agent %s failed", payload["agent_id"]["value"])
                    self._carry_out(m.agent_failed(payload["agent_id"]["value"]))
            elif kind == "ERROR":
                log.error("mesos: error from the master: %s", payload)
            elif kind == "DISCONNECTED":
                log.warning("mesos: not subscribed; subscribing again")

    def on_tick(self, now: float) -> None:
        mono = time.monotonic()
        self._drain(mono)
        self._carry_out(self.manager.flush())
        self._carry_out(self.manager.expire_offers(mono))
        if mono - self.beat_at >= self.heartbeat_s:
            self.beat_at = mono
            self._carry_out(self.manager.heartbeats())
            self.send(self.scheduler, GetPending())

    # -- the scheduler, as to an agent ----------------------------------------------------

    def receiveMsg_LaunchWorker(self, msg: LaunchWorker, sender):
        self._carry_out(self.manager.launch(msg.spec))

    def after_message(self) -> None:
        if self.phase == "running" and self.manager.launches:
            self._carry_out(self.manager.flush())

    def receiveMsg_StopWorkerOnAgent(self, msg: StopWorkerOnAgent, sender):
        self._carry_out(self.manager.stop(msg.worker_key, msg.reason))

    def receiveMsg_UpdateUpstream(self, msg: UpdateUpstream, sender):
        self.manager.set_upstream(msg.worker_key, msg.endpoints, msg.upstream_finished)

    def receiveMsg_ReRegister(self, msg, sender):
        self._carry_out(self.manager.register_all())

    def receiveMsg_MesosWorkerReport(self, msg: MesosWorkerReport, sender):
        self.send(sender, Done(self.manager.worker_report(msg.worker_key, msg.metrics)))

    def receiveMsg_DescribeActors(self, msg, sender):
        m = self.manager
        self.send(sender, Done([{"actor": "MesosFrameworkActor", "address": str(self.myAddress),
                                 "frameworkId": self.framework_id, "offers": len(m.offers),
                                 "tasks": len(m.tasks), "suppressed": m.suppressed}]))

    def receiveMsg_Done(self, msg, sender):
        if isinstance(msg.body, list):  # GetPending's answer: the workers waiting
            self._carry_out(self.manager.waiting(len(msg.body), time.monotonic()))

    def receiveMsg_Rejected(self, msg, sender):
        log.warning("mesos framework: %s", msg.reason)

    def on_exit(self) -> None:
        link = getattr(self, "link", None)
        if link is not None:
            link.stop()
