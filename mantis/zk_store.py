"""Durable metadata store for clusters and jobs in ZooKeeper, fenced by leadership.

Same interface and contract as ``FileStore`` (``mantis/store.py``): a ``put_*``
returns only after ZooKeeper has accepted the write (a synchronous, quorum-committed
request), a record is replaced whole (one znode per record), ended jobs move to the
archive (in one ZooKeeper transaction: the archive record appears exactly when the
active one goes), and nothing is deleted but a deleted cluster's record.

Layout under ``root`` (default ``/mantis``), each record one znode of UTF-8 JSON::

    clusters/<cluster>              one JobCluster record
    jobs/<cluster>/<jobId>          one active Job record (with its workers)
    archive/<cluster>/<jobId>       one ended Job record

Fencing: a store given a leadership lease (``mantis.leader_election.Lease``, or any
object with ``node_path`` and ``node_version``) writes only in a transaction that also
checks that the lease's znode still exists at that version.  The leader's candidate znode
is ephemeral and lowest while it leads, so once the term is over (session expired or
resigned) ZooKeeper itself rejects the write, even one sent from a forgotten process or
delayed in the network; such writes raise ``NotLeaderError``.  When the lease also has
``is_valid()`` (a ``Lease`` does), a write after the local revocation fails at once
without a round trip.  Only ``node_path`` and ``node_version`` are needed, so actors in
other processes can be fenced by the same term: see ``open_zookeeper_store``.  A store
without a lease writes unconditionally (tools, tests, a single master).

A record is limited to ``max_record_bytes`` of JSON (default 1,000,000): ZooKeeper
refuses requests over its ``jute.maxbuffer`` (1 MiB by default) by dropping the
connection, so the store refuses bigger records itself, with a StoreError that says so.
"""
from __future__ import annotations

from typing import Any, Callable

import ujson
from kazoo.client import KazooClient
from kazoo.exceptions import (BadVersionError, KazooException, NodeExistsError, NoNodeError,
                              RolledBackError)
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.retry import KazooRetry

from mantis.store import StoreError

MAX_RECORD_BYTES = 1_000_000

# A put or archive finds the record's current existence, then writes in a transaction
# that assumes it; only a concurrent writer (which a lease excludes) makes it retry.
_ATTEMPTS = 3

_REQUIRED = object()  # "a missing znode is an error", for _wait


class NotLeaderError(StoreError):
    """A write was refused because this store's leadership lease is no longer held."""


class _Raced(Exception):
    """A transaction lost a race on a record's existence; try again."""


