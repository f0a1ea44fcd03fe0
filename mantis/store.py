"""Durable metadata store for clusters and jobs: the file store (the default).

Contract (shared by every store): a ``put_*`` returns only after the record is on
disk, so an actor may acknowledge a change once it returns; a record is replaced
whole and atomically (written to a temp file, fsynced, renamed over the old one, and
the directory fsynced), so a kill -9 at any moment leaves either the old or the new
record, never a torn one.  Ended jobs move to the archive; nothing is deleted but a
deleted cluster's record.

Layout under ``root``::

    clusters/<cluster>.json          one JobCluster record
    jobs/<cluster>/<jobId>.json      one active Job record (with its workers)
    archive/<cluster>/<jobId>.json   one ended Job record
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ujson

if TYPE_CHECKING:
    from mantis.zk_store import ZooKeeperStore


class StoreError(Exception):
    """A record could not be read or written; the message names the file."""


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


class FileStore:
    """Clusters and jobs as one JSON file each under a root directory."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        for sub in ("clusters", "jobs", "archive"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    def describe(self) -> dict:
        """Which store this is and where, for masterInfo."""
        return {"type": "file", "root": str(self.root)}

    # -- clusters ------------------------------------------------------------------

    def put_cluster(self, name: str, record: dict) -> None:
        write_atomically(self.root / "clusters" / f"{name}.json", record)

    def delete_cluster(self, name: str) -> None:
        path = self.root / "clusters" / f"{name}.json"
        if path.exists():
            path.unlink()
            _fsync_dir(path.parent)

    def clusters(self) -> list[dict]:
        """Every stored cluster record, ordered by name."""
        return [_read(p) for p in sorted((self.root / "clusters").glob("*.json"))]

    # -- jobs ----------------------------------------------------------------------

    def put_job(self, cluster: str, job_id: str, record: dict) -> None:
        write_atomically(self.root / "jobs" / cluster / f"{job_id}.json", record)

    def jobs(self, cluster: str) -> list[dict]:
        """The active job records of ``cluster``, in job-number order."""
        return [_read(p) for p in _by_job_number((self.root / "jobs" / cluster).glob("*.json"))]

    def archive_job(self, cluster: str, job_id: str, record: dict) -> None:
        """Write the ended job to the archive, then drop its active record."""
        write_atomically(self.root / "archive" / cluster / f"{job_id}.json", record)
        active = self.root / "jobs" / cluster / f"{job_id}.json"
        if active.exists():
            active.unlink()
            _fsync_dir(active.parent)

    def archived_jobs(self, cluster: str) -> list[dict]:
        """The ended job records of ``cluster``, in job-number order."""
        return [_read(p) for p in _by_job_number((self.root / "archive" / cluster).glob("*.json"))]

    def archived_job(self, cluster: str, job_id: str) -> dict | None:
        path = self.root / "archive" / cluster / f"{job_id}.json"
        return _read(path) if path.exists() else None


def _by_job_number(paths) -> list[Path]:
    def number(p: Path) -> int:
        tail = p.stem.rpartition("-")[2]
        return int(tail) if tail.isdigit() else 0
    return sorted(paths, key=number)


def open_store(config: dict) -> FileStore | ZooKeeperStore:
    """The store a master config names (``store.type``: file, the default, or zookeeper)."""
    kind = config.get("type", "file")
    if kind == "file":
        return FileStore(config.get("path", "./mantis-data"))
    if kind == "zookeeper":
        # Imported here: zk_store builds on this module, and the file store needs no kazoo.
        from mantis.zk_store import open_zookeeper_store
        return open_zookeeper_store(config)
    raise StoreError(f"unknown store type {kind!r} (known: file, zookeeper)")
