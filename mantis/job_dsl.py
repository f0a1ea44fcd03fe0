"""The job DSL: how a user describes a streaming job (first form: one processing stage).

A job is a Source, one Stage of reactivex operators and an optional Sink::

    job = Job(
        name="clicks",
        source=lambda context: reactivex.from_iterable(range(10)),
        stage=lambda events, context: events.pipe(ops.map(lambda n: {"n": n})),
        parameters=[ParameterDefinition("rate", "int", default=50, validator=at_least(0))],
    )

The platform finds a job by its entry point ``"package.module:attribute"`` (``load_job``),
resolves the parameters of a submission against the job's declarations
(``resolve_parameters``) and hands the result to the source and stage in a ``Context``.
Events are JSON-able values (dicts or scalars): between processes they travel as JSON.
"""
from __future__ import annotations

import importlib
import math
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Union

import reactivex

PARAMETER_TYPES = ("string", "int", "float", "bool")

_TRUE_WORDS = frozenset({"true", "yes", "on", "1"})
_FALSE_WORDS = frozenset({"false", "no", "off", "0"})

Validator = Union[Callable[[Any], bool], tuple[Callable[[Any], bool], str]]


class JobLoadError(ValueError):
    """An entry point does not lead to a Job; the message says why in one line."""


class ParameterError(ValueError):
    """Supplied parameters do not fit the job's declarations; the message names the parameter."""


@dataclass
class Context:
    """What a job's source and stage see of the worker they run in.

    ``parameters`` is the resolved dict (every declared name present).  ``stopped`` is set
    when the worker stops the job: a source that loops or blocks must check it (or wait
    on it) and return promptly once it is set.
    """

    job_id: str
    worker_index: int = 0
    worker_number: int = 0
    stage_number: int = 1
    parameters: dict[str, Any] = field(default_factory=dict)
    stopped: threading.Event = field(default_factory=threading.Event)


class Source(Protocol):
    """Makes the job's input: ``source(context)`` returns an Observable of events.

    It is called once per worker, on the worker's pipeline thread.  A source that
    generates events should emit them from a thread of its own and end when
    ``context.stopped`` is set or its subscription is disposed, as
    ``mantis.runtime.sources.paced_source`` does: a loop inside ``subscribe`` would hold
    the pipeline thread and starve operators that schedule on the current thread.
    """

    def __call__(self, context: Context) -> reactivex.Observable: ...


class Stage(Protocol):
    """The processing stage: ``stage(events, context)`` returns the output Observable."""

    def __call__(self, events: reactivex.Observable, context: Context) -> reactivex.Observable: ...


class Sink(Protocol):
    """Where output batches go instead of the worker's subscribers: ``sink(batch, context)``.

    Called on the pipeline thread with lists of events, in order; an exception fails the job.
    """

    def __call__(self, batch: list, context: Context) -> None: ...


def at_least(minimum: float) -> tuple[Callable[[Any], bool], str]:
    """A parameter validator accepting values >= ``minimum``."""
    return (lambda value: value >= minimum, f"must be at least {minimum}")


@dataclass
class ParameterDefinition:
    """A parameter a job declares: its name, type, default, and an optional validator.

    ``type`` is one of "string", "int", "float", "bool".  ``validator`` is a callable
    ``value -> bool`` or a ``(callable, message)`` pair; it sees the converted value.
    A required parameter has no default.  Raises ValueError for a malformed declaration
    (a job author's mistake, reported when the job is defined).
    """

    name: str
    type: str
    default: Any = None
    required: bool = False
    description: str = ""
    validator: Validator | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError("a parameter needs a non-empty name")
        if self.type not in PARAMETER_TYPES:
            raise ValueError(f"parameter '{self.name}' has type {self.type!r}; "
                             f"use one of {', '.join(PARAMETER_TYPES)}")
        if self.required and self.default is not None:
            raise ValueError(f"parameter '{self.name}' is required, so it cannot have a default")
        v = self.validator
        if v is not None and not (callable(v) or (isinstance(v, tuple) and len(v) == 2
                                                  and callable(v[0]) and isinstance(v[1], str))):
            raise ValueError(f"parameter '{self.name}': validator must be a callable "
                             "or a (callable, message) pair")
        if self.default is not None:
            try:
                self.default = convert_parameter(self, self.default)
            except ParameterError as exc:
                raise ValueError(f"default of {exc}") from None


