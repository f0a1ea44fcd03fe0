"""Master and agent configuration: one frozen, typed ``Config`` with every default.

The defaults are declared once, as the field defaults of the section dataclasses below
(``conf/master.toml`` repeats them with comments for operators, and a test checks that
the two agree).  ``load(path, overrides)`` starts from those defaults, applies the TOML
file at ``path`` (if any), then each ``section.key=value`` override, and checks every
value against its field's type.  An override's value is parsed as TOML (so ``5``,
``2.5``, ``true``, ``"text"`` and ``[1, 2]`` keep their types) and a bare word is taken
as a string.  An unknown section or key, or a value of the wrong type, is a
``ConfigError`` with a one-line message, so a typo never silently does nothing.

How it travels and is read:

- It is frozen (settings cannot be reassigned; ``replace`` makes a changed copy) and
  pickles, so actor messages carry it between processes as is.
- New code reads attributes: ``config.master.host``, ``config.workers.backoff_steps_s``.
- Every ``Config`` and section is also a read-only mapping (``config["master"]["host"]``,
  ``config["store"].get("type")``, ``.items()``), for code that takes plain dicts of
  sections (``mantis.stores.file_store.open_store``, the TOML writer of ``local_processes``).
- ``to_dict()`` is the plain JSON view: a dict of sections, lists for tuples, as
  ``GET /api/v1/masterConfigs`` answers.
"""
from __future__ import annotations

