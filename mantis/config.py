"""Master and agent configuration: a TOML file over built-in defaults, then overrides.

``load(path, overrides)`` returns a plain dict of sections (master, store, workers,
scheduler, agent).  Overrides are ``section.key=value`` strings; the value is parsed
as TOML (so ``5``, ``2.5``, ``true``, ``"text"`` and ``[1, 2]`` keep their types) and
a bare word is taken as a string.  An unknown section or key is an error, so a typo
never silently does nothing.
"""
from __future__ import annotations

import copy
import tomllib
from pathlib import Path



class ConfigError(ValueError):
    """A config file or override that cannot be used; the message says which and why."""


def _builtin_defaults() -> dict:
    from mantis import default_config

    return copy.deepcopy(default_config.DEFAULTS)


def load(path: str | None = None, overrides: list[str] | None = None) -> dict:
    """The config: defaults, then the file at ``path`` (if any), then ``overrides``."""
    config = _builtin_defaults()
    if path:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config {path} is not valid TOML: {exc}") from None
        merge(config, data, source=path)
    for item in overrides or []:
        apply_override(config, item)
    return config


def merge(config: dict, data: dict, source: str = "config") -> None:
    """Copy ``data`` over ``config`` section by section; unknown names are errors."""
    for section, values in data.items():
        if section not in config or not isinstance(values, dict):
            raise ConfigError(f"{source}: unknown section [{section}]")
        for key, value in values.items():
            if key not in config[section]:
                raise ConfigError(f"{source}: unknown setting {section}.{key}")
            config[section][key] = value


def apply_override(config: dict, item: str) -> None:
    """Apply one ``section.key=value`` override."""
    name, sep, raw = item.partition("=")
    section, dot, key = name.strip().partition(".")
    if not sep or not dot:
        raise ConfigError(f"override {item!r} must look like section.key=value")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    merge(config, {section: {key: value}}, source="override")
