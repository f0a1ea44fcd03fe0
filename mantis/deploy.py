"""Declarative deploys: keep job clusters in files and make the master match them.

``mantis deploy diff PATH`` and ``mantis deploy apply PATH [--dry-run] [--prune]``.
PATH is a file or a folder of ``.yaml``/``.yml``/``.json`` files.  A file holds one or
more documents (YAML ``---``), each a cluster definition, a list of them, or
``{"cluster": {...}, "job": {...}}`` where ``job`` (a job submission, ``{}`` for the
cluster's defaults) says the cluster should be running a job.

Definitions are compared in our own model (``JobClusterDefinition``), never as
response JSON: what the master answers is read back into the model
(``definition_from_api``, which takes our flat shape and Mantis' ``jars``/``sla`` one),
so both sides have every default filled in and a field differs only when its value
does.  ``user`` (who last changed it) is not part of what a file declares.

``plan`` is pure: desired definitions + the master's current ones -> a list of
``Change``; ``apply_changes`` carries them out through a ``client(method, path, body)``
(the CLI's HTTP client) in a safe order: creates and updates, then submits, then prunes
(a pruned cluster's jobs are killed first, as the master deletes no cluster with an
active job).  Applying the same files twice gives an empty plan the second time.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import yaml

from mantis.model.codec import ValidationError
from mantis.model.definitions import JobClusterDefinition, JobDefinition
from mantis.tooling.api_answers import job_id_of, listed

SUFFIXES = (".yaml", ".yml", ".json")
NOT_DECLARED = ("user",)  # who made a change, not what the cluster is


class DeployError(Exception):
    """A file that cannot be read or a definition that does not validate; one line."""


@dataclass
class Desired:
    """One cluster as the files declare it, with the job it should run (None: leave jobs alone)."""

    definition: JobClusterDefinition
    job: JobDefinition | None
    source: str


@dataclass
class Current:
    """One cluster as the master has it, with its active job ids."""

    definition: JobClusterDefinition
    active_jobs: list[str] = field(default_factory=list)


@dataclass
class Change:
    """One step of a plan: ``create``, ``update``, ``submit`` or ``delete`` a cluster.

    ``fields`` lists ``(dotted path, current value, desired value)`` for an update."""

    action: str
    name: str
    fields: list[tuple[str, Any, Any]] = field(default_factory=list)
    desired: Desired | None = None
    active_jobs: list[str] = field(default_factory=list)


# -- reading files ---------------------------------------------------------------------------

def load(path: str | Path) -> list[Desired]:
    """Every cluster declared in ``path`` (a file, or a folder's files in name order)."""
    root = Path(path)
    if root.is_dir():
        files = sorted(p for p in root.iterdir() if p.suffix in SUFFIXES and p.is_file())
    elif root.is_file():
        files = [root]
    else:
        raise DeployError(f"{path}: no such file or folder")
    desired: list[Desired] = []
    seen: dict[str, str] = {}
    for file in files:
        for item in _documents(file):
            entry = _desired(item, str(file))
            name = entry.definition.name
            if name in seen:
                raise DeployError(f"{file}: cluster {name!r} is already declared in {seen[name]}")
            seen[name] = str(file)
            desired.append(entry)
    return desired


def _documents(file: Path) -> Iterable[Any]:
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise DeployError(f"cannot read {file}: {exc.strerror}") from None
    try:
        docs = [json.loads(text)] if file.suffix == ".json" else list(yaml.safe_load_all(text))
    except (ValueError, yaml.YAMLError) as exc:
        raise DeployError(f"{file} is not valid {'JSON' if file.suffix == '.json' else 'YAML'}: "
                          f"{str(exc).splitlines()[0]}") from None
    for doc in docs:
        if doc is None:
            continue
        yield from (doc if isinstance(doc, list) else [doc])


def _desired(item: Any, source: str) -> Desired:
    if not isinstance(item, dict):
        raise DeployError(f"{source}: each entry must be a cluster definition (an object)")
    wrapped = "cluster" in item
    if wrapped and set(item) - {"cluster", "job"}:
        raise DeployError(f"{source}: unknown key(s) {', '.join(sorted(set(item) - {'cluster', 'job'}))} "
                          "beside 'cluster' and 'job'")
    try:
        definition = JobClusterDefinition.from_json(item["cluster"] if wrapped else item)
        job_data = item.get("job") if wrapped else None
        job = JobDefinition.from_json(job_data) if job_data is not None else None
    except ValidationError as exc:
        raise DeployError(f"{source}: {exc}") from None
    return Desired(definition, job, source)


# -- reading the master ---------------------------------------------------------------------

def definition_from_api(body: dict) -> JobClusterDefinition:
    """A cluster as the master answers it, read back into our model (flat, or Mantis'
    shape with ``jars`` and ``sla``); fields the model does not hold are left out."""
    flat = dict(body)
    jars = flat.get("jars")
    if isinstance(jars, list) and jars:
        latest = jars[-1]
        flat.setdefault("url", latest.get("url"))
        flat.setdefault("version", latest.get("version"))
        if latest.get("schedulingInfo") is not None:
            flat.setdefault("schedulingInfo", latest["schedulingInfo"])
    sla = flat.get("sla")
    if isinstance(sla, dict):
        flat.setdefault("slaMin", sla.get("min", 0))
        flat.setdefault("slaMax", sla.get("max", 0))
        flat.setdefault("cronSpec", sla.get("cronSpec"))
        flat.setdefault("cronPolicy", sla.get("cronPolicy") or "KEEP_EXISTING")
    if isinstance(flat.get("owner"), dict):  # Mantis' view lists every owner field, unset ones as null
        flat["owner"] = {k: v for k, v in flat["owner"].items() if v is not None}
    known = JobClusterDefinition.from_json({"name": "x", "url": "m:a"}).to_json().keys()
    return JobClusterDefinition.from_json({k: v for k, v in flat.items() if k in known and v is not None})


def read_master(client: Callable) -> dict[str, Current]:
    """Every cluster on the master with its active jobs."""
    current: dict[str, Current] = {}
    for summary in listed(client("GET", "/api/v1/jobClusters")):
        name = str(summary["name"])
        body = client("GET", f"/api/v1/jobClusters/{quote(name)}")
        # The cluster actor's own answer: it knows a job the moment it accepts it, where
        # the job listings (summaries reaching the manager a turn later) may lag.
        active = [str(j) for j in body["activeJobs"]]
        current[name] = Current(definition_from_api(body), sorted(active))
    return current


# -- planning ---------------------------------------------------------------------------------

NAMED_LISTS = ("parameters", "labels")  # lists of {name, value}: compared name by name


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted paths to leaf values; ``parameters`` and ``labels`` are keyed by name."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key in sorted(value, key=str):
            out.update(flatten(value[key], f"{prefix}.{key}" if prefix else str(key)))
        return out or {prefix: {}}
    if prefix.rpartition(".")[2] in NAMED_LISTS and isinstance(value, list) and all(
            isinstance(v, dict) and set(v) == {"name", "value"} for v in value):
        return {f"{prefix}.{v['name']}": v["value"] for v in value}
    return {prefix: value}


_ABSENT = object()


def field_changes(current: JobClusterDefinition, desired: JobClusterDefinition) -> list[tuple[str, Any, Any]]:
    """``(path, current, desired)`` for every declared field whose value differs."""
    now, want = flatten(current.to_json()), flatten(desired.to_json())
    changes = []
    for path in sorted(set(now) | set(want)):
        if path.split(".")[0] in NOT_DECLARED:
            continue
        a, b = now.get(path, _ABSENT), want.get(path, _ABSENT)
        if a != b:
            changes.append((path, None if a is _ABSENT else a, None if b is _ABSENT else b))
    return changes


def plan(desired: list[Desired], current: dict[str, Current], prune: bool = False) -> list[Change]:
    """What makes the master match ``desired``: creates and updates, submits of jobs that
    should run and do not, and (``prune``) deletes of clusters no file names."""
    changes = []
    for d in desired:
        name = d.definition.name
        have = current.get(name)
        if have is None:
            changes.append(Change("create", name, desired=d))
        else:
            fields = field_changes(have.definition, d.definition)
            if fields:
                changes.append(Change("update", name, fields, desired=d))
        if d.job is not None and (have is None or not have.active_jobs):
            changes.append(Change("submit", name, desired=d))
    if prune:
        named = {d.definition.name for d in desired}
        for name in sorted(set(current) - named):
            changes.append(Change("delete", name, active_jobs=current[name].active_jobs))
    return changes


def render(changes: list[Change]) -> list[str]:
    """The plan as lines for a terminal; one line saying so when nothing changes."""
    if not changes:
        return ["no changes: the master matches the files"]
    lines = []
    for c in changes:
        if c.action == "create":
            lines.append(f"+ cluster {c.name} (from {c.desired.source if c.desired else '?'})")
        elif c.action == "update":
            lines.append(f"~ cluster {c.name}")
            lines += [f"    {path}: {_show(a)} -> {_show(b)}" for path, a, b in c.fields]
        elif c.action == "submit":
            lines.append(f"+ job of {c.name} (none running)")
        elif c.action == "delete":
            killed = f", killing {', '.join(c.active_jobs)}" if c.active_jobs else ""
            lines.append(f"- cluster {c.name} (no file names it{killed})")
    return lines


def _show(value: Any) -> str:
    return "(none)" if value is None else json.dumps(value, sort_keys=True)


# -- applying ---------------------------------------------------------------------------------

ORDER = {"create": 0, "update": 0, "submit": 1, "delete": 2}


def apply_changes(client: Callable, changes: list[Change], user: str, delete_wait_s: float = 30.0,
                  echo: Callable[[str], None] = print) -> None:
    """Carry ``changes`` out through ``client`` (raises what the client raises on a refusal)."""
    for c in sorted(changes, key=lambda c: ORDER[c.action]):
        path = f"/api/v1/jobClusters/{quote(c.name)}"
        if c.action == "create" and c.desired is not None:
            client("POST", "/api/v1/jobClusters", dict(c.desired.definition.to_json(), user=user))
            echo(f"created cluster {c.name}")
        elif c.action == "update" and c.desired is not None:
            client("PUT", f"{path}?{urlencode({'user': user})}", dict(c.desired.definition.to_json(), user=user))
            echo(f"updated cluster {c.name} ({len(c.fields)} field(s))")
        elif c.action == "submit" and c.desired is not None and c.desired.job is not None:
            body = dict(c.desired.job.to_json(), user=user)
            answer = client("POST", f"{path}/jobs", body) or {}
            echo(f"submitted {job_id_of(answer) if answer else 'a job'} to {c.name}")
        elif c.action == "delete":
            for job_id in c.active_jobs:
                client("DELETE", f"/api/v1/jobs/{quote(job_id)}?"
                                 f"{urlencode({'user': user, 'reason': 'pruned by mantis deploy'})}")
            _delete_when_idle(client, path, user, delete_wait_s)
            echo(f"deleted cluster {c.name}")


def _delete_when_idle(client: Callable, path: str, user: str, wait_s: float) -> None:
    """Delete the cluster, retrying while its killed jobs are still ending (409)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            client("DELETE", f"{path}?{urlencode({'user': user})}")
            return
        except Exception as exc:  # the CLI's error carries the status first: "409: ..."
            if not str(exc).startswith("409") or time.monotonic() > deadline:
                raise
            time.sleep(0.5)
