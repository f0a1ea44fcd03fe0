"""The link to a Mesos master, over avmesos (the Mesos v1 scheduler HTTP API client).

avmesos does the protocol: SUBSCRIBE and its RecordIO event stream, the calls, and
acknowledging each status update that carries a uuid.  Its loop blocks, so it runs on
a thread of its own and hands every event to a queue that the framework's actor
drains; the calls are made from the actor's own thread.  A dropped stream is
subscribed again (with the framework id, so Mesos keeps the tasks) after a second.
"""
from __future__ import annotations

import json
import logging
import queue
import threading
from typing import Any

log = logging.getLogger("mantis.mesos")


class MesosLink:
    """One framework's subscription: ``events`` gets ``(kind, payload)`` tuples."""

    def __init__(self, cfg: Any, framework_id: str | None, user: str):
        self.cfg = cfg
        self.framework_id = framework_id
        self.user = user
        self.events: queue.Queue = queue.Queue()
        self.client: Any = None
        self.driver: Any = None
        self.offers: dict[str, Any] = {}  # offer id -> avmesos Offer, to accept or decline it
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mesos-link", daemon=True)

    def start(self) -> MesosLink:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Leave without TEARDOWN: Mesos keeps our tasks for the failover timeout."""
        self._stop.set()
        client = self.client
        if client is not None:
            try:
                client.disconnect_framework()
            except Exception:  # noqa: BLE001  closing a half-open stream may raise anything
                pass

    # -- the event thread ---------------------------------------------------------------

    def _run(self) -> None:
        from avmesos.client import MesosClient

        while not self._stop.is_set():
            cfg = self.cfg
            client = MesosClient([cfg.master], frameworkId=self.framework_id, frameworkName=cfg.framework_name,
                                 frameworkUser=self.user, max_reconnect=1)
            if cfg.role:
                client.set_role(cfg.role)
            if cfg.principal:
                client.set_credentials(cfg.principal, None)
            client.set_failover_timeout(float(cfg.failover_timeout_s))
            client.on(MesosClient.SUBSCRIBED, self._subscribed)
            client.on(MesosClient.OFFERS, self._offers)
            client.on(MesosClient.UPDATE, lambda update: self.events.put(("UPDATE", update["status"])))
            client.on(MesosClient.RESCIND, lambda r: self.events.put(("RESCIND", r["offer_id"]["value"])))
            client.on(MesosClient.FAILURE, lambda f: self.events.put(("FAILURE", f)))
            client.on(MesosClient.ERROR, lambda message: self.events.put(("ERROR", message)))
            self.client = client
            try:
                client.register()
            except Exception as exc:  # noqa: BLE001  the library raises what requests raises
                log.warning("mesos: subscription ended: %s", exc)
            self.driver = None
            self.events.put(("DISCONNECTED", None))
            self._stop.wait(1.0)

    def _subscribed(self, driver: Any) -> None:
        self.driver = driver
        self.framework_id = driver.frameworkId
        self.offers.clear()
        self.events.put(("SUBSCRIBED", driver.frameworkId))

    def _offers(self, offers: list) -> None:
        for offer in offers:
            self.offers[offer.get_offer()["id"]["value"]] = offer
        self.events.put(("OFFERS", [o.get_offer() for o in offers]))

    # -- calls (from the actor's thread) ---------------------------------------------------

    def accept(self, offer_ids: list, task_infos: list, refuse_s: float) -> None:
        offers = [self.offers.pop(i) for i in offer_ids if i in self.offers]
        if offers and self.client is not None:
            self.client.combine_offers(offers, task_infos, {"filters": {"refuse_seconds": refuse_s}})

    def decline(self, offer_ids: list, refuse_s: float) -> None:
        for offer_id in offer_ids:
            offer = self.offers.pop(offer_id, None)
            if offer is not None:
                offer.decline({"filters": {"refuse_seconds": refuse_s}})

    def forget_offer(self, offer_id: str) -> None:
        self.offers.pop(offer_id, None)

    def kill(self, task_id: str, agent_id: str) -> None:
        if self.driver is not None:
            self.driver.kill(agent_id, task_id)

    def revive(self) -> None:
        if self.driver is not None:
            self.driver.revive()

    def suppress(self) -> None:
        if self.driver is not None:
            self.driver.suppress()

    def reconcile(self, tasks: list) -> None:
        driver = self.driver
        if driver is None:
            return
        if tasks:
            driver.reconcile(tasks)
            return
        # Implicit reconciliation is RECONCILE with no tasks, which avmesos' reconcile()
        # skips; this one call is made here, with the driver's own stream and ids.
        import requests

        requests.post(driver.mesos_url + "/api/v1/scheduler",
                      json.dumps({"framework_id": {"value": driver.frameworkId}, "type": "RECONCILE",
                                  "reconcile": {"tasks": []}}),
                      headers={"Content-Type": "application/json", "Accept": "application/json",
                               "Mesos-Stream-Id": driver.streamId},
                      auth=driver.requests_auth, verify=driver.verify, timeout=10)