class ZooKeeperStore:
    """Clusters and jobs as one JSON znode each under ``root`` on the ensemble ``hosts``.

    ``timeout`` (seconds) is both the session timeout asked for and the longest any
    call waits for ZooKeeper's answer; a call that gets none raises StoreError (the
    write may still have happened: read back before relying on either outcome).
    ``lease``: see the module doc; ``use_lease`` changes it, e.g. on a new term.
    """

    def __init__(self, hosts: str, root: str = "/mantis", timeout: float = 10.0,
                 lease: Any = None, max_record_bytes: int = MAX_RECORD_BYTES):
        self.hosts, self.root, self.timeout = hosts, "/" + root.strip("/"), timeout
        self.max_record_bytes = max_record_bytes
        self.lease = lease
        self._client = KazooClient(hosts, timeout=timeout,
                                   connection_retry=KazooRetry(max_tries=-1, max_delay=1.0))
        try:
            self._client.start(timeout=timeout)
        except KazooTimeoutError:  # kazoo has stopped and closed the client
            raise StoreError(f"ZooKeeper at {hosts} not reachable within {timeout}s") from None
        for sub in ("clusters", "jobs", "archive"):
            self._wait(self._client.ensure_path_async(f"{self.root}/{sub}"), f"create {self.root}/{sub}")

    def use_lease(self, lease: Any) -> None:
        """Fence every later write with ``lease`` (None: write unconditionally)."""
        self.lease = lease

    def close(self) -> None:
        """End this store's ZooKeeper session."""
        self._client.stop()
        self._client.close()

    def __enter__(self) -> "ZooKeeperStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def describe(self) -> dict:
        """Which store this is and where, for masterInfo."""
        return {"type": "zookeeper", "hosts": self.hosts, "root": self.root,
                "fenced": self.lease is not None}

    # -- clusters ------------------------------------------------------------------

    def put_cluster(self, name: str, record: dict) -> None:
        """Replace the cluster record ``name``; returns once ZooKeeper has it."""
        self._put(self._path("clusters", name), record)

    def delete_cluster(self, name: str) -> None:
        """Delete the cluster record ``name`` if there is one (its jobs stay)."""
        path = self._path("clusters", name)
        self._check_lease_locally(f"delete {path}")
        if self._wait(self._client.exists_async(path), f"read {path}") is None:
            return
        transaction = self._transaction()
        transaction.delete(path)
        try:
            self._commit(transaction, f"delete {path}")
        except _Raced:
            pass  # already gone: the outcome asked for

    def clusters(self) -> list[dict]:
        """Every stored cluster record, ordered by name."""
        return self._read_children(f"{self.root}/clusters", key=lambda name: name)

    # -- jobs ----------------------------------------------------------------------

    def put_job(self, cluster: str, job_id: str, record: dict) -> None:
        """Replace the active job record ``job_id`` of ``cluster``; returns once ZooKeeper has it."""
        self._put(self._path("jobs", cluster, job_id), record)

    def jobs(self, cluster: str) -> list[dict]:
        """The active job records of ``cluster``, in job-number order."""
        return self._read_children(self._path("jobs", cluster), key=_job_number_order)

    def archive_job(self, cluster: str, job_id: str, record: dict) -> None:
        """Write the ended job to the archive and drop its active record, atomically."""
        archived, active = self._path("archive", cluster, job_id), self._path("jobs", cluster, job_id)
        what = f"archive {active}"
        data = self._encode(archived, record)
        self._check_lease_locally(what)
        self._ensure_parent(archived)
        for attempt in range(_ATTEMPTS):
            transaction = self._transaction()
            self._write_op(transaction, archived, data)
            if self._wait(self._client.exists_async(active), f"read {active}") is not None:
                transaction.delete(active)
            try:
                return self._commit(transaction, what)
            except _Raced:
                continue
        raise StoreError(f"{what}: changed by another writer {_ATTEMPTS} times in a row")

    def archived_jobs(self, cluster: str) -> list[dict]:
        """The ended job records of ``cluster``, in job-number order."""
        return self._read_children(self._path("archive", cluster), key=_job_number_order)

    def archived_job(self, cluster: str, job_id: str) -> dict | None:
        """The ended job record ``job_id`` of ``cluster``, or None."""
        path = self._path("archive", cluster, job_id)
        data = self._wait(self._client.get_async(path), f"read {path}", missing=None)
        return None if data is None else self._decode(path, data[0])

    # -- writing ---------------------------------------------------------------------

    def _put(self, path: str, record: dict) -> None:
        data = self._encode(path, record)
        self._check_lease_locally(f"write {path}")
        self._ensure_parent(path)
        for attempt in range(_ATTEMPTS):
            transaction = self._transaction()
            self._write_op(transaction, path, data)
            try:
                return self._commit(transaction, f"write {path}")
            except _Raced:
                continue
        raise StoreError(f"write {path}: changed by another writer {_ATTEMPTS} times in a row")

    def _write_op(self, transaction, path: str, data: bytes) -> None:
        # Replace whole: set if the znode exists, create if not (the transaction fails,
        # and we retry, if that changed in between).
        if self._wait(self._client.exists_async(path), f"read {path}") is None:
            transaction.create(path, data)
        else:
            transaction.set_data(path, data)

    def _transaction(self):
        transaction = self._client.transaction()
        lease = self.lease
        if lease is not None:
            transaction.check(lease.node_path, lease.node_version)
        return transaction

    def _commit(self, transaction, what: str) -> None:
        results = self._wait(transaction.commit_async(), what)
        failures = [r for r in results if isinstance(r, Exception)]
        if not failures:
            return
        if self.lease is not None and isinstance(results[0], (NoNodeError, BadVersionError)):
            revoke = getattr(self.lease, "revoke", None)
            if callable(revoke):
                revoke()  # the term is over in ZooKeeper: fail fast from now on
            raise NotLeaderError(f"{what}: refused, leadership lease {self.lease.node_path} "
                                 "is no longer held")
        cause = next((r for r in failures if not isinstance(r, RolledBackError)), failures[0])
        if isinstance(cause, (NoNodeError, NodeExistsError)):
            raise _Raced()
        raise StoreError(f"{what}: {_describe(cause)}")

    def _check_lease_locally(self, what: str) -> None:
        lease = self.lease
        is_valid: Callable[[], bool] | None = getattr(lease, "is_valid", None)
        if lease is not None and callable(is_valid) and not is_valid():
            raise NotLeaderError(f"{what}: refused, leadership lease {lease.node_path} was revoked")

    def _ensure_parent(self, path: str) -> None:
        # Parents are structure, not records: creating an empty one needs no lease.
        parent = path.rsplit("/", 1)[0]
        self._wait(self._client.ensure_path_async(parent), f"create {parent}")

    def _encode(self, path: str, record: dict) -> bytes:
        try:
            data = ujson.dumps(record, ensure_ascii=False, escape_forward_slashes=False).encode("utf-8")
        except (TypeError, OverflowError, ValueError) as exc:
            raise StoreError(f"write {path}: record is not JSON: {exc}") from None
        if len(data) > self.max_record_bytes:
            raise StoreError(f"write {path}: record is {len(data):,} bytes of JSON, over the "
                             f"{self.max_record_bytes:,}-byte limit of one ZooKeeper znode")
        return data

    # -- reading ---------------------------------------------------------------------

    def _read_children(self, parent: str, key: Callable[[str], Any]) -> list[dict]:
        names = self._wait(self._client.get_children_async(parent), f"list {parent}", missing=[])
        # Ask for every record before waiting for any: one round trip, not one per record.
        pending = [(f"{parent}/{n}", self._client.get_async(f"{parent}/{n}"))
                   for n in sorted(names, key=key)]
        records = []
        for path, result in pending:
            data = self._wait(result, f"read {path}", missing=None)
            if data is not None:  # archived or deleted since the listing
                records.append(self._decode(path, data[0]))
        return records

    def _decode(self, path: str, data: bytes) -> Any:
        try:
            return ujson.loads(data.decode("utf-8"))
        except ValueError as exc:
            raise StoreError(f"cannot read {path}: {exc}") from None

    # -- plumbing --------------------------------------------------------------------

    def _wait(self, async_result, what: str, missing: Any = _REQUIRED) -> Any:
        """The result of a kazoo call within ``timeout``, kazoo's errors as StoreError."""
        try:
            return async_result.get(timeout=self.timeout)
        except NoNodeError:
            if missing is _REQUIRED:
                raise StoreError(f"{what}: no such znode") from None
            return missing
        except KazooTimeoutError:
            raise StoreError(f"{what}: no answer from ZooKeeper at {self.hosts} "
                             f"within {self.timeout}s") from None
        except KazooException as exc:
            raise StoreError(f"{what}: {_describe(exc)}") from None

    def _path(self, kind: str, *names: str) -> str:
        for name in names:
            if not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\0" in name:
                raise StoreError(f"{name!r} cannot name a record (empty, '.', '..', '/' or NUL)")
        return "/".join((self.root, kind, *names))


def open_zookeeper_store(config: dict) -> ZooKeeperStore:
    """The store a ``[store]`` config with ``type = "zookeeper"`` names.

    Keys: ``hosts`` (default ``127.0.0.1:2181``), ``root`` (``/mantis``),
    ``timeout_s`` (10), and the fencing term ``lease_node`` / ``lease_version``, which a
    master sets from its ``Lease`` after being elected so that actors in other processes
    write only while that term lasts.
    """
    lease = None
    if config.get("lease_node"):
        lease = _FencingToken(config["lease_node"], int(config.get("lease_version", 0)))
    return ZooKeeperStore(config.get("hosts", "127.0.0.1:2181"), root=config.get("root", "/mantis"),
                          timeout=float(config.get("timeout_s", 10.0)), lease=lease)


class _FencingToken:
    """A lease known only by its znode, for a process that did not run the election."""

    def __init__(self, node_path: str, node_version: int):
        self.node_path, self.node_version = node_path, node_version


def _job_number_order(name: str) -> tuple[int, str]:
    # As FileStore: by the number after the last '-', names without one first.
    tail = name.rpartition("-")[2]
    return (int(tail) if tail.isdigit() else 0, name)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text and text != "()" else type(exc).__name__
