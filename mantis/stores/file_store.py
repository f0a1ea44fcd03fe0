"""Durable metadata store for clusters and jobs: the file store (the default).

Contract (shared by every store): a ``put_*`` returns only after the record is on
disk, so an actor may acknowledge a change once it returns; a record is replaced
whole and atomically (written to a temp file, fsynced, renamed over the old one, and
the directory fsynced), so a kill -9 at any moment leaves either the old or the new
record, never a torn one.  Ended jobs move to the archive; nothing is deleted but a
deleted cluster's record.

Batches: ``write_batch(ops)`` applies a list of operations with the same effect as the
single-record calls in that order, and returns once all of them are durable::

    ("put_cluster", name, record)          ("delete_cluster", name)
    ("put_job", cluster, job_id, record)   ("archive_job", cluster, job_id, record)

A failed batch raises ``StoreError`` (never a bare OSError), with ``committed`` = the
number of its leading ops that are durable all the same (0 with a write-ahead log).

Write-ahead log (``FileStore(root, writer="shard-1")``): one fsync per batch instead of
two per record.  write_batch appends the whole batch as one line of JSON to
``wal/<writer>.log`` and fsyncs that file once: that fsync is the commit point, after
which neither a kill -9 nor a power loss can lose the batch.  The record files follow
at the next checkpoint (this store answers reads from the batches not yet applied
meanwhile), so a record changed many times between checkpoints is written once: when
the log grows past ``checkpoint_bytes`` or ``checkpoint_interval_s`` have passed since
the last one, the latest version of every record is written (temp file + rename), the
filesystem is synced and the log is emptied.  A checkpoint that fails
(a record file that cannot be written) keeps the log and is tried again later: the
batches it holds are committed all the same.  Opening a store with a
writer replays that writer's log first (complete lines only: a torn last line was
never committed), so the record files are whole again after a power loss.
``FileStore.replay_all(root)`` does it for every log under ``root``; the master calls
it once at start, before any shard opens the store, so logs of writers that no longer
exist (fewer shards than last time) are not forgotten.

Rules of the log:

- One writer name is open in one store at a time (an exclusive ``flock`` on its log:
  a second open fails with StoreError).
- A record (cluster or job) is written by one writer between two replays (and not
  also by a store without a writer).  Replay re-applies each log's records in that
  log's order, and logs are replayed one after the other, so a record that moved from
  one writer to another while the first log still held it could come back old.
  Shards own disjoint clusters and jobs; keep it so.
- A batch whose log append fails is cut back out of the log and leaves no trace.
- After a failed fsync the store refuses every later write (the kernel may have dropped
  the pages it could not write, and a later fsync would not say so): close it and open
  it again, which replays the log.

Layout under ``root``::

    clusters/<cluster>.json          one JobCluster record
    jobs/<cluster>/<jobId>.json      one active Job record (with its workers)
    archive/<cluster>/<jobId>.json   one ended Job record
    wal/<writer>.log                 a writer's batches since its last checkpoint
"""
from __future__ import annotations

import fcntl
import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import ujson

if TYPE_CHECKING:
    import ctypes

log = logging.getLogger(__name__)

# Past this many bytes of log, the next batch checkpoints (fsyncs the record files it
# has written and empties the log).  Bigger: fewer checkpoints, longer replays.
WAL_CHECKPOINT_BYTES = 8 * 1024 * 1024
# ... or past this many seconds since the last checkpoint, so the record files lag the
# log by little, for whoever reads them directly.
WAL_CHECKPOINT_INTERVAL_S = 5.0

# The number of names (after the op's own name) each operation takes, record included.
OP_ARITY = {"put_cluster": 2, "delete_cluster": 1, "put_job": 3, "archive_job": 3}


class StoreError(Exception):
    """A record could not be read or written; the message names the file.

    A failed ``write_batch`` sets ``committed``: how many of the batch's leading ops
    are durable all the same (the ZooKeeper store splits a batch over 1 MB into several
    transactions).  ``GroupCommitStore.flush`` sets ``keys``: the record keys of the
    ops that failed.
    """

    committed: int = 0
    keys: tuple = ()


def op_key(op: tuple) -> tuple:
    """The record an operation writes: ``("cluster", name)`` or ``("job", cluster, job_id)``."""
    kind = op[0]
    if kind in ("put_cluster", "delete_cluster"):
        return ("cluster", op[1])
    return ("job", op[1], op[2])


