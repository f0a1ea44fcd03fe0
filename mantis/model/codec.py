"""JSON in and out for every definition and message that crosses a process boundary.

One place decides how our dataclasses look on the wire.  Decoding is strict: every
field is type-checked, unknown fields are rejected, and the error names the path of
the offending field (``schedulingInfo.stages.1.numberOfInstances``) so an API caller
can fix the request without reading our source.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ujson


class ValidationError(ValueError):
    """Raised when input does not match a definition; the message names the field."""


def dumps(obj: Any) -> str:
    """Encode plain JSON-able data (dicts, lists, scalars) as compact JSON text."""
    return ujson.dumps(obj, ensure_ascii=False, escape_forward_slashes=False)


def loads(text: str | bytes) -> Any:
    """Decode JSON text; a syntax error becomes a ValidationError with one line of reason."""
    try:
        return ujson.loads(text)
    except (ValueError, TypeError) as exc:
        raise ValidationError(f"body is not valid JSON: {exc}") from None


@dataclass(frozen=True)
class Field:
    """One JSON field of a definition: its wire name, attribute, parser and default.

    ``parse(value, path)`` turns the JSON value into the attribute value or raises
    ValidationError.  ``default`` is a zero-argument callable so mutable defaults are
    never shared; ``required`` fields have no default.
    """

    wire: str
    attr: str
    parse: Callable[[Any, str], Any]
    required: bool = False
    default: Callable[[], Any] = lambda: None
    encode: Callable[[Any], Any] | None = None


def decode_object(cls: type, fields: tuple[Field, ...], data: Any, path: str = "",
                  ignored: frozenset[str] = frozenset()) -> Any:
    """Build ``cls`` from a JSON object using ``fields``; unknown keys are an error.

    ``ignored`` names fields the wire format defines (Mantis' classes do) that we accept
    and drop, so a Mantis client's body is taken while a typo is still refused by name.
    """
    where = path or "body"
    if not isinstance(data, dict):
        raise ValidationError(f"{where} must be a JSON object")
    known = {f.wire for f in fields} | ignored
    unknown = sorted(k for k in data if k not in known)
    if unknown:
        raise ValidationError(f"{where} has unknown field(s): {', '.join(unknown)}")
    kwargs = {}
    for f in fields:
        sub = f"{path}.{f.wire}" if path else f.wire
        if f.wire in data and data[f.wire] is not None:
            kwargs[f.attr] = f.parse(data[f.wire], sub)
        elif f.required:
            raise ValidationError(f"{sub} is required")
        else:
            kwargs[f.attr] = f.default()
    return cls(**kwargs)


def encode_object(obj: Any, fields: tuple[Field, ...]) -> dict:
    """The JSON object for ``obj``: every field under its wire name."""
    out = {}
    for f in fields:
        value = getattr(obj, f.attr)
        out[f.wire] = f.encode(value) if f.encode else to_json(value)
    return out


def to_json(value: Any) -> Any:
    """Encode a value: objects with ``to_json`` use it, containers recurse, scalars pass."""
    if hasattr(value, "to_json"):
        return value.to_json()
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):  # an instance, not a class
        return {k: to_json(v) for k, v in dataclasses.asdict(value).items()}
    return value


# -- scalar parsers: each takes (value, path) and returns the value or raises --------

def string(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"{path} must be a string")
    return value


def nonempty_string(value: Any, path: str) -> str:
    value = string(value, path)
    if not value.strip():
        raise ValidationError(f"{path} must not be empty")
    return value


def boolean(value: Any, path: str) -> bool:
    # Mantis' JSON binding (Jackson) takes "true" and "false" for a boolean too.
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if not isinstance(value, bool):
        raise ValidationError(f"{path} must be true or false")
    return value


def _from_numeric_string(value: Any) -> Any:
    """A number sent as a string (``"1"``, ``"2.5"``) as that number, as Mantis' JSON
    binding (Jackson's scalar coercion) takes it; anything else unchanged."""
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                return value
            return number if math.isfinite(number) else value
    return value


def integer(minimum: int | None = None, maximum: int | None = None) -> Callable[[Any, str], int]:
    """A parser for whole numbers within [minimum, maximum]."""

    def parse(value: Any, path: str) -> int:
        value = _from_numeric_string(value)
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise ValidationError(f"{path} must be a whole number")
        if minimum is not None and value < minimum:
            raise ValidationError(f"{path} must be at least {minimum}")
        if maximum is not None and value > maximum:
            raise ValidationError(f"{path} must be at most {maximum}")
        return value

    return parse


def number(minimum: float | None = None, exclusive_min: bool = False) -> Callable[[Any, str], float]:
    """A parser for numbers at least ``minimum`` (strictly above it if exclusive)."""

    def parse(value: Any, path: str) -> float:
        value = _from_numeric_string(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValidationError(f"{path} must be a number")
        if minimum is not None and (value <= minimum if exclusive_min else value < minimum):
            word = "greater than" if exclusive_min else "at least"
            raise ValidationError(f"{path} must be {word} {minimum}")
        return float(value)

    return parse


def one_of(*choices: str) -> Callable[[Any, str], str]:
    """A parser accepting exactly one of ``choices``."""

    def parse(value: Any, path: str) -> str:
        if value not in choices:
            raise ValidationError(f"{path} must be one of {', '.join(choices)}")
        return value

    return parse


def list_of(item: Callable[[Any, str], Any]) -> Callable[[Any, str], list]:
    """A parser for a JSON array whose items each pass ``item``."""

    def parse(value: Any, path: str) -> list:
        if not isinstance(value, list):
            raise ValidationError(f"{path} must be a list")
        return [item(v, f"{path}.{i}") for i, v in enumerate(value)]

    return parse


def json_object(value: Any, path: str) -> dict:
    if not isinstance(value, dict):
        raise ValidationError(f"{path} must be a JSON object")
    return value


def string_map(value: Any, path: str) -> dict:
    value = json_object(value, path)
    for k, v in value.items():
        if not isinstance(v, str):
            raise ValidationError(f"{path}.{k} must be a string")
    return dict(value)
