"""Durable metadata store for clusters and jobs in ZooKeeper, fenced by leadership.

Same interface and contract as ``FileStore`` (``mantis/stores/file_store.py``): a ``put_*``
returns only after ZooKeeper has accepted the write (a synchronous, quorum-committed
request), a record is replaced whole (one znode per record), ended jobs move to the
archive (in one ZooKeeper transaction: the archive record appears exactly when the
active one goes), and nothing is deleted but a deleted cluster's record.

Layout under ``root`` (default ``/mantis``), each record one znode of UTF-8 JSON::

    clusters/<cluster>              one JobCluster record
    jobs/<cluster>/<jobId>          one active Job record (with its workers)
    archive/<cluster>/<jobId>       one ended Job record

Fencing: a store given a leadership lease (``mantis.ha.leader_election.Lease``, or any
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

Batches: ``write_batch(ops)`` (the operations of ``mantis/stores/file_store.py``) writes every op
in ONE transaction, fenced like the single writes: all of it or none of it.  Only a
batch whose records add up to more than ``max_batch_bytes`` (default 1,000,000, under
the same 1 MiB request limit) is split, in order, into several transactions, each of
them whole; if one fails, the StoreError's ``committed`` says how many leading ops the
transactions before it made durable.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import ujson
from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError, KazooException, NodeExistsError, NoNodeError, RolledBackError
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.retry import KazooRetry

from mantis.stores.file_store import StoreError, check_op, job_order

MAX_RECORD_BYTES = 1_000_000
# The records (and paths) one batch transaction may carry before the batch is split.
MAX_BATCH_BYTES = 1_000_000
# What each op adds to a transaction besides its record and paths (headers, stat...).
_OP_OVERHEAD_BYTES = 64

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
    ``max_record_bytes`` and ``max_batch_bytes``: see the module doc.
    """

    def __init__(self, hosts: str, root: str = "/mantis", timeout: float = 10.0,
                 lease: Any = None, max_record_bytes: int = MAX_RECORD_BYTES,
                 max_batch_bytes: int = MAX_BATCH_BYTES):
        self.hosts, self.root, self.timeout = hosts, "/" + root.strip("/"), timeout
        self.max_record_bytes = max_record_bytes
        self.max_batch_bytes = max_batch_bytes
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

    def __enter__(self) -> ZooKeeperStore:
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
        return [record for _, record in self.named_clusters()]

    def named_clusters(self) -> list[tuple[str, dict]]:
        """``(name, record)`` of every stored cluster, ordered by name."""
        return self._read_children(f"{self.root}/clusters", key=lambda name: name)

    # -- jobs ----------------------------------------------------------------------

    def put_job(self, cluster: str, job_id: str, record: dict) -> None:
        """Replace the active job record ``job_id`` of ``cluster``; returns once ZooKeeper has it."""
        self._put(self._path("jobs", cluster, job_id), record)

    def jobs(self, cluster: str) -> list[dict]:
        """The active job records of ``cluster``, in job-number order."""
        return [record for _, record in self.named_jobs(cluster)]

    def named_jobs(self, cluster: str) -> list[tuple[str, dict]]:
        """``(job_id, record)`` of the active jobs of ``cluster``, in job-number order."""
        return self._read_children(self._path("jobs", cluster), key=job_order)

    def archive_job(self, cluster: str, job_id: str, record: dict) -> None:
        """Write the ended job to the archive and drop its active record, atomically."""
        archived, active = self._path("archive", cluster, job_id), self._path("jobs", cluster, job_id)
        what = f"archive {active}"
        data = self._encode(archived, record)
        self._check_lease_locally(what)
        self._ensure_parent(archived)
        for _ in range(_ATTEMPTS):
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
        return [record for _, record in self.named_archived_jobs(cluster)]

    def named_archived_jobs(self, cluster: str) -> list[tuple[str, dict]]:
        """``(job_id, record)`` of the ended jobs of ``cluster``, in job-number order."""
        return self._read_children(self._path("archive", cluster), key=job_order)

    def archived_job(self, cluster: str, job_id: str) -> dict | None:
        """The ended job record ``job_id`` of ``cluster``, or None."""
        path = self._path("archive", cluster, job_id)
        data = self._wait(self._client.get_async(path), f"read {path}", missing=None)
        return None if data is None else self._decode(path, data[0])

    # -- small named records of the master's own (a Mesos framework id) ----------------

    def put_meta(self, name: str, record: dict) -> None:
        """Replace the master's own record ``name`` (once ZooKeeper has it).  Not fenced by
        the lease: only a leader writes it, and any leader writes the same value."""
        path = f"{self.root}/meta/{name}"
        data = self._encode(path, record)
        self._wait(self._client.ensure_path_async(path), f"create {path}")
        self._wait(self._client.set_async(path, data), f"write {path}")

    def meta(self, name: str) -> dict | None:
        """The master's own record ``name``, or None."""
        path = f"{self.root}/meta/{name}"
        data = self._wait(self._client.get_async(path), f"read {path}", missing=None)
        return None if data is None or not data[0] else self._decode(path, data[0])

    # -- batches ---------------------------------------------------------------------

    def write_batch(self, ops: Iterable[tuple]) -> None:
        """Apply ``ops`` in order in one fenced transaction; returns once ZooKeeper has it.

        Same effect as the single-record calls in that order.  Every op is checked and
        every record encoded before anything is sent.  A batch over ``max_batch_bytes``
        is split into several transactions (ZooKeeper refuses a request over its ~1 MB
        ``jute.maxbuffer``); an op's znodes (an archive's create and delete) always
        share one.  Raises StoreError (NotLeaderError once the lease is lost) with
        ``committed`` = the number of leading ops that earlier transactions wrote.
        """
        prepared = [self._prepare(op) for op in ops]
        if not prepared:
            return
        what = f"write batch of {len(prepared)} ops ({prepared[0][1]}...)"
        self._check_lease_locally(what)
        # Parents are structure, not records: creating an empty one needs no lease.
        parents = {path.rsplit("/", 1)[0] for _, path, _, _ in prepared}
        pending = [(p, self._client.ensure_path_async(p)) for p in sorted(parents)]
        for parent, result in pending:
            self._wait(result, f"create {parent}")
        committed = 0
        try:
            for start, end in self._chunks(prepared):
                self._commit_chunk(prepared[start:end], what)
                committed = end
        except StoreError as exc:
            exc.committed = committed
            raise

    def _prepare(self, op: tuple) -> tuple[str, str, bytes | None, str | None]:
        """``(kind, path, data, active)``: what an op writes, checked and encoded."""
        check_op(op)
        kind = op[0]
        if kind == "put_cluster":
            path = self._path("clusters", op[1])
            return ("put", path, self._encode(path, op[2]), None)
        if kind == "delete_cluster":
            return ("delete", self._path("clusters", op[1]), None, None)
        if kind == "put_job":
            path = self._path("jobs", op[1], op[2])
            return ("put", path, self._encode(path, op[3]), None)
        path = self._path("archive", op[1], op[2])
        return ("archive", path, self._encode(path, op[3]), self._path("jobs", op[1], op[2]))

    def _chunks(self, prepared: list[tuple]) -> Iterable[tuple[int, int]]:
        """``(start, end)`` slices of ``prepared`` that each fit in one request."""
        start, size = 0, 0
        for i, (_, path, data, active) in enumerate(prepared):
            cost = len(data or b"") + len(path) + len(active or "") + _OP_OVERHEAD_BYTES
            if i > start and size + cost > self.max_batch_bytes:
                yield start, i
                start, size = i, 0
            size += cost
        yield start, len(prepared)

    def _commit_chunk(self, chunk: list[tuple], what: str) -> None:
        for _ in range(_ATTEMPTS):
            # Ask whether every znode exists before waiting for any: one round trip.
            paths = {p for _, path, _, active in chunk for p in (path, active) if p}
            asked = [(p, self._client.exists_async(p)) for p in sorted(paths)]
            exists = {p: self._wait(r, f"read {p}") is not None for p, r in asked}
            transaction, changes = self._transaction(), 0
            for kind, path, data, active in chunk:
                # Existence as it will be at this point of the transaction: an op may
                # follow another on the same znode (a job put, then archived).
                if kind in ("put", "archive"):
                    (transaction.set_data if exists[path] else transaction.create)(path, data)
                    exists[path], changes = True, changes + 1
                if kind == "delete" and exists[path]:
                    transaction.delete(path)
                    exists[path], changes = False, changes + 1
                if kind == "archive" and exists[active]:
                    transaction.delete(active)
                    exists[active], changes = False, changes + 1
            if changes == 0:
                return  # only deletes of records that are not there: nothing to write
            try:
                return self._commit(transaction, what)
            except _Raced:
                continue
        raise StoreError(f"{what}: changed by another writer {_ATTEMPTS} times in a row")

    # -- writing ---------------------------------------------------------------------

    def _put(self, path: str, record: dict) -> None:
        data = self._encode(path, record)
        self._check_lease_locally(f"write {path}")
        self._ensure_parent(path)
        for _ in range(_ATTEMPTS):
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

    def _read_children(self, parent: str, key: Callable[[str], Any]) -> list[tuple[str, dict]]:
        names = self._wait(self._client.get_children_async(parent), f"list {parent}", missing=[])
        # Ask for every record before waiting for any: one round trip, not one per record.
        pending = [(n, f"{parent}/{n}", self._client.get_async(f"{parent}/{n}"))
                   for n in sorted(names, key=key)]
        records = []
        for name, path, result in pending:
            data = self._wait(result, f"read {path}", missing=None)
            if data is not None:  # archived or deleted since the listing
                records.append((name, self._decode(path, data[0])))
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


def open_zookeeper_store(config: Mapping[str, Any]) -> ZooKeeperStore:
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


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text and text != "()" else type(exc).__name__