def check_op(op: Any) -> None:
    """Raise StoreError unless ``op`` is one of the four operations, fully named."""
    if not isinstance(op, tuple) or not op or op[0] not in OP_ARITY:
        raise StoreError(f"unknown store operation {op!r:.80} (known: {', '.join(OP_ARITY)})")
    if len(op) != 1 + OP_ARITY[op[0]]:
        raise StoreError(f"{op[0]} takes {OP_ARITY[op[0]]} arguments, got {len(op) - 1}")
    has_record = op[0] != "delete_cluster"
    for name in op[1:len(op) - 1] if has_record else op[1:]:
        check_name(name)
    if has_record and not isinstance(op[-1], dict):
        raise StoreError(f"{op[0]} {op_key(op)[1:]}: the record must be a dict, "
                         f"not {type(op[-1]).__name__}")


def check_name(name: Any) -> None:
    """Raise StoreError unless ``name`` can name one record file or znode."""
    if not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\0" in name:
        raise StoreError(f"{name!r} cannot name a record (empty, '.', '..', '/' or NUL)")


def job_order(job_id: str) -> tuple[int, str]:
    """Sort key of job ids: by the number after the last '-' (none: 0), then by name."""
    tail = job_id.rpartition("-")[2]
    return (int(tail) if tail.isdigit() else 0, job_id)


def encode(record: Any, what: str) -> str:
    """``record`` as compact JSON text, or StoreError naming ``what`` was being written."""
    try:
        return ujson.dumps(record, ensure_ascii=False, escape_forward_slashes=False)
    except (TypeError, OverflowError, ValueError) as exc:
        raise StoreError(f"write {what}: record is not JSON: {exc}") from None


