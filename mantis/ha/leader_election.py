"""Leader election among masters over ZooKeeper, and where clients find the leader.

Any number of masters run a ``LeaderElection`` on the same ``path``; exactly one of
them leads at a time.  It is the lock recipe (ephemeral sequential candidates, lowest
wins, each candidate watches only the one just below it), written out here instead of
kazoo's ``Election`` so that the winner holds its candidate znode's path as a ``Lease``
that the store checks inside every write (``mantis/stores/zk_store.py``), and so that the
election itself reacts to the connection state rather than blocking in ``run()``.

Layout under ``path`` (default ``/mantis/leader``)::

    candidates/<token>-<sequence>   ephemeral sequential, one per participant,
                                    data: its description (JSON)
    description                     ephemeral, created by the leader once elected,
                                    data: the leader's description (JSON)

``description`` is created in one transaction with a check that the leader's candidate
still exists, and is deleted before that candidate, so whenever it exists it names the
holder of the lowest candidate: the leader.  Standbys, the CLI, agents and workers read
it with ``current_leader()`` or ``find_leader()``.

Losing leadership: the moment kazoo reports the connection SUSPENDED or the session
LOST, the leader's ``Lease`` is revoked (on kazoo's thread: a flag, no I/O) and the
election thread calls ``on_lost()``.  Kazoo notices a silent connection after 2/3 of the
session timeout, while ZooKeeper frees the candidate only after the whole timeout, so
the old leader has stepped down before anyone else can be elected.  A leader whose
session survives a short disconnection does not resume: when the connection comes back
it deletes its znodes and joins again at the back, so "lost" always means lost.

Callbacks run on the election's own thread, one at a time, ``on_elected(lease)`` and
``on_lost()`` strictly alternating; they should return promptly (start or stop work on
other threads), since an ``on_lost`` waits for a running ``on_elected`` to return.  The
lease, not the callback, is what fences writes, and it is revoked without waiting.

Where a participant stands is one ``ElectionMachine`` (``ELECTION_TABLE``), a machine
like the lifecycles': Joining (not connected) -> Contending -> TakingOffice (publishing
the description) -> Leading, and back through Resigning (withdraw our znodes once the
connection returns) or Joining (session lost); Stopped is terminal.  Each event the
thread receives goes through ``handle(event)``, which stamps a stimulus id, tells the
story (``story()``) and returns the effects the thread then carries out: contend, take
office (``on_elected``), step down (``on_lost``), withdraw.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import ujson
from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import KazooException, NodeExistsError, NoNodeError
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.retry import KazooRetry

from mantis.lifecycles.tables import (
    Meta,
    Story,
    StoryEntry,
    Transition,
    TransitionTable,
    check,
    new_stimulus_id,
    run_transition,
    states_with,
)

log = logging.getLogger(__name__)

DEFAULT_PATH = "/mantis/leader"


class LeaderElectionError(Exception):
    """ZooKeeper could not be asked who leads; the message says why in one line."""


class Lease:
    """Proof of one leadership term, handed to ``on_elected`` and given to the store.

    ``node_path`` is the winner's candidate znode: it exists, at ``node_version``, for
    exactly as long as the term lasts in ZooKeeper's own order of operations, so a write
    made in one transaction with a check of it cannot land after the term ended, however
    late it reaches the server.  ``is_valid()`` is the local view: false from the moment
    this process saw its connection to ZooKeeper falter, letting writes fail fast.
    """

    def __init__(self, node_path: str, node_version: int):
        self.node_path, self.node_version = node_path, node_version
        self._revoked = threading.Event()

    def is_valid(self) -> bool:
        """True until the term ends; never true again afterwards."""
        return not self._revoked.is_set()

    def wait_revoked(self, timeout: float | None = None) -> bool:
        """Block until the term ends or ``timeout`` passes; returns whether it ended."""
        return self._revoked.wait(timeout)

    def revoke(self) -> None:
        """End the term locally (the election does this; idempotent)."""
        self._revoked.set()

    def __repr__(self) -> str:
        return f"Lease({self.node_path!r}, valid={self.is_valid()})"


# -- the election's state, as a machine like the lifecycles' ----------------------------

class ElectionState(StrEnum):
    """Where one participant stands in the election."""

    JOINING = "Joining"              # not connected; nothing of ours to withdraw
    CONTENDING = "Contending"        # connected, a candidate (or about to be), not leading
    TAKING_OFFICE = "TakingOffice"   # lowest candidate, publishing the description: it may
                                     # be published although there is no lease yet
    LEADING = "Leading"              # holds the lease; the description is published
    RESIGNING = "Resigning"          # lost the connection while (maybe) published: withdraw
                                     # the description and candidate before contending again
    STOPPED = "Stopped"              # left the election for good


JOINING, CONTENDING, TAKING_OFFICE, LEADING, RESIGNING, STOPPED = (
    ElectionState.JOINING, ElectionState.CONTENDING, ElectionState.TAKING_OFFICE,
    ElectionState.LEADING, ElectionState.RESIGNING, ElectionState.STOPPED)

# The meta-states of each state, declared once.
META_STATES: dict[ElectionState, frozenset[Meta]] = {
    **{s: frozenset({Meta.ACTIVE}) for s in (JOINING, CONTENDING, TAKING_OFFICE, LEADING, RESIGNING)},
    STOPPED: frozenset({Meta.TERMINAL}),
}
TERMINAL_ELECTION_STATES = states_with(META_STATES, Meta.TERMINAL)


class ElectionEffect(StrEnum):
    """What the election thread must do after a transition."""

    CONTEND = "contend"        # make sure we have a candidate; take office if it is the lowest
    TAKE_OFFICE = "take office"  # call on_elected(lease)
    STEP_DOWN = "step down"    # call on_lost() (the lease is already revoked)
    WITHDRAW = "withdraw"      # when connected: delete our description, then our candidates


# Events: the connection's ("connected", "suspended", "session lost"), a watch or retry
# ("recheck"), stop(), and the thread's own progress ("publish": publishing the
# description; "elected": published, here is the lease; "give up": on_elected failed;
# "withdrawn": our znodes are gone).
_CONNECTED, _SUSPENDED, _EXPIRED, _RECHECK, _STOP = (
    "connected", "suspended", "session lost", "recheck", "stop")
_PUBLISH, _ELECTED, _GIVE_UP, _WITHDRAWN = "publish", "elected", "give up", "withdrawn"

ELECTION_EVENTS = (_CONNECTED, _SUSPENDED, _EXPIRED, _RECHECK, _STOP,
                   _PUBLISH, _ELECTED, _GIVE_UP, _WITHDRAWN)


def _end_term(machine: ElectionMachine) -> list:
    """Take the lease out and revoke it (no I/O); the thread then calls on_lost()."""
    lease, machine.lease = machine.lease, None
    if lease is None:
        return []
    lease.revoke()
    return [ElectionEffect.STEP_DOWN]


def _contend(machine: ElectionMachine, now: float, sid: str) -> list:
    return [ElectionEffect.CONTEND]


def _suspended(machine: ElectionMachine, now: float, sid: str) -> list:
    return _end_term(machine)


def _session_lost(machine: ElectionMachine, now: float, sid: str) -> list:
    machine.candidate = None  # the session took our znodes with it
    return _end_term(machine)


def _stopped(machine: ElectionMachine, now: float, sid: str) -> list:
    return _end_term(machine)  # closing the session removes our znodes


def _elected(machine: ElectionMachine, now: float, sid: str, lease: Lease) -> list:
    machine.lease = lease
    return [ElectionEffect.TAKE_OFFICE]


def _gave_up(machine: ElectionMachine, now: float, sid: str) -> list:
    return _end_term(machine) + [ElectionEffect.WITHDRAW]


def _withdraw(machine: ElectionMachine, now: float, sid: str) -> list:
    return [ElectionEffect.WITHDRAW]


def _withdrawn(machine: ElectionMachine, now: float, sid: str) -> list:
    machine.candidate = None
    return [ElectionEffect.CONTEND]


_LOSSES = {_SUSPENDED: Transition(JOINING), _EXPIRED: Transition(JOINING, _session_lost),
           _STOP: Transition(STOPPED, _stopped)}

ELECTION_TABLE = TransitionTable(
    "leader election",
    {
        JOINING: {**_LOSSES, _CONNECTED: Transition(CONTENDING, _contend), _RECHECK: Transition(JOINING)},
        CONTENDING: {**_LOSSES, _CONNECTED: Transition(CONTENDING, _contend),
                     _RECHECK: Transition(CONTENDING, _contend), _PUBLISH: Transition(TAKING_OFFICE)},
        TAKING_OFFICE: {**_LOSSES, _SUSPENDED: Transition(RESIGNING),
                        _CONNECTED: Transition(TAKING_OFFICE, _contend),
                        _RECHECK: Transition(TAKING_OFFICE, _contend),
                        _PUBLISH: Transition(TAKING_OFFICE), _ELECTED: Transition(LEADING, _elected)},
        LEADING: {**_LOSSES, _SUSPENDED: Transition(RESIGNING, _suspended),
                  _EXPIRED: Transition(JOINING, _session_lost),
                  _CONNECTED: Transition(LEADING), _RECHECK: Transition(LEADING),
                  _GIVE_UP: Transition(RESIGNING, _gave_up)},
        RESIGNING: {**_LOSSES, _SUSPENDED: Transition(RESIGNING),
                    _CONNECTED: Transition(RESIGNING, _withdraw), _RECHECK: Transition(RESIGNING, _withdraw),
                    _WITHDRAWN: Transition(CONTENDING, _withdrawn)},
        STOPPED: {},
    },
    reasons={
        **{(s, _PUBLISH): "only a connected candidate publishes" for s in (JOINING, LEADING, RESIGNING)},
        **{(s, _ELECTED): "only a candidate publishing its description is elected"
           for s in (JOINING, CONTENDING, LEADING, RESIGNING)},
        **{(s, _GIVE_UP): "only a leader gives up its term"
           for s in (JOINING, CONTENDING, TAKING_OFFICE, RESIGNING)},
        **{(s, _WITHDRAWN): "only a resigning participant withdraws"
           for s in (JOINING, CONTENDING, TAKING_OFFICE, LEADING)},
        **{(STOPPED, e): "the participant has left the election" for e in ELECTION_EVENTS},
    },
)

STORY_KEY = "election"


@dataclass
class ElectionMachine:
    """The state of one participant: where it stands, its lease while leading, and its
    candidate znode (full path) when it has one.  ``handle(event)`` moves it along
    ELECTION_TABLE and returns what the election thread must do."""

    state: ElectionState = JOINING
    lease: Lease | None = None
    candidate: str | None = None
    log: Story = field(default_factory=Story, repr=False, compare=False)

    def handle(self, event: str, now: float | None = None, *, stimulus_id: str | None = None,
               **details: Any) -> list[ElectionEffect]:
        """Apply ``event`` (or raise ``TransitionRejected``); returns the effects."""
        return run_transition(ELECTION_TABLE, self, event, time.time() if now is None else now,
                              key=STORY_KEY, story=self.log,
                              stimulus_id=stimulus_id or new_stimulus_id(f"election-{event}"),
                              **details)

    def story(self) -> list[StoryEntry]:
        """What happened to this participant, oldest first."""
        return self.log.story(STORY_KEY)

    def validate(self) -> None:
        """Check the invariants; raise InvariantViolation if one is broken."""
        check(isinstance(self.state, ElectionState), f"leader election: state {self.state!r}")
        check((self.lease is not None) == (self.state == LEADING),
              f"leader election: {self.state} {'with' if self.lease is not None else 'without'} a lease")
        if self.lease is not None:
            check(self.candidate == self.lease.node_path,
                  f"leader election: leading as {self.lease.node_path} but the candidate is {self.candidate}")
        check(self.state not in (TAKING_OFFICE, LEADING) or self.candidate is not None,
              f"leader election: {self.state} with no candidate")


class LeaderElection:
    """One participant in the election at ``path`` on the ZooKeeper ensemble ``hosts``.

    ``description`` (a JSON-able dict: host, API port, actor system address...) is
    published at ``<path>/description`` while this participant leads.
    ``on_elected(lease)`` is called when it becomes leader, ``on_lost()`` when it stops
    being leader for any reason (connection suspended, session lost, ``stop()``).
    ``session_timeout`` (seconds) bounds how long a crashed leader blocks a takeover.

    ``start()`` returns at once; the participant connects, and keeps reconnecting,
    on a thread of its own.  ``stop()`` leaves the election.
    """

    def __init__(self, hosts: str, path: str = DEFAULT_PATH, description: dict | None = None,
                 on_elected: Callable[[Lease], Any] | None = None,
                 on_lost: Callable[[], Any] | None = None, session_timeout: float = 4.0):
        self.hosts, self.path = hosts, path.rstrip("/")
        self.description = dict(description or {})
        self._description_data = _encode(self.description)  # not JSON: fail here, not later
        self._on_elected = on_elected or (lambda lease: None)
        self._on_lost = on_lost or (lambda: None)
        self.session_timeout = session_timeout
        self._candidates_path = f"{self.path}/candidates"
        self._description_path = f"{self.path}/description"
        # Names our candidate so that we can find it again after a create whose reply
        # was lost with the connection (as kazoo's Lock does).
        self._token = uuid.uuid4().hex
        self._client = KazooClient(hosts, timeout=session_timeout,
                                   connection_retry=KazooRetry(max_tries=-1, max_delay=1.0))
        self._events: queue.Queue[str] = queue.Queue()
        # Guards _connected and the machine's lease against kazoo's thread.
        self._lock = threading.Lock()
        # The connection as kazoo last reported it (ahead of the events still queued):
        # a lease is only granted while connected.
        self._connected = False
        # Where we stand (ELECTION_TABLE); only the election thread moves it.
        self.machine = ElectionMachine()
        self._thread: threading.Thread | None = None

    # -- public ----------------------------------------------------------------------

    def start(self) -> LeaderElection:
        """Join the election in the background; returns self at once."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, daemon=True,
                                            name=f"leader-election {self.path}")
            self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Leave the election: ``on_lost()`` first if leading, then close the session,
        which removes our znodes so a standby takes over without waiting for a timeout."""
        if self._thread is None:
            return
        self._events.put(_STOP)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def __enter__(self) -> LeaderElection:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def is_leader(self) -> bool:
        """Whether this participant holds a valid lease right now."""
        lease = self.machine.lease
        return lease is not None and lease.is_valid()

    @property
    def client(self) -> KazooClient:
        """This participant's kazoo client, for diagnostics and fault injection (stopping it
        ends the session as a crash would: the participant steps down and stays out)."""
        return self._client

    @property
    def lease(self) -> Lease | None:
        """The current term's lease while leading, else None."""
        lease = self.machine.lease
        return lease if lease is not None and lease.is_valid() else None

    @property
    def state(self) -> ElectionState:
        """Where this participant stands in the election."""
        return self.machine.state

    def story(self) -> list[StoryEntry]:
        """What happened to this participant (its election events), oldest first."""
        return self.machine.story()

    def current_leader(self, timeout: float | None = None) -> dict | None:
        """The leader's published description, or None when nobody leads right now.

        Raises ``LeaderElectionError`` when ZooKeeper does not answer within
        ``timeout`` (default: the session timeout).
        """
        return _read_description(self._client, self._description_path,
                                 timeout or self.session_timeout)

    # -- kazoo's threads: record and hand over, never block ----------------------------

    def _on_state(self, state: str) -> None:
        with self._lock:
            self._connected = state == KazooState.CONNECTED
            lease = self.machine.lease
            if not self._connected and lease is not None:
                # Fence first: writes must stop now, not when on_lost gets to run.
                lease.revoke()
        self._events.put({KazooState.CONNECTED: _CONNECTED,
                          KazooState.SUSPENDED: _SUSPENDED}.get(state, _EXPIRED))

    def _on_watch(self, event) -> None:
        self._events.put(_RECHECK)

    # -- the election thread ---------------------------------------------------------

    def _run(self) -> None:
        self._client.add_listener(self._on_state)
        self._client.start_async()
        while True:
            event = self._events.get()
            try:
                self._apply(event)
            except Exception:  # this thread must outlive any surprise, or nobody steps down
                log.exception("leader election at %s: handling %s", self.path, event)
                self._retry_later()
            if event == _STOP:
                break
        try:
            self._client.stop()
            self._client.close()
        except Exception as exc:  # closing is best effort; the session times out anyway
            log.warning("closing the election's ZooKeeper client: %s", exc)

    def _apply(self, event: str, **details: Any) -> None:
        """Move the machine along ``event``, then do what the transition asks."""
        with self._lock:
            effects = self.machine.handle(event, **details)
        self._carry_out(effects)

    def _carry_out(self, effects: list[ElectionEffect]) -> None:
        for effect in effects:
            if effect is ElectionEffect.CONTEND:
                self._contend()
            elif effect is ElectionEffect.TAKE_OFFICE:
                self._call_on_elected()
            elif effect is ElectionEffect.STEP_DOWN:
                self._call_on_lost()
            elif effect is ElectionEffect.WITHDRAW and self._connected:
                self._withdraw()

    def _call(self, async_result):
        return async_result.get(timeout=self.session_timeout)

    def _contend(self) -> None:
        """Make sure we have a candidate; lead if it is the lowest, else watch the one below."""
        if not self._connected or self.machine.state not in (CONTENDING, TAKING_OFFICE):
            return
        try:
            self._call(self._client.ensure_path_async(self._candidates_path))
            children = self._call(self._client.get_children_async(self._candidates_path))
            ours = sorted((c for c in children if c.startswith(self._token)), key=_sequence)
            if not ours:
                created = self._call(self._client.create_async(
                    f"{self._candidates_path}/{self._token}-", self._description_data,
                    ephemeral=True, sequence=True, makepath=True))
                children = self._call(self._client.get_children_async(self._candidates_path))
                ours = [created.rsplit("/", 1)[1]]
            for extra in ours[1:]:  # a duplicate from a retried create: keep one
                self._call(self._client.delete_async(f"{self._candidates_path}/{extra}"))
            mine = ours[0]
            candidate = self.machine.candidate = f"{self._candidates_path}/{mine}"
            ordered = sorted(children, key=_sequence)
            index = ordered.index(mine)
            if index == 0:
                self._take_office(candidate)
                return
            below = f"{self._candidates_path}/{ordered[index - 1]}"
            if self._call(self._client.exists_async(below, watch=self._on_watch)) is None:
                self._events.put(_RECHECK)
        except (KazooException, KazooTimeoutError) as exc:
            # A state event follows a connection problem; anything else: try again soon.
            log.warning("leader election at %s: %s: %s", self.path, type(exc).__name__, exc)
            self._retry_later()

    def _take_office(self, candidate: str) -> None:
        """Lead as ``candidate`` (our candidate znode, the lowest one)."""
        stat = self._call(self._client.exists_async(candidate))
        if stat is None:
            self._events.put(_RECHECK)
            return
        data = self._description_data
        transaction = self._client.transaction()
        transaction.check(candidate, stat.version)
        transaction.create(self._description_path, data, ephemeral=True)
        # From here on the outcome may be unknown: withdraw on loss (TakingOffice).
        self._apply(_PUBLISH)
        results = self._call(transaction.commit_async())
        if isinstance(results[1], NodeExistsError):
            # Ours if an earlier publish succeeded but its reply was lost; anyone else's
            # cannot exist while our candidate is the lowest.
            owner = self._call(self._client.exists_async(self._description_path))
            if owner is None or owner.ephemeralOwner != self._client.client_id[0]:
                log.error("%s is held by another session; retrying", self._description_path)
                self._retry_later()
                return
            self._call(self._client.set_async(self._description_path, data))
        elif any(isinstance(r, Exception) for r in results):
            self._events.put(_RECHECK)  # our candidate vanished: start over
            return
        with self._lock:
            if not self._connected:
                return  # a loss is queued right behind us; it will withdraw
            effects = self.machine.handle(_ELECTED, lease=Lease(candidate, stat.version))
        log.info("elected leader at %s as %s", self.path, candidate)
        self._carry_out(effects)

    def _call_on_elected(self) -> None:
        lease = self.machine.lease
        if lease is None:  # cannot happen: TAKE_OFFICE follows the lease's grant
            return
        try:
            self._on_elected(lease)
        except Exception:
            log.exception("on_elected failed; giving up this term")
            if self.machine.state == LEADING:
                self._apply(_GIVE_UP)
            self._retry_later()

    def _call_on_lost(self) -> None:
        log.info("no longer leader at %s", self.path)
        try:
            self._on_lost()
        except Exception:
            log.exception("on_lost failed")

    def _withdraw(self) -> None:
        """Delete our description, then our candidates (in that order: see the module doc)."""
        try:
            self._delete_if_ours(self._description_path)
            # Every candidate with our token, including one whose create reply was lost.
            children = self._call(self._client.get_children_async(self._candidates_path))
            for name in children:
                if name.startswith(self._token):
                    try:
                        self._call(self._client.delete_async(f"{self._candidates_path}/{name}"))
                    except NoNodeError:
                        pass
        except (KazooException, KazooTimeoutError) as exc:
            log.warning("leaving the election at %s: %s", self.path, exc)
            self._retry_later()
            return
        self._apply(_WITHDRAWN)

    def _delete_if_ours(self, path: str) -> None:
        stat = self._call(self._client.exists_async(path))
        if stat is not None and stat.ephemeralOwner == self._client.client_id[0]:
            try:
                self._call(self._client.delete_async(path, version=stat.version))
            except NoNodeError:
                pass

    def _retry_later(self, delay: float = 0.5) -> None:
        timer = threading.Timer(delay, self._events.put, (_RECHECK,))
        timer.daemon = True
        timer.start()


