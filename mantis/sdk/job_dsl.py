"""The job DSL: how a user describes a streaming job.

A job is a Source, one or more processing stages and an optional Sink.  The short form
has one stage of per-event reactivex operators::

    job = Job(
        name="clicks",
        source=lambda context: reactivex.from_iterable(range(10)),
        stage=lambda events, context: events.pipe(ops.map(lambda n: {"n": n})),
        parameters=[ParameterDefinition("rate", "int", default=50, validator=at_least(0))],
    )

The long form lists stages in order; each is a ``ProcessingStage``, scalar (its output
goes round-robin to the next stage's workers) or keyed (``key=``: every event with the
same key reaches the same worker of the next stage)::

    job = Job(
        name="counts",
        source=user_events,
        stages=[
            ProcessingStage(operators=keep_clicks, key="user"),          # stage 1
            ProcessingStage(batch_operators=count_per_user, on_slow_consumer="drop"),  # stage 2
        ],
    )

A worker of stage 1 runs the source and stage 1's operators; a worker of stage n > 1
reads stage n-1's output over the network and runs stage n's operators; the last
stage's output is the job's output (``Job.worker_plan``).  A stage's operators are
either per event (``operators``: events Observable -> events Observable) or per batch
(``batch_operators``: Observable of lists -> Observable of lists), the cheap form for
heavy streams because events travel between workers in batches anyway.

The platform finds a job by its entry point ``"package.module:attribute"`` (``load_job``),
resolves the parameters of a submission against the job's declarations
(``resolve_parameters``) and hands the result to the source and stage in a ``Context``.
Events are JSON-able values (dicts or scalars): a job's output reaches subscribers as JSON,
and between a job's own workers they travel as plain-value pickles (``mantis.runtime.frames``).
"""
from __future__ import annotations

import dataclasses
import importlib
import math
import operator
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import reactivex

# How a stage with concurrency > 1 runs: in lanes.  stage_lanes imports nothing of the
# SDK, so this is no cycle; wrapping stages in the executor instead would drop this edge.
from mantis.model.checks import CheckDefinition
from mantis.runtime.stage_lanes import LANES_MARK, in_lanes
from mantis.sdk.metrics import MetricRegistry

# A health or readiness check a job declares (Marathon's fields; see mantis.model.checks):
# ``HealthCheck(protocol="TCP", interval_s=5, max_consecutive_failures=2)``.
HealthCheck = CheckDefinition

PARAMETER_TYPES = ("string", "int", "float", "bool")

_TRUE_WORDS = frozenset({"true", "yes", "on", "1"})
_FALSE_WORDS = frozenset({"false", "no", "off", "0"})

Validator = Callable[[Any], bool] | tuple[Callable[[Any], bool], str]


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
    # How many workers this worker's stage has (when it started): a stage n > 1 worker
    # tells its upstream this number, and a source may use it to split its input.
    workers_in_stage: int = 1
    # The ports the scheduler assigned this worker (the first serves its output); a job
    # may listen on the others, and a check's portIndex points into this list.
    ports: tuple[int, ...] = ()
    # The job's own counters and gauges (``ctx.metrics.counter("x").increment()``): served
    # with the worker's metrics, carried in heartbeats, read by UserDefined scaling rules.
    metrics: MetricRegistry = field(default_factory=MetricRegistry)


class Source(Protocol):
    """Makes the job's input: ``source(context)`` returns an Observable of events.

    It is called once per worker, on the worker's pipeline thread.  A source that
    generates events should emit them from a thread of its own and end when
    ``context.stopped`` is set or its subscription is disposed, as
    ``mantis.runtime.sources.paced_source`` does: a loop inside ``subscribe`` would hold
    the pipeline thread and starve operators that schedule on the current thread.
    """

    def __call__(self, context: Context, /) -> reactivex.Observable: ...


class Stage(Protocol):
    """Per-event stage operators: ``stage(events, context)`` returns the output Observable."""

    def __call__(self, events: reactivex.Observable, context: Context, /) -> reactivex.Observable: ...


class BatchStage(Protocol):
    """Per-batch stage operators: ``stage(batches, context)`` maps an Observable of event
    lists to an Observable of event lists (empty lists are allowed and skipped)."""

    def __call__(self, batches: reactivex.Observable, context: Context, /) -> reactivex.Observable: ...


@dataclass(frozen=True)
class BatchSource:
    """Marks a source whose Observable emits lists of events (batches), not single events.

    ``BatchSource(make)(context)`` is ``make(context)``.  A batch source costs one
    on_next per batch instead of one per event, which matters for fast generators;
    ``mantis.runtime.sources.paced_batches`` builds one.
    """

    make: Callable[[Context], reactivex.Observable]

    def __call__(self, context: Context) -> reactivex.Observable:
        return self.make(context)


