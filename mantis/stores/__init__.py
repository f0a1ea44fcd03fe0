"""The stores: where clusters and jobs are kept durably.

``file_store`` (the default: one JSON file per record, with a write-ahead log per
writer), ``zk_store`` (one znode per record, fenced by the leader's lease) and
``group_commit`` (one durable write for a whole turn of a shard).  ``open_store``
opens the one a config names.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mantis.stores.file_store import FileStore, StoreError
from mantis.stores.zk_store import ZooKeeperStore, open_zookeeper_store


def open_store(config: Mapping[str, Any], writer: str | None = None) -> FileStore | ZooKeeperStore:
    """The store a master config's ``[store]`` names (``type``: file, the default, or zookeeper).

    ``writer`` names the file store's write-ahead log (one per process that batches,
    e.g. a shard); the ZooKeeper store needs none and ignores it.
    """
    kind = config.get("type", "file")
    if kind == "file":
        return FileStore(config.get("path", "./mantis-data"), writer=writer)
    if kind == "zookeeper":
        return open_zookeeper_store(config)
    raise StoreError(f"unknown store type {kind!r} (known: file, zookeeper)")
