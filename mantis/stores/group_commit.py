"""Group commit: one durable store write for a whole turn of many actors' changes.

A shard process hosts many logical actors (job clusters, jobs) and handles their
messages a turn at a time.  Its actors write through one ``GroupCommitStore`` that
wraps the shard's store (a ``FileStore`` opened with the shard's writer name, or a
``ZooKeeperStore``); their writes only queue.  At the end of the turn the shard calls
``flush()``, which writes everything queued with ONE ``write_batch`` (one fsync of the
file store's log, or one fenced ZooKeeper transaction), and sends the turn's replies
only after it returns::

    store = GroupCommitStore(open_store(config, writer="shard-3"))
    for message in turn:
        handle(message)                    # actors call store.put_job(...), reply later
    try:
        store.flush()
    except StoreError as exc:              # nothing in exc.keys may be acknowledged
        for key in exc.keys:
            reset_actor(key, store.durable(key))   # its last durable record, or None
        fail_replies(exc.keys)
    send_replies()

Contract:

- ``put_cluster``, ``delete_cluster``, ``put_job`` and ``archive_job`` check the op and
  queue it; nothing is durable until ``flush()`` returns.  A later op on a record
  supersedes the earlier ones queued for it (a job archived after being put is only
  archived; a cluster deleted after being put is only deleted), except that a job put
  after being archived keeps the archive op too (the archive record stays, as it would
  in the store).
- Reads (``clusters``, ``jobs``, ``archived_job``, ``archived_jobs``) answer what the
  store will hold once the queued ops are written: read-your-writes.
- ``flush()`` writes the queued ops with one ``write_batch`` and empties the queue,
  whether it succeeds or not.  On failure it raises the store's StoreError (a
  NotLeaderError stays one) with ``keys``: the records whose ops were not written.
- ``durable(key)`` is the last record known durable for ``("cluster", name)`` or
  ``("job", cluster, job_id)``: from a successful flush, or read from the store.  None
  if it was never stored, or is deleted or archived.  After a failed flush a record's
  outcome is unknown (the store may show the failed write: see the stores' docs), so
  reads no longer update its ``durable`` until a flush writes it again.
- A queued record is kept by reference (it is what gets written, and what ``durable()``
  copies once flushed): build a fresh dict for each write and never change one once
  queued.  Records handed out (by reads and ``durable()``) are the caller's to change.
- One thread per GroupCommitStore (a shard's turn): it has no lock.
"""
from __future__ import annotations

import copy
from typing import Any

from mantis.stores.file_store import StoreError, check_op, job_order, op_key