def write_atomically(path: Path, data: Any) -> None:
    """Replace ``path`` with the JSON of ``data`` so that readers see old or new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(ujson.dumps(data, ensure_ascii=False, escape_forward_slashes=False))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _syncfs(fd: int) -> bool:
    """Flush the whole filesystem holding ``fd`` to disk (Linux ``syncfs(2)``); False
    where it is not available, and the caller syncs file by file."""
    global _LIBC
    if _LIBC is None:
        try:
            import ctypes
            import ctypes.util

            _LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            _LIBC.syncfs  # noqa: B018  absent on non-Linux libcs
        except (OSError, AttributeError):
            _LIBC = False
    if not _LIBC:
        return False
    if _LIBC.syncfs(fd) != 0:
        import ctypes

        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return True


_LIBC: ctypes.CDLL | Literal[False] | None = None  # None: not loaded yet; False: no syncfs


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read(path: Path) -> Any:
    try:
        return ujson.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StoreError(f"cannot read {path}: {exc}") from None


def _oneline(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".replace("\n", " ")


class FileStore:
    """Clusters and jobs as one JSON file each under a root directory.

    ``writer``: this process's name for its write-ahead log (see the module doc); None
    (the default) fsyncs every record as it is written.  ``checkpoint_bytes``: the log
    size past which a batch checkpoints.  With a writer, the single-record calls are
    batches of one (so they keep their place in the log), and ``close()`` releases the
    log for another process.
    """

    def __init__(self, root: str | os.PathLike, writer: str | None = None,
                 checkpoint_bytes: int = WAL_CHECKPOINT_BYTES,
                 checkpoint_interval_s: float = WAL_CHECKPOINT_INTERVAL_S):
        self.root = Path(root)
        self.writer = writer
        self.checkpoint_bytes = checkpoint_bytes
        self.checkpoint_interval_s = checkpoint_interval_s
        # Committed in the log, not yet in the record files: path -> text (None: removed).
        self._unapplied: dict[Path, str | None] = {}
        self._checkpointed_at = time.monotonic()
        self.replayed = 0  # batches replayed from the log when this store was opened
        self._known_dirs: set[Path] = set()  # directories seen to exist (a stat per write saved)
        self._wal_fd: int | None = None
        self._wal_size = 0
        self._lock = threading.Lock()  # one batch (and checkpoint) at a time
        self._dirty_files: set[Path] = set()  # written since the last checkpoint, unsynced
        self._dirty_dirs: set[Path] = set()
        self._broken: str | None = None  # why writes are refused (a failed fsync)
        for sub in ("clusters", "jobs", "archive"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        if writer is not None:
            self._open_wal(writer)

    def describe(self) -> dict:
        """Which store this is and where, for masterInfo."""
        if self.writer is None:
            return {"type": "file", "root": str(self.root)}
        return {"type": "file", "root": str(self.root), "writer": self.writer}

    def close(self) -> None:
        """Release this writer's log (a no-op without a writer).  Committed batches stay
        in the log until the next open replays them (or a checkpoint applied them)."""
        with self._lock:
            if self._wal_fd is not None:
                os.close(self._wal_fd)  # also drops the flock
                self._wal_fd = None

    def __enter__(self) -> FileStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @classmethod
    def replay_all(cls, root: str | os.PathLike) -> int:
        """Replay and empty every writer's log under ``root``; the number of batches replayed.

        Call it before any writer opens the store (a log still open elsewhere makes it
        raise StoreError).  Emptied logs are removed: writers that still exist create
        theirs again when they open.
        """
        total = 0
        for path in sorted((Path(root) / "wal").glob("*.log")):
            store = cls(root, writer=path.stem)
            try:
                total += store.replayed
                path.unlink()  # still under our flock, and empty: nothing is lost
            except OSError as exc:
                raise StoreError(f"remove {path}: {_oneline(exc)}") from None
            finally:
                store.close()
        return total

    # -- clusters ------------------------------------------------------------------

    def put_cluster(self, name: str, record: dict) -> None:
        """Replace the cluster record ``name``; returns once it is durable."""
        if self.writer is not None:
            return self.write_batch([("put_cluster", name, record)])
        write_atomically(self.root / "clusters" / f"{name}.json", record)

    def delete_cluster(self, name: str) -> None:
        """Delete the cluster record ``name`` if there is one (its jobs stay)."""
        if self.writer is not None:
            return self.write_batch([("delete_cluster", name)])
        path = self.root / "clusters" / f"{name}.json"
        if path.exists():
            path.unlink()
            _fsync_dir(path.parent)

    def clusters(self) -> list[dict]:
        """Every stored cluster record, ordered by name."""
        return [record for _, record in self.named_clusters()]

    def named_clusters(self) -> list[tuple[str, dict]]:
        """``(name, record)`` of every stored cluster, ordered by name."""
        return sorted(self._named(self.root / "clusters"))

    # -- jobs ----------------------------------------------------------------------

    def put_job(self, cluster: str, job_id: str, record: dict) -> None:
        """Replace the active job record ``job_id`` of ``cluster``; returns once it is durable."""
        if self.writer is not None:
            return self.write_batch([("put_job", cluster, job_id, record)])
        write_atomically(self.root / "jobs" / cluster / f"{job_id}.json", record)

    def jobs(self, cluster: str) -> list[dict]:
        """The active job records of ``cluster``, in job-number order."""
        return [record for _, record in self.named_jobs(cluster)]

    def named_jobs(self, cluster: str) -> list[tuple[str, dict]]:
        """``(job_id, record)`` of the active jobs of ``cluster``, in job-number order."""
        return self._named_jobs(self.root / "jobs" / cluster)

    def archive_job(self, cluster: str, job_id: str, record: dict) -> None:
        """Write the ended job to the archive, then drop its active record."""
        if self.writer is not None:
            return self.write_batch([("archive_job", cluster, job_id, record)])
        write_atomically(self.root / "archive" / cluster / f"{job_id}.json", record)
        active = self.root / "jobs" / cluster / f"{job_id}.json"
        if active.exists():
            active.unlink()
            _fsync_dir(active.parent)

    def archived_jobs(self, cluster: str) -> list[dict]:
        """The ended job records of ``cluster``, in job-number order."""
        return [record for _, record in self.named_archived_jobs(cluster)]

    def named_archived_jobs(self, cluster: str) -> list[tuple[str, dict]]:
        """``(job_id, record)`` of the ended jobs of ``cluster``, in job-number order."""
        return self._named_jobs(self.root / "archive" / cluster)

    def archived_job(self, cluster: str, job_id: str) -> dict | None:
        """The ended job record ``job_id`` of ``cluster``, or None."""
        path = self.root / "archive" / cluster / f"{job_id}.json"
        if path in self._unapplied:
            text = self._unapplied[path]
            return None if text is None else ujson.loads(text)
        return _read(path) if path.exists() else None

    def _named(self, directory: Path) -> list[tuple[str, dict]]:
        """``(stem, record)`` of the records in ``directory``, batches not yet applied included."""
        found: dict[Path, str | None] = {p: None for p in directory.glob("*.json")}
        for path, text in list(self._unapplied.items()):
            if path.parent == directory:
                found[path] = text
                if text is None:
                    del found[path]
        return [(p.stem, _read(p) if text is None else ujson.loads(text)) for p, text in found.items()]

    def _named_jobs(self, directory: Path) -> list[tuple[str, dict]]:
        return sorted(self._named(directory), key=lambda item: job_order(item[0]))

    # -- small named records of the master's own (a Mesos framework id) ----------------

    def put_meta(self, name: str, record: dict) -> None:
        """Replace the master's own record ``name`` (durable on return)."""
        write_atomically(self.root / "meta" / f"{name}.json", record)

    def meta(self, name: str) -> dict | None:
        """The master's own record ``name``, or None."""
        path = self.root / "meta" / f"{name}.json"
        return _read(path) if path.exists() else None

    # -- batches ---------------------------------------------------------------------

    def write_batch(self, ops: Iterable[tuple]) -> None:
        """Apply ``ops`` (see the module doc) in order; returns once all are durable.

        With a writer: one fsync of the log (plus, now and then, a checkpoint).  Without:
        each record fsynced as the single-record calls do.  Every op is checked and
        every record encoded before anything is written, so a malformed batch changes
        nothing.  Raises StoreError if the batch did not commit, with ``committed``: 0
        with a writer, else the number of ops written before the one that failed.
        """
        ops = list(ops)
        encoded = []
        for op in ops:
            check_op(op)
            text = None if op[0] == "delete_cluster" else encode(op[-1], f"{op[0]} {op_key(op)[1:]}")
            encoded.append((op, text))
        if not ops:
            return
        if self.writer is None:
            self._write_each(ops)
            return
        with self._lock:
            if self._broken is not None:
                raise StoreError(f"store {self.root} (writer {self.writer}) refuses writes: "
                                 f"{self._broken}; close and reopen it to replay its log")
            if self._wal_fd is None:
                raise StoreError(f"store {self.root} (writer {self.writer}) is closed")
            self._append(_wal_line(encoded))
            for op, text in encoded:
                for what, path in self._targets(op):
                    self._unapplied[path] = text if what == "replace" else None
            if (self._wal_size >= self.checkpoint_bytes
                    or time.monotonic() - self._checkpointed_at >= self.checkpoint_interval_s):
                try:
                    self._checkpoint()
                except StoreError as exc:
                    # The batch is committed (in the log) whatever happens here: the
                    # log stays until a later checkpoint succeeds.
                    log.error("checkpoint failed after a committed batch: %s", exc)

    def checkpoint(self) -> None:
        """Make every record written so far durable on its own and empty the log."""
        if self.writer is None:
            return
        with self._lock:
            if self._wal_fd is None:
                raise StoreError(f"store {self.root} (writer {self.writer}) is closed")
            self._checkpoint()

    def _write_each(self, ops: list[tuple]) -> None:
        # The unlogged path: each op exactly as its single-record call, errors as StoreError.
        for done, op in enumerate(ops):
            try:
                getattr(self, op[0])(*op[1:])
            except OSError as exc:
                error = StoreError(f"{op[0]} {op_key(op)[1:]}: {_oneline(exc)}")
                error.committed = done  # each op before it was fsynced on its own
                raise error from None

    # -- the log ---------------------------------------------------------------------

    def _open_wal(self, writer: str) -> None:
        check_name(writer)
        path = self.root / "wal" / f"{writer}.log"
        try:
            path.parent.mkdir(exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError as exc:
            raise StoreError(f"open {path}: {_oneline(exc)}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise StoreError(f"{path} is already open (one open store per writer name)") from None
        self._wal_fd, self._wal_path = fd, path
        try:
            self.replayed = self._replay()
            # The directories and the log itself may be new: make their names durable too.
            self._dirty_dirs.update({self.root, path.parent, *(self.root / s for s in
                                                              ("clusters", "jobs", "archive"))})
            self._checkpoint()
        except BaseException:
            os.close(fd)
            self._wal_fd = None
            raise

    def _replay(self) -> int:
        """Re-apply every committed batch of the log (no fsync: the checkpoint follows)."""
        try:
            data = self._wal_path.read_bytes()
        except OSError as exc:
            raise StoreError(f"read {self._wal_path}: {_oneline(exc)}") from None
        batches = 0
        for ops in committed_batches(data):
            self._apply([(op, None if op[0] == "delete_cluster" else encode(op[-1], str(self._wal_path)))
                         for op in ops])
            batches += 1
        if batches:
            log.info("replayed %d batches from %s", batches, self._wal_path)
        return batches

    def _append(self, line: bytes) -> None:
        """Append one batch to the log and fsync it: the commit point."""
        fd, start = self._wal_fd, self._wal_size
        assert fd is not None  # callers checked, under the lock, that the log is open
        try:
            view = memoryview(line)
            while view:
                view = view[os.write(fd, view):]
        except OSError as exc:
            # Not committed (disk full, file too big...): cut the log back so that no
            # later fsync makes this part of a line durable.
            try:
                os.ftruncate(fd, start)
            except OSError as cut:
                self._broken = f"could not cut {self._wal_path} back after a failed append: {_oneline(cut)}"
            raise StoreError(f"commit to {self._wal_path}: {_oneline(exc)}") from None
        try:
            os.fsync(fd)
        except OSError as exc:
            # The kernel may have dropped pages it could not write, and a later fsync
            # would not say so: trust nothing unsynced, refuse writes until reopened.
            self._broken = f"fsync of {self._wal_path} failed: {_oneline(exc)}"
            try:
                os.ftruncate(fd, start)
            except OSError:
                pass
            raise StoreError(f"commit to {self._wal_path}: {_oneline(exc)}") from None
        self._wal_size = start + len(line)

    def _checkpoint(self) -> None:
        """fsync what was written since the last checkpoint, then empty the log.

        On Linux one ``syncfs`` of the store's filesystem does it (thousands of files
        written since the last checkpoint would otherwise cost one fsync each, a stall
        of a second in the turn that checkpoints); elsewhere, file by file.
        """
        wal_fd = self._wal_fd
        assert wal_fd is not None  # callers checked (or just opened) the log, under the lock
        self._checkpointed_at = time.monotonic()
        if self._unapplied:
            # The latest version of each record, in one go; on failure nothing is lost
            # (the log keeps every batch) and the next checkpoint tries again.
            self._apply([(("put", path), text) for path, text in self._unapplied.items()])
            self._unapplied.clear()
        try:
            if _syncfs(wal_fd):
                self._dirty_files.clear()
                self._dirty_dirs.clear()
            for path in sorted(self._dirty_files):
                try:
                    fd = os.open(path, os.O_RDONLY)
                except FileNotFoundError:
                    continue  # archived or deleted since: its directory's fsync covers it
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            for directory in sorted(self._dirty_dirs, key=lambda d: len(d.parts), reverse=True):
                _fsync_dir(directory)
            os.ftruncate(wal_fd, 0)
            os.fsync(wal_fd)
        except OSError as exc:
            self._broken = f"checkpoint failed: {_oneline(exc)}"
            raise StoreError(f"checkpoint of {self._wal_path}: {_oneline(exc)}") from None
        self._wal_size = 0
        self._dirty_files.clear()
        self._dirty_dirs.clear()

    # -- applying records (no fsync: the log makes them durable) -------------------

    def _apply(self, encoded: list[tuple[tuple, str | None]]) -> None:
        """Write the batch's record files: all temp files first, then the renames.

        Most failures (disk full, a directory that is not one) happen while the temp
        files are written: then they are removed and no reader sees any of the batch.
        """
        actions: list[tuple[str, Path, Path | None]] = []  # (what, path, temp file)
        try:
            for op, text in encoded:
                for what, path in self._targets(op):
                    if what == "replace" and text is not None:
                        actions.append((what, path, self._write_temp(path, text)))
                    else:  # a replace by no text is an unlink
                        actions.append(("unlink" if what == "replace" else what, path, None))
        except BaseException:
            for _, _, tmp in actions:
                if tmp is not None and os.path.exists(tmp):
                    os.unlink(tmp)
            raise
        for i, (what, path, tmp) in enumerate(actions):
            try:
                if what == "replace":
                    assert tmp is not None  # every replace got its temp file above
                    os.replace(tmp, path)
                    self._dirty_files.add(path)
                    self._dirty_dirs.add(path.parent)
                else:
                    self._unlink(path)
            except OSError as exc:
                for _, _, later in actions[i:]:
                    if later is not None and os.path.exists(later):
                        os.unlink(later)
                raise StoreError(f"write {path}: {_oneline(exc)}") from None

    def _targets(self, op: tuple) -> list[tuple[str, Path]]:
        """What an op does to the files: ``("replace", path)`` and ``("unlink", path)``, in order.
        ``("put", path)`` (a checkpoint's) replaces ``path``, or removes it when its text is None."""
        kind = op[0]
        if kind == "put":
            return [("replace", op[1])]
        if kind == "put_cluster":
            return [("replace", self.root / "clusters" / f"{op[1]}.json")]
        if kind == "delete_cluster":
            return [("unlink", self.root / "clusters" / f"{op[1]}.json")]
        if kind == "put_job":
            return [("replace", self.root / "jobs" / op[1] / f"{op[2]}.json")]
        # archive_job: the archive record first, so that the job is never in neither place
        return [("replace", self.root / "archive" / op[1] / f"{op[2]}.json"),
                ("unlink", self.root / "jobs" / op[1] / f"{op[2]}.json")]

    def _write_temp(self, path: Path, text: str) -> Path:
        """A temp file beside ``path`` holding ``text`` (unsynced), to be renamed over it."""
        parent = path.parent
        tmp = None
        try:
            if parent not in self._known_dirs:
                if not parent.is_dir():
                    parent.mkdir(parents=True, exist_ok=True)
                    self._dirty_ancestors(parent)
                self._known_dirs.add(parent)
            if self.writer is None:
                fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=parent)
            else:
                # The writer's lock makes it the only one writing these records: a fixed
                # temp name spares mkstemp's search for a free one.
                tmp = str(parent / f".{path.name}.{self.writer}.tmp")
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
        except OSError as exc:
            self._known_dirs.discard(parent)  # look again next time: it may have gone
            if tmp is not None and os.path.exists(tmp):
                os.unlink(tmp)
            raise StoreError(f"write {path}: {_oneline(exc)}") from None
        return Path(tmp)

    def _unlink(self, path: Path) -> None:
        try:
            path.unlink()
        except FileNotFoundError:
            return
        self._dirty_dirs.add(path.parent)

    def _dirty_ancestors(self, created: Path) -> None:
        # A new directory's name lives in its parent, and so on up to the root.
        directory = created.parent
        while True:
            self._dirty_dirs.add(directory)
            if directory == self.root or directory == directory.parent:
                return
            directory = directory.parent


def _wal_line(encoded: list[tuple[tuple, str | None]]) -> bytes:
    """One batch as one line of JSON: ``{"ops": [[name, args..., record], ...]}``.

    Records are spliced in as the text already written to their files, so each is
    encoded once.  ujson escapes newlines inside strings: the line has none.
    """
    parts = []
    for op, text in encoded:
        names = ",".join(ujson.dumps(name, ensure_ascii=False, escape_forward_slashes=False)
                         for name in (op if text is None else op[:-1]))
        parts.append(f"[{names}]" if text is None else f"[{names},{text}]")
    return ('{"ops":[' + ",".join(parts) + "]}\n").encode("utf-8")


def committed_batches(data: bytes) -> list[list[tuple]]:
    """The batches of a log's bytes that were committed, in order.

    A batch is committed once its whole line, newline included, was fsynced; each
    commit fsyncs every line before it, so the first line that is torn (no newline)
    or unreadable ends the committed part, and nothing after it counts.
    """
    batches = []
    for line in data.split(b"\n")[:-1]:  # the part after the last newline is torn
        try:
            ops = ujson.loads(line)["ops"]
            batch = [tuple(op) for op in ops]
            for op in batch:
                check_op(op)
        except (ValueError, KeyError, TypeError, StoreError):
            log.warning("write-ahead log: an unreadable line ends the committed batches")
            break
        batches.append(batch)
    return batches


def _named_jobs(directory: Path) -> list[tuple[str, dict]]:
    paths = sorted(directory.glob("*.json"), key=lambda p: job_order(p.stem))
    return [(p.stem, _read(p)) for p in paths]
