"""The link to a Mesos master, over avmesos (the Mesos v1 scheduler HTTP API client).

avmesos does the protocol: SUBSCRIBE, the calls, and acknowledging each status update
that carries a uuid.  Its loop blocks, so it runs on a thread of its own and hands
every event to a queue that the framework's actor drains; the calls are made from the
actor's own thread.  A dropped stream is subscribed again (with the framework id, so
Mesos keeps the tasks) after a second.

One part of avmesos is replaced: its event loop reads the RecordIO stream with
``iter_lines``, which holds each record back until the next one arrives (a record ends
without a newline), so every event would wait for the next, at worst a heartbeat
(15 s on a real master).  ``FramedClient`` reads the records as their bytes arrive
(``read_records``) and hands each to avmesos' own handling of that event type.
"""
from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Any

log = logging.getLogger("mantis.mesos")


def read_records(chunks: Iterable[bytes]) -> Iterator[dict]:
    """The events of a RecordIO stream (``<length>\\n<json>``, back to back) as soon as
    each record's bytes are in, whatever the chunking."""
    buf = b""
    for data in chunks:
        buf += data
        while True:
            newline = buf.find(b"\n")
            if newline < 0:
                break
            size = int(buf[:newline])
            end = newline + 1 + size
            if len(buf) < end:
                break
            yield json.loads(buf[newline + 1:end])
            buf = buf[end:]


def framed_client_class():
    """avmesos' MesosClient with its event loop reading whole records as they arrive."""
    from avmesos.client import MesosClient
    from avmesos.offers import Offer
    from avmesos.update import Update

    class FramedClient(MesosClient):
        """MesosClient reading the event stream record by record."""

        # Named as avmesos' private loop is after name mangling, so register() calls this one.
        def _MesosClient__event_loop(self):
            for body in read_records(self.long_pool.iter_content(chunk_size=None)):
                if self.stop or self.disconnect:
                    break
                self._event(body)
            return True

        def _event(self, body: dict) -> None:
            kind = body.get("type")
            client: Any = self  # avmesos has no annotations; its attributes are set in __init__
            ids: dict[str, Any] = {"frameworkId": client.frameworkId, "streamId": client.streamId,
                                   "requests_auth": client.requests_auth, "verify": client.verify}
            if kind == "SUBSCRIBED":
                self.frameworkId = body["subscribed"]["framework_id"]["value"]
                self.master_info = body["subscribed"].get("master_info")
                self._MesosClient__event_subscribed()
            elif kind == "OFFERS":
                ids["frameworkId"] = self.frameworkId
                self._MesosClient__event_offers([Offer(self.mesos_url, mesosOffer=o, **ids)
                                                 for o in body["offers"].get("offers", [])])
            elif kind == "UPDATE":
                Update(self.mesos_url, mesosUpdate=body["update"], **ids).ack()
                self._MesosClient__event_update(body["update"])
            elif kind == "HEARTBEAT":
                self._MesosClient__event_heartbeat(kind)
            elif kind == "ERROR":
                self._MesosClient__event_error(body["error"]["message"])
            elif kind in ("RESCIND", "FAILURE", "MESSAGE"):
                self._MesosClient__event_callback(kind, body[kind.lower()])
            else:
                log.info("mesos: event %s not handled", kind)

    return FramedClient


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
        """Start subscribing (on the link's own thread)."""
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

        client_class = framed_client_class()
        while not self._stop.is_set():
            cfg = self.cfg
            client = client_class([cfg.master], frameworkId=self.framework_id, frameworkName=cfg.framework_name,
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
        """ACCEPT the offers with a LAUNCH of ``task_infos``."""
        offers = [self.offers.pop(i) for i in offer_ids if i in self.offers]
        if offers and self.client is not None:
            self.client.combine_offers(offers, task_infos, {"filters": {"refuse_seconds": refuse_s}})

    def decline(self, offer_ids: list, refuse_s: float) -> None:
        """DECLINE the offers with a ``refuse_s`` filter."""
        for offer_id in offer_ids:
            offer = self.offers.pop(offer_id, None)
            if offer is not None:
                offer.decline({"filters": {"refuse_seconds": refuse_s}})

    def forget_offer(self, offer_id: str) -> None:
        """The offer was rescinded: never accept or decline it."""
        self.offers.pop(offer_id, None)

    def kill(self, task_id: str, agent_id: str) -> None:
        """KILL a task."""
        if self.driver is not None:
            self.driver.kill(agent_id, task_id)

    def revive(self) -> None:
        """REVIVE offers (clears filters)."""
        if self.driver is not None:
            self.driver.revive()

    def suppress(self) -> None:
        """SUPPRESS offers."""
        if self.driver is not None:
            self.driver.suppress()

    def reconcile(self, tasks: list) -> None:
        """RECONCILE ``tasks`` (explicit), or every task when empty (implicit)."""
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