class GroupCommitStore:
    """Queues the writes of a turn and makes them durable together (see the module doc).

    ``store`` is any store with ``write_batch`` and the ``named_*`` reads: a
    ``FileStore`` (give it a writer name, or every record is still fsynced on its own)
    or a ``ZooKeeperStore``.
    """

    def __init__(self, store: Any):
        self.store = store
        self._pending: dict[tuple, list[tuple]] = {}  # key -> its ops, in queue order
        self._durable: dict[tuple, dict] = {}  # key -> last durable record (absent: None)
        self._unsure: set[tuple] = set()  # keys whose last flush failed

    # -- writes: queued ---------------------------------------------------------------

    def put_cluster(self, name: str, record: dict) -> None:
        """Queue the replacement of the cluster record ``name``."""
        self._queue(("put_cluster", name, record))

    def delete_cluster(self, name: str) -> None:
        """Queue the deletion of the cluster record ``name``."""
        self._queue(("delete_cluster", name))

    def put_job(self, cluster: str, job_id: str, record: dict) -> None:
        """Queue the replacement of the active job record ``job_id`` of ``cluster``."""
        self._queue(("put_job", cluster, job_id, record))

    def archive_job(self, cluster: str, job_id: str, record: dict) -> None:
        """Queue the move of job ``job_id`` of ``cluster`` to the archive, as ``record``."""
        self._queue(("archive_job", cluster, job_id, record))

    def _queue(self, op: tuple) -> None:
        check_op(op)  # a malformed op fails its caller now, not the whole turn's flush
        key = op_key(op)
        earlier = self._pending.get(key, [])
        # A put does not undo an archive: keep the last archive op before it.
        kept = [o for o in earlier if o[0] == "archive_job"][-1:] if op[0] == "put_job" else []
        self._pending[key] = kept + [op]

    @property
    def pending(self) -> int:
        """How many ops are queued (after supersession); 0 when there is nothing to flush."""
        return sum(len(ops) for ops in self._pending.values())

    # -- flushing ---------------------------------------------------------------------

    def flush(self) -> int:
        """Write every queued op with one ``write_batch``; the number of ops written.

        Raises StoreError with ``keys`` (the records whose ops were not written); the
        queue is empty afterwards either way.
        """
        if not self._pending:
            return 0
        batch = [op for ops in self._pending.values() for op in ops]
        self._pending = {}
        try:
            self.store.write_batch(batch)
        except Exception as exc:
            # Leading ops that a split batch did commit are durable all the same.
            done = exc.committed if isinstance(exc, StoreError) else 0
            for op in batch[:done]:
                self._remember(op)
            failed = tuple(dict.fromkeys(op_key(op) for op in batch[done:]))
            self._unsure.update(failed)
            if not isinstance(exc, StoreError):  # the stores promise StoreError; be sure
                error = StoreError(f"write batch of {len(batch)} ops: {type(exc).__name__}: {exc}")
                error.committed, error.keys = done, failed
                raise error from exc
            exc.keys = failed
            raise
        for op in batch:
            self._remember(op)
        return len(batch)

    def durable(self, key: tuple) -> dict | None:
        """The last record known durable for ``key`` (a copy), or None (see the module doc)."""
        return copy.deepcopy(self._durable.get(tuple(key)))

    def _remember(self, op: tuple) -> None:
        key = op_key(op)
        if op[0] in ("put_cluster", "put_job"):
            self._durable[key] = op[-1]
        else:
            self._durable.pop(key, None)  # deleted or archived: no longer an active record
        self._unsure.discard(key)

    def _learn(self, key: tuple, record: dict) -> None:
        # What the store holds is durable, unless a write to it is queued or has failed.
        if key not in self._pending and key not in self._unsure:
            self._durable[key] = copy.deepcopy(record)  # the reader may change its own

    # -- reads: the store as it will be after the flush -------------------------------

    def clusters(self) -> list[dict]:
        """Every cluster record, queued ops applied, ordered by name."""
        records = {}
        for name, record in self.store.named_clusters():
            self._learn(("cluster", name), record)
            records[name] = record
        for key, ops in self._pending.items():
            if key[0] == "cluster":
                if ops[-1][0] == "put_cluster":
                    records[key[1]] = copy.deepcopy(ops[-1][2])  # queued: not the reader's
                else:
                    records.pop(key[1], None)
        return [records[name] for name in sorted(records)]

    def jobs(self, cluster: str) -> list[dict]:
        """The active job records of ``cluster``, queued ops applied, in job-number order."""
        records = {}
        for job_id, record in self.store.named_jobs(cluster):
            self._learn(("job", cluster, job_id), record)
            records[job_id] = record
        for key, ops in self._pending.items():
            if key[0] == "job" and key[1] == cluster:
                if ops[-1][0] == "put_job":
                    records[key[2]] = copy.deepcopy(ops[-1][3])
                else:
                    records.pop(key[2], None)
        return [records[job_id] for job_id in sorted(records, key=job_order)]

    def archived_jobs(self, cluster: str) -> list[dict]:
        """The ended job records of ``cluster``, queued ops applied, in job-number order."""
        records = dict(self.store.named_archived_jobs(cluster))
        for key, ops in self._pending.items():
            if key[0] == "job" and key[1] == cluster:
                archived = _queued_archive(ops)
                if archived is not None:
                    records[key[2]] = copy.deepcopy(archived)
        return [records[job_id] for job_id in sorted(records, key=job_order)]

    def archived_job(self, cluster: str, job_id: str) -> dict | None:
        """The ended job record ``job_id`` of ``cluster`` (queued or stored), or None."""
        archived = _queued_archive(self._pending.get(("job", cluster, job_id), []))
        if archived is not None:
            return copy.deepcopy(archived)
        return self.store.archived_job(cluster, job_id)

    def describe(self) -> dict:
        """The wrapped store's description, with the number of queued ops."""
        return {**self.store.describe(), "groupCommit": True, "pending": self.pending}

    def close(self) -> None:
        """Close the wrapped store.  Queued ops are not written: flush first."""
        close = getattr(self.store, "close", None)
        if callable(close):
            close()


def _queued_archive(ops: list[tuple]) -> dict | None:
    archives = [op[3] for op in ops if op[0] == "archive_job"]
    return archives[-1] if archives else None