def find_leader(hosts: str, path: str = DEFAULT_PATH, timeout: float = 5.0) -> dict | None:
    """The published description of the leader of the election at ``path``, or None.

    For clients that only read (CLI, agents, workers): opens a short session, reads
    ``<path>/description`` and closes.  Raises ``LeaderElectionError`` when ZooKeeper
    cannot be reached within ``timeout`` seconds.
    """
    client = KazooClient(hosts, timeout=max(timeout, 2.0))
    try:
        client.start(timeout=timeout)
    except KazooTimeoutError:  # kazoo has stopped and closed the client
        raise LeaderElectionError(f"ZooKeeper at {hosts} not reachable within {timeout}s") from None
    try:
        return _read_description(client, f"{path.rstrip('/')}/description", timeout)
    finally:
        client.stop()
        client.close()


class LeaderFollower:
    """A long-lived reader of the leader's description, for agents (one session, reused).

    ``start()`` connects in the background and keeps reconnecting; ``leader()`` reads
    ``<path>/description`` and returns it, or None when nobody leads or ZooKeeper is not
    reachable right now (it never raises).  ``stop()`` closes the session.
    """

    def __init__(self, hosts: str, path: str = DEFAULT_PATH, timeout: float = 2.0):
        self.path, self.timeout = f"{path.rstrip('/')}/description", timeout
        self._client = KazooClient(hosts, timeout=max(timeout, 2.0),
                                   connection_retry=KazooRetry(max_tries=-1, max_delay=1.0))

    def start(self) -> LeaderFollower:
        """Connect in the background; returns self at once."""
        self._client.start_async()
        return self

    def leader(self) -> dict | None:
        """The leader's published description, or None (nobody leads, or not connected)."""
        if not self._client.connected:
            return None
        try:
            return _read_description(self._client, self.path, self.timeout)
        except LeaderElectionError as exc:
            log.info("leader not readable: %s", exc)
            return None

    def stop(self) -> None:
        """Close the session."""
        self._client.stop()
        self._client.close()


def _read_description(client: KazooClient, path: str, timeout: float) -> dict | None:
    try:
        data, _ = client.get_async(path).get(timeout=timeout)
    except NoNodeError:
        return None
    except (KazooException, KazooTimeoutError) as exc:
        raise LeaderElectionError(f"cannot read {path}: {type(exc).__name__} {exc}".strip()) from None
    return ujson.loads(data.decode("utf-8"))


def _encode(description: dict) -> bytes:
    return ujson.dumps(description, ensure_ascii=False, escape_forward_slashes=False).encode("utf-8")


def _sequence(name: str) -> int:
    # ZooKeeper appends a 10-digit counter to sequential nodes.
    return int(name[-10:])