@dataclass
class Job:
    """A streaming job: source -> stage -> sink, with declared parameters.

    ``sink`` None means the job's output is served to its subscribers.  Raises ValueError
    when a part is missing or not callable, or two parameters share a name.
    """

    name: str
    source: Source
    stage: Stage
    sink: Sink | None = None
    parameters: list[ParameterDefinition] = field(default_factory=list)
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError("a job needs a non-empty name")
        for part in ("source", "stage"):
            if not callable(getattr(self, part)):
                raise ValueError(f"job '{self.name}': {part} must be callable")
        if self.sink is not None and not callable(self.sink):
            raise ValueError(f"job '{self.name}': sink must be callable or None")
        self.parameters = list(self.parameters)
        seen: set[str] = set()
        for p in self.parameters:
            if not isinstance(p, ParameterDefinition):
                raise ValueError(f"job '{self.name}': parameters must be ParameterDefinition, "
                                 f"got {type(p).__name__}")
            if p.name in seen:
                raise ValueError(f"job '{self.name}' declares parameter '{p.name}' twice")
            seen.add(p.name)


def load_job(entry_point: str) -> Job:
    """The Job named by ``"package.module:attribute"`` (attribute may be dotted).

    The attribute is a Job or a zero-argument callable returning one.  Raises
    JobLoadError with a one-line reason: bad format, module not found, module failed to
    import, attribute missing, factory failed, or not a Job.
    """
    if not isinstance(entry_point, str) or entry_point.count(":") != 1:
        raise JobLoadError(f"entry point {entry_point!r} must look like 'package.module:attribute'")
    module_name, attribute = entry_point.split(":")
    if not module_name or not attribute:
        raise JobLoadError(f"entry point {entry_point!r} must look like 'package.module:attribute'")
    try:
        target: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # Only the module itself (or a parent package) missing is "not found"; a missing
        # import inside the user's module is that module failing to import.
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise JobLoadError(f"module '{module_name}' not found (entry point '{entry_point}')") from None
        raise JobLoadError(f"module '{module_name}' failed to import: {error_line(exc)}") from None
    except Exception as exc:  # user code at import time may raise anything
        raise JobLoadError(f"module '{module_name}' failed to import: {error_line(exc)}") from None
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise JobLoadError(f"module '{module_name}' has no attribute '{attribute}'")
        target = getattr(target, part)
    if not isinstance(target, Job) and callable(target):
        try:
            target = target()
        except Exception as exc:
            raise JobLoadError(f"calling '{entry_point}' failed: {error_line(exc)}") from None
    if not isinstance(target, Job):
        raise JobLoadError(f"'{entry_point}' is a {type(target).__name__}, not a Job")
    return target


def resolve_parameters(job: Job, supplied: dict[str, str | int | float | bool]) -> dict[str, Any]:
    """Every declared parameter's value: the supplied one converted to its type, or the default.

    Strings are converted to the declared type ("42" -> 42, "yes" -> True); a declared
    parameter neither supplied nor defaulted is None.  Raises ParameterError for an
    unknown name, a missing required parameter, a value that does not convert, or one
    its validator rejects.
    """
    declared = {p.name: p for p in job.parameters}
    unknown = sorted(name for name in supplied if name not in declared)
    if unknown:
        known = ", ".join(declared) or "none"
        raise ParameterError(f"unknown parameter '{unknown[0]}' for job '{job.name}' (it declares: {known})")
    resolved: dict[str, Any] = {}
    for name, definition in declared.items():
        if name in supplied:
            value = convert_parameter(definition, supplied[name])
        elif definition.required:
            raise ParameterError(f"parameter '{name}' is required")
        else:
            value = definition.default
        if value is not None:
            _validate(definition, value)
        resolved[name] = value
    return resolved


def convert_parameter(definition: ParameterDefinition, value: Any) -> Any:
    """``value`` as the definition's type; ParameterError naming the parameter if it cannot be."""
    kind, name = definition.type, definition.name
    if kind == "string":
        if isinstance(value, str):
            return value
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, float)):
            return str(value)
        raise ParameterError(f"parameter '{name}' must be a string, got {value!r}")
    if kind == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise ParameterError(f"parameter '{name}' must be a whole number, got {value!r}")
    if kind == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                number = math.nan
        else:
            number = math.nan
        if math.isfinite(number):
            return number
        raise ParameterError(f"parameter '{name}' must be a finite number, got {value!r}")
    # bool
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE_WORDS | _FALSE_WORDS:
        return value.strip().lower() in _TRUE_WORDS
    raise ParameterError(f"parameter '{name}' must be true or false, got {value!r}")


def _validate(definition: ParameterDefinition, value: Any) -> None:
    if definition.validator is None:
        return
    if isinstance(definition.validator, tuple):
        check, message = definition.validator
    else:
        check, message = definition.validator, "rejected by its validator"
    try:
        ok = check(value)
    except Exception as exc:  # a validator is user code
        raise ParameterError(
            f"parameter '{definition.name}' = {value!r} is invalid: {error_line(exc)}") from None
    if not ok:
        raise ParameterError(f"parameter '{definition.name}' = {value!r} is invalid: {message}")


def error_line(exc: BaseException) -> str:
    """How the platform reports an exception from user code: ``Type: message``, one short line."""
    text = " ".join(str(exc).split())
    text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."