class Sink(Protocol):
    """Where output batches go instead of the worker's subscribers: ``sink(batch, context)``.

    Called on the pipeline thread with lists of events, in order; an exception fails the job.
    """

    def __call__(self, batch: list, context: Context, /) -> None: ...


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


SLOW_CONSUMER_POLICIES = ("block", "drop")


@dataclass
class ProcessingStage:
    """One processing stage of a job: its operators, how its output is partitioned, its policy.

    Exactly one of ``operators`` (per event, a ``Stage``) or ``batch_operators`` (per
    batch, a ``BatchStage``) is given.  ``key`` makes the stage keyed: a callable
    ``event -> key`` or, as a shorthand, the name of a dict field; all events with one
    key reach the same worker of the next stage.  Keys must be hashable (str, int, ...)
    and are hashed by their ``str()`` form, so 1 and "1" are one key.  Without a key
    the stage is scalar and its output batches go round-robin to the next stage.
    ``on_slow_consumer`` says what happens when a next-stage worker cannot keep up:
    "block" (the stage waits, a bounded wait, which slows the source: backpressure) or
    "drop" (the batch is dropped for that worker and counted).  The last stage's output
    goes to subscribers, who never slow the job (a slow subscriber loses batches), or to
    the job's sink, which is called in line.  ``parameters`` are declared like the
    job's and share their namespace: a submission sets them all at once and every
    stage sees them all in ``context.parameters``.  ``concurrency`` runs the operators
    in that many lanes per worker, each on a thread of its own, for operators that wait
    (``mantis.runtime.stage_lanes``).  Raises ValueError for a malformed declaration.
    """

    operators: Stage | None = None
    batch_operators: BatchStage | None = None
    key: Callable[[Any], Any] | str | None = None
    on_slow_consumer: str = "block"
    parameters: list[ParameterDefinition] = field(default_factory=list)
    name: str = ""
    description: str = ""
    concurrency: int = 1
    key_function: Callable[[Any], Any] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        label = f"stage '{self.name}'" if self.name else "stage"
        if (self.operators is None) == (self.batch_operators is None):
            raise ValueError(f"{label}: give exactly one of operators or batch_operators")
        if not callable(self.operators if self.operators is not None else self.batch_operators):
            raise ValueError(f"{label}: its operators must be callable")
        if isinstance(self.key, str):
            if not self.key:
                raise ValueError(f"{label}: a key field name must not be empty")
            # itemgetter is C code: about half the cost of a lambda per event.
            self.key_function = operator.itemgetter(self.key)
        elif self.key is None or callable(self.key):
            self.key_function = self.key
        else:
            raise ValueError(f"{label}: key must be a callable, a field name or None")
        if self.on_slow_consumer not in SLOW_CONSUMER_POLICIES:
            raise ValueError(f"{label}: on_slow_consumer must be one of "
                             f"{', '.join(SLOW_CONSUMER_POLICIES)}, got {self.on_slow_consumer!r}")
        if isinstance(self.concurrency, bool) or not isinstance(self.concurrency, int) \
                or not 1 <= self.concurrency <= 64:
            raise ValueError(f"{label}: concurrency must be a whole number from 1 to 64, got {self.concurrency!r}")
        self.parameters = list(self.parameters)

    @property
    def keyed(self) -> bool:
        """True when the stage declares a key."""
        return self.key_function is not None

    @property
    def per_batch(self) -> bool:
        """True when the stage's operators work on batches (``batch_operators``)."""
        return self.batch_operators is not None

    @property
    def given_operators(self) -> Stage | BatchStage:
        """The operators the stage runs: ``batch_operators`` when ``per_batch``, else ``operators``."""
        if self.batch_operators is not None:
            return self.batch_operators
        if self.operators is None:  # __post_init__ refuses a stage without operators
            raise ValueError("stage: give exactly one of operators or batch_operators")
        return self.operators


@dataclass(frozen=True)
class StagePlan:
    """What a worker of stage ``stage_number`` runs.

    ``reads_source``: the worker runs the job's source in-process (stage 1); otherwise it
    reads stage n-1's output over the network.  ``is_last``: its output is the job's
    output (the sink, or the subscribers); otherwise it is served to the next stage,
    partitioned as ``stage`` says (keyed or round-robin).
    """

    stage_number: int
    stage_count: int
    stage: ProcessingStage

    @property
    def reads_source(self) -> bool:
        return self.stage_number == 1

    @property
    def is_last(self) -> bool:
        return self.stage_number == self.stage_count