import dataclasses
import tomllib
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message says which and why."""


class Section(Mapping):
    """Base of a config section: a frozen dataclass that also reads as a mapping.

    ``section["key"]``, ``section.get("key")``, ``section.items()`` and ``key in section``
    see the dataclass fields; there is no way to set one (the dataclass is frozen).
    """

    def __getitem__(self, key: str) -> Any:
        if key not in _field_names(type(self)):
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(_field_names(type(self)))

    def __len__(self) -> int:
        return len(_field_names(type(self)))

    def to_dict(self) -> dict:
        """This section as plain JSON data (tuples become lists, tables plain dicts)."""
        return {name: _plain(getattr(self, name)) for name in self}


@dataclass(frozen=True)
class MasterConfig(Section):
    """``[master]``: where the master serves, its actor system, shards, entry point checks."""

    host: str = "127.0.0.1"
    api_port: int = 8100
    actor_system_base: str = "multiprocTCPBase"
    admin_port: int = 19500
    local_agent: bool = True
    shards: int = 4
    commit_delay_s: float = 0.005
    entry_point_check_timeout_s: float = 10.0
    entry_point_cache_s: float = 60.0
    sla_tick_s: float = 5.0


@dataclass(frozen=True)
class StoreConfig(Section):
    """``[store]``: the file store's directory or the ZooKeeper store's ensemble and root.

    ``lease_node``/``lease_version`` are set by an elected master for its own actors
    (``webapi.server.lease_config``) so that their writes are fenced; leave them empty.
    """

    type: str = "file"
    path: str = "./mantis-data"
    hosts: str = "127.0.0.1:2181"
    root: str = "/mantis"
    timeout_s: float = 10.0
    lease_node: str = ""
    lease_version: int = 0


@dataclass(frozen=True)
class LeaderElectionConfig(Section):
    """``[leader_election]``: the ZooKeeper election (``hosts = ""``: one master, none)."""

    hosts: str = ""
    path: str = "/mantis/leader"
    session_timeout_s: float = 4.0


@dataclass(frozen=True)
class WorkersConfig(Section):
    """``[workers]``: heartbeats, timeouts and the replacement policy of workers."""

    heartbeat_interval_s: float = 1.0
    heartbeat_timeout_s: float = 10.0
    startup_timeout_s: float = 60.0
    check_interval_s: float = 1.0
    backoff_steps_s: tuple[float, ...] = (0, 5, 10, 30, 60, 120, 600)
    backoff_reset_s: float = 300.0
    max_resubmits_per_hour: int = 100
    terminate_timeout_s: float = 10.0


@dataclass(frozen=True)
class SchedulerConfig(Section):
    """``[scheduler]``: agent loss, orphan workers, launch confirmation, batching."""

    agent_timeout_s: float = 5.0
    orphan_grace_s: float = 15.0
    launch_confirm_s: float = 5.0
    batch_window_s: float = 0.05
    tick_s: float = 1.0
    resource_manager: str = "agents"


@dataclass(frozen=True)
class AgentConfig(Section):
    """``[agent]``: an agent's identity, admin port and offered resources.

    ``cpus``/``mem_mb`` of 0 mean the machine's own.  ``attributes`` is a plain dict
    (a dict pickles and a read-only proxy does not); treat it as read-only.
    """

    id: str = "local"
    hostname: str = "127.0.0.1"
    admin_port: int = 19600
    cpus: float = 0
    mem_mb: float = 0
    disk_mb: float = 10240
    network_mbps: float = 1000
    ports: str = "31000-31999"
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AnnounceConfig(Section):
    """``[announce]``: where workers announce themselves as serverset members in
    ZooKeeper (``hosts = ""``: the election's ensemble; none without one)."""

    enabled: bool = True
    hosts: str = ""
    root: str = "/mantis"
    session_timeout_s: float = 10.0


@dataclass(frozen=True)
class AccessConfig(Section):
    """``[access]``: API tokens and roles, which addresses count as loopback, allowed entry points.

    ``tokens`` maps a secret token to its role (``read``, ``operate`` or ``admin``);
    ``tokens_file`` names a file of ``ROLE TOKEN`` lines with more.  ``loopback_hosts``
    (comma-separated) are the API addresses where no token is needed when none is
    configured; bound anywhere else, the master refuses to start without a token.
    ``allowed_packages`` (comma-separated) are the packages job entry points may come
    from besides the shipped ``mantis.examples``.  See ``webapi.access``.
    """

    tokens: dict[str, str] = field(default_factory=dict)
    tokens_file: str = ""
    loopback_hosts: str = "127.0.0.1,::1,localhost"
    allowed_packages: str = ""


@dataclass(frozen=True)
class MesosConfig(Section):
    """``[mesos]``: the Mesos master the scheduler subscribes to as a framework, used
    when ``scheduler.resource_manager = "mesos"`` (see ``scheduler/mesos_manager.py``).

    ``master`` is ``http://host:5050`` or ``zk://host:2181/mesos``; ``offer_hold_s`` is
    how long an unused offer is kept before it is declined with a ``refuse_s`` filter.
    """

    master: str = "http://127.0.0.1:5050"
    framework_name: str = "mantis"
    role: str = "*"
    principal: str = ""
    user: str = ""
    failover_timeout_s: float = 604800.0
    offer_hold_s: float = 5.0
    refuse_s: float = 30.0
    worker_command: str = ""


@dataclass(frozen=True)
class Config(Section):
    """The whole master/agent config: one frozen section dataclass per TOML table."""

    master: MasterConfig = field(default_factory=MasterConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    leader_election: LeaderElectionConfig = field(default_factory=LeaderElectionConfig)
    workers: WorkersConfig = field(default_factory=WorkersConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)
    announce: AnnounceConfig = field(default_factory=AnnounceConfig)
    access: AccessConfig = field(default_factory=AccessConfig)
    mesos: MesosConfig = field(default_factory=MesosConfig)

    def replace(self, section: str, **values: Any) -> Config:
        """A copy with ``values`` set in ``section`` (checked like a file's values)."""
        current = getattr(self, section)
        checked = {key: _checked(type(current), section, key, value, "replace") for key, value in values.items()}
        return dataclasses.replace(self, **{section: dataclasses.replace(current, **checked)})


def load(path: str | None = None, overrides: list[str] | None = None) -> Config:
    """The config: defaults, then the file at ``path`` (if any), then ``overrides``."""
    values: dict[str, dict] = {}
    if path:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config {path} is not valid TOML: {exc}") from None
        merge(values, data, source=path)
    for item in overrides or []:
        apply_override(values, item)
    return Config(**{section: _section_types()[section](**given) for section, given in values.items()})


def merge(values: dict, data: dict, source: str = "config") -> None:
    """Check ``data`` (sections of settings) and copy it over ``values``; unknown names,
    and values of the wrong type, are errors naming ``source``."""
    sections = _section_types()
    for section, settings in data.items():
        if section not in sections or not isinstance(settings, dict):
            raise ConfigError(f"{source}: unknown section [{section}]")
        for key, value in settings.items():
            values.setdefault(section, {})[key] = _checked(sections[section], section, key, value, source)


def apply_override(values: dict, item: str) -> None:
    """Apply one ``section.key=value`` override to ``values`` (sections of settings)."""
    name, sep, raw = item.partition("=")
    section, dot, key = name.strip().partition(".")
    if not sep or not dot:
        raise ConfigError(f"override {item!r} must look like section.key=value")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()  # a bare word: taken as a string, as a shell user means it
    merge(values, {section: {key: value}}, source="override")


# -- checking values against the dataclasses ---------------------------------------------

def _section_types() -> dict[str, type]:
    """Section name -> its dataclass, from Config's own fields (declared once)."""
    hints = typing.get_type_hints(Config)
    return {f.name: hints[f.name] for f in dataclasses.fields(Config)}


def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


# Settings whose value is one of a few words.
_CHOICES = {("scheduler", "resource_manager"): ("agents", "mesos")}


def _checked(cls: type, section: str, key: str, value: Any, source: str) -> Any:
    """``value`` as the type of ``cls.key``, or a ConfigError naming the setting."""
    hints = typing.get_type_hints(cls)
    if key not in hints or key not in _field_names(cls):
        raise ConfigError(f"{source}: unknown setting {section}.{key}")
    kind = hints[key]
    ok, converted = _convert(kind, value)
    if not ok:
        raise ConfigError(f"{source}: setting {section}.{key} must be {_describe(kind)}, not {value!r}")
    choices = _CHOICES.get((section, key))
    if choices and converted not in choices:
        raise ConfigError(f"{source}: setting {section}.{key} must be one of {', '.join(choices)}, not {value!r}")
    return converted


def _is_number(value: Any) -> bool:
    # TOML booleans are Python bools, which are ints: never a number setting.
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _convert(kind: Any, value: Any) -> tuple[bool, Any]:
    """(True, value as ``kind``) or (False, None); only the types the sections use."""
    if kind is bool:
        return isinstance(value, bool), value
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if kind is float:
        # An int is a fine float (``timeout_s = 5``); kept as written, as TOML gave it.
        return _is_number(value), value
    if kind is str:
        return isinstance(value, str), value
    origin = typing.get_origin(kind)
    if origin is tuple:  # tuple[float, ...]: a TOML array of numbers
        ok = isinstance(value, (list, tuple)) and all(_is_number(v) for v in value)
        return ok, tuple(value) if ok else None
    if origin is dict:  # dict[str, str]: a TOML table of strings
        ok = isinstance(value, Mapping) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
        return ok, dict(value) if ok else None
    raise TypeError(f"config field type {kind!r} is not supported")  # a new field's type: add it above


def _describe(kind: Any) -> str:
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    if kind in names:
        return names[kind]
    return "a list of numbers" if typing.get_origin(kind) is tuple else "a table of strings"


def _plain(value: Any) -> Any:
    if isinstance(value, Section):
        return value.to_dict()
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, dict):
        return dict(value)
    return value