@dataclass
class Job:
    """A streaming job: source -> stage 1 -> ... -> stage n -> sink, with declared parameters.

    Give either ``stage`` (one stage: per-event operators or a ProcessingStage) or
    ``stages`` (a list, in order, of ProcessingStage or per-event operators); after
    construction ``stages`` always holds ProcessingStage objects.  ``sink`` None means
    the job's output is served to its subscribers.  Raises ValueError when a part is
    missing or not callable, or two parameters (job or stage) share a name.
    """

    name: str
    source: Source
    stage: Stage | ProcessingStage | None = None
    sink: Sink | None = None
    parameters: list[ParameterDefinition] = field(default_factory=list)
    description: str = ""
    stages: list[ProcessingStage] = field(default_factory=list)
    # Checks the resolved parameters together (one of two required, say); raises ParameterError.
    # What it returns is ignored (a parser may serve, returning what it parsed).
    validate: Callable[[dict[str, Any]], object] | None = None
    # Checks every worker of the job gets, besides those of its stages' scheduling info;
    # run by the agent next to the worker (``mantis.lifecycles.health_checks``).
    health_checks: list[CheckDefinition] = field(default_factory=list)
    readiness_checks: list[CheckDefinition] = field(default_factory=list)
    # What the worker's default endpoint answers on /health and /ready besides "the
    # pipeline runs": ``health(context) -> bool``, ``ready(context) -> bool``.
    health: Callable[[Context], bool] | None = None
    ready: Callable[[Context], bool] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError("a job needs a non-empty name")
        if not callable(self.source):
            raise ValueError(f"job '{self.name}': source must be callable")
        if self.stage is not None and self.stages:
            raise ValueError(f"job '{self.name}': give stage or stages, not both")
        given = [self.stage] if self.stage is not None else list(self.stages)
        if not given:
            raise ValueError(f"job '{self.name}': stage must be callable (or give stages)")
        self.stages = []
        for number, stage in enumerate(given, start=1):
            if isinstance(stage, ProcessingStage):
                self.stages.append(stage)
            elif callable(stage):
                self.stages.append(ProcessingStage(operators=stage))
            else:
                raise ValueError(f"job '{self.name}': stage {number} must be callable "
                                 "or a ProcessingStage")
        self.stages = [self._with_lanes(stage, self.stages[n - 1] if n else None)
                       for n, stage in enumerate(self.stages)]
        if self.sink is not None and not callable(self.sink):
            raise ValueError(f"job '{self.name}': sink must be callable or None")
        for hook in ("health", "ready"):
            if getattr(self, hook) is not None and not callable(getattr(self, hook)):
                raise ValueError(f"job '{self.name}': {hook} must be callable or None")
        for check in [*self.health_checks, *self.readiness_checks]:
            if not isinstance(check, CheckDefinition):
                raise ValueError(f"job '{self.name}': checks must be HealthCheck, got {type(check).__name__}")
        self.parameters = list(self.parameters)
        seen: set[str] = set()
        for p in self.all_parameters:
            if not isinstance(p, ParameterDefinition):
                raise ValueError(f"job '{self.name}': parameters must be ParameterDefinition, "
                                 f"got {type(p).__name__}")
            if p.name in seen:
                raise ValueError(f"job '{self.name}' declares parameter '{p.name}' twice")
            seen.add(p.name)

    @staticmethod
    def _with_lanes(stage: ProcessingStage, previous: ProcessingStage | None) -> ProcessingStage:
        # A copy with its operators run in lanes, dealt by the previous stage's key; the
        # user's ProcessingStage is left as given (it may serve several jobs).
        operators = stage.given_operators
        if stage.concurrency == 1 or getattr(operators, LANES_MARK, False):
            return stage
        lanes = in_lanes(operators, stage.concurrency, previous.key_function if previous else None,
                         per_batch=stage.per_batch)
        if stage.per_batch:
            return dataclasses.replace(stage, batch_operators=lanes)
        return dataclasses.replace(stage, operators=lanes)

    @property
    def stage_count(self) -> int:
        """How many processing stages the job has (1 for the short form)."""
        return len(self.stages)

    @property
    def all_parameters(self) -> list[ParameterDefinition]:
        """The job's parameters, then each stage's, in stage order: everything a submission may set."""
        return self.parameters + [p for stage in self.stages for p in stage.parameters]

    def worker_plan(self, stage_number: int) -> StagePlan:
        """What a worker of stage ``stage_number`` (1-based) runs; ValueError if there is no such stage."""
        if isinstance(stage_number, bool) or not isinstance(stage_number, int) \
                or not 1 <= stage_number <= len(self.stages):
            raise ValueError(f"job '{self.name}' has stages 1..{len(self.stages)}, "
                             f"not {stage_number!r}")
        return StagePlan(stage_number, len(self.stages), self.stages[stage_number - 1])


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
    """Every declared parameter's value (job and stages): the supplied one converted, or the default.

    Strings are converted to the declared type ("42" -> 42, "yes" -> True); a declared
    parameter neither supplied nor defaulted is None.  Raises ParameterError for an
    unknown name, a missing required parameter, a value that does not convert, or one
    its validator rejects, or when the job's ``validate`` rejects the values together.
    """
    declared = {p.name: p for p in job.all_parameters}
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
    if job.validate is not None:
        job.validate(resolved)
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
