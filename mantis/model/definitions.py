"""Job cluster and job definitions, in Mantis' vocabulary and JSON field names.

A *job cluster* is a named job definition (entry point, version, default parameters,
scheduling info, SLA, labels).  A *job* is one submission into a cluster; fields it
leaves out are filled from the cluster (``JobDefinition.merged_with``).

Every class decodes with ``from_json`` (strict: unknown fields and wrong types are
rejected with the path of the field) and encodes with ``to_json``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from mantis.autoscaling.policy import parse_policy  # a scalable stage's policy is checked on arrival
from mantis.model import codec
from mantis.model.codec import Field, ValidationError
from scheduler.constraints import parse_constraint  # the scheduler owns what a constraint means

CLUSTER_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.]{0,99}$")
ENTRY_POINT = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def cluster_name(value: Any, path: str) -> str:
    """A cluster name: a letter, then letters, digits, '_' or '.'; no '-' (it splits job ids)."""
    value = codec.string(value, path)
    if not CLUSTER_NAME.match(value):
        raise ValidationError(
            f"{path} must start with a letter and hold only letters, digits, '_' or '.' (at most 100)")
    return value


def entry_point(value: Any, path: str) -> str:
    """A job entry point ``package.module:attribute``."""
    value = codec.string(value, path)
    if not ENTRY_POINT.match(value):
        raise ValidationError(f"{path} must name a job as 'package.module:attribute'")
    return value


def constraint_spec(value: Any, path: str) -> Any:
    """A placement constraint in Mantis or Marathon vocabulary, checked by the scheduler."""
    try:
        parse_constraint(value)
    except ValueError as exc:
        raise ValidationError(f"{path}: {exc}") from None
    return value


@dataclass
class Parameter:
    """A named parameter value supplied to a job (values travel as JSON scalars)."""

    name: str
    value: Any

    @classmethod
    def from_json(cls, data: Any, path: str = "parameter") -> Parameter:
        param = codec.decode_object(cls, _PARAMETER_FIELDS, data, path)
        if isinstance(param.value, (dict, list)):
            raise ValidationError(f"{path}.value must be a string, number or boolean")
        return param

    def to_json(self) -> dict:
        return {"name": self.name, "value": self.value}


_PARAMETER_FIELDS = (
    Field("name", "name", codec.nonempty_string, required=True),
    Field("value", "value", lambda v, p: v, required=True),
)


@dataclass
class Label:
    """A free-form name/value tag on a cluster or job."""

    name: str
    value: str

    @classmethod
    def from_json(cls, data: Any, path: str = "label") -> Label:
        return codec.decode_object(cls, _LABEL_FIELDS, data, path)

    def to_json(self) -> dict:
        return {"name": self.name, "value": self.value}


_LABEL_FIELDS = (
    Field("name", "name", codec.nonempty_string, required=True),
    Field("value", "value", codec.string, required=True),
)


@dataclass
class MachineDefinition:
    """Resources one worker of a stage asks for."""

    cpu_cores: float = 1.0
    memory_mb: float = 256.0
    disk_mb: float = 256.0
    network_mbps: float = 128.0
    num_ports: int = 1

    @classmethod
    def from_json(cls, data: Any, path: str = "machineDefinition") -> MachineDefinition:
        return codec.decode_object(cls, _MACHINE_FIELDS, data, path)

    def to_json(self) -> dict:
        return codec.encode_object(self, _MACHINE_FIELDS)


_MACHINE_FIELDS = (
    Field("cpuCores", "cpu_cores", codec.number(0, exclusive_min=True), default=lambda: 1.0),
    Field("memoryMB", "memory_mb", codec.number(0, exclusive_min=True), default=lambda: 256.0),
    Field("diskMB", "disk_mb", codec.number(0), default=lambda: 256.0),
    Field("networkMbps", "network_mbps", codec.number(0), default=lambda: 128.0),
    Field("numPorts", "num_ports", codec.integer(0, 100), default=lambda: 1),
)


@dataclass
class StageSchedulingInfo:
    """How many workers a stage runs, on what machines, under which constraints."""

    number_of_instances: int = 1
    machine: MachineDefinition = field(default_factory=MachineDefinition)
    hard_constraints: list = field(default_factory=list)
    soft_constraints: list = field(default_factory=list)
    scalable: bool = False
    scaling_policy: dict | None = None

    @classmethod
    def from_json(cls, data: Any, path: str = "stage") -> StageSchedulingInfo:
        return codec.decode_object(cls, _STAGE_FIELDS, data, path)

    def to_json(self) -> dict:
        return codec.encode_object(self, _STAGE_FIELDS)


_STAGE_FIELDS = (
    Field("numberOfInstances", "number_of_instances", codec.integer(0, 10_000), default=lambda: 1),
    Field("machineDefinition", "machine", MachineDefinition.from_json, default=MachineDefinition),
    Field("hardConstraints", "hard_constraints", codec.list_of(constraint_spec), default=list),
    Field("softConstraints", "soft_constraints", codec.list_of(constraint_spec), default=list),
    Field("scalable", "scalable", codec.boolean, default=lambda: False),
    Field("scalingPolicy", "scaling_policy", codec.json_object),
)


def _stages(value: Any, path: str) -> dict[int, StageSchedulingInfo]:
    value = codec.json_object(value, path)
    if not value:
        raise ValidationError(f"{path} must name at least one stage")
    stages = {}
    for key, stage in value.items():
        if not str(key).isdigit() or int(key) < 1:
            raise ValidationError(f"{path} keys must be stage numbers 1, 2, ... (got {key!r})")
        stages[int(key)] = info = StageSchedulingInfo.from_json(stage, f"{path}.{key}")
        if info.scalable:
            try:  # refused at the door, not found out by the Job Master later
                parse_policy(int(key), info.scaling_policy)
            except ValidationError as exc:
                raise ValidationError(f"{path}.{key}.{exc}") from None
    if sorted(stages) != list(range(1, len(stages) + 1)):
        raise ValidationError(f"{path} must number stages 1..{len(stages)} without gaps")
    return stages


@dataclass
class SchedulingInfo:
    """The stages of a job, numbered from 1, each with its scheduling info."""

    stages: dict[int, StageSchedulingInfo] = field(default_factory=lambda: {1: StageSchedulingInfo()})

    @classmethod
    def from_json(cls, data: Any, path: str = "schedulingInfo") -> SchedulingInfo:
        return codec.decode_object(cls, _SCHEDULING_FIELDS, data, path)

    def to_json(self) -> dict:
        return {"stages": {str(n): s.to_json() for n, s in sorted(self.stages.items())}}


_SCHEDULING_FIELDS = (Field("stages", "stages", _stages, required=True),)


@dataclass
class JobSla:
    """A job's service level: perpetual or transient, and runtime limits in seconds."""

    runtime_limit_secs: int = 0
    min_runtime_secs: int = 0
    sla_type: str = "Lossy"
    duration_type: str = "Perpetual"
    user_provided_type: str = ""

    @classmethod
    def from_json(cls, data: Any, path: str = "jobSla") -> JobSla:
        return codec.decode_object(cls, _SLA_FIELDS, data, path)

    def to_json(self) -> dict:
        return codec.encode_object(self, _SLA_FIELDS)


_SLA_FIELDS = (
    Field("runtimeLimitSecs", "runtime_limit_secs", codec.integer(0), default=lambda: 0),
    Field("minRuntimeSecs", "min_runtime_secs", codec.integer(0), default=lambda: 0),
    Field("slaType", "sla_type", codec.one_of("Lossy"), default=lambda: "Lossy"),
    Field("durationType", "duration_type", codec.one_of("Perpetual", "Transient"),
          default=lambda: "Perpetual"),
    Field("userProvidedType", "user_provided_type", codec.string, default=lambda: ""),
)


@dataclass
class JobClusterDefinition:
    """A named job definition that jobs are submitted into.

    ``url`` is the job's entry point (``module:attribute``); ``parameters`` are the
    defaults every job of the cluster gets; ``sla_min``/``sla_max`` bound how many
    jobs of the cluster run at once (0 = no bound).
    """

    name: str
    url: str
    version: str = "1"
    owner: dict = field(default_factory=dict)
    user: str = "unknown"
    parameters: list[Parameter] = field(default_factory=list)
    scheduling_info: SchedulingInfo = field(default_factory=SchedulingInfo)
    job_sla: JobSla = field(default_factory=JobSla)
    labels: list[Label] = field(default_factory=list)
    sla_min: int = 0
    sla_max: int = 0
    cron_spec: str | None = None
    cron_policy: str = "KEEP_EXISTING"
    migration_config: dict = field(default_factory=lambda: {"strategy": "ONE_WORKER", "configString": ""})

    @classmethod
    def from_json(cls, data: Any, path: str = "") -> JobClusterDefinition:
        definition = codec.decode_object(cls, _CLUSTER_FIELDS, data, path)
        if definition.sla_max and definition.sla_max < definition.sla_min:
            raise ValidationError("slaMax must be at least slaMin")
        _check_unique_parameters(definition.parameters)
        return definition

    def to_json(self) -> dict:
        return codec.encode_object(self, _CLUSTER_FIELDS)


def _migration(value: Any, path: str) -> dict:
    value = codec.json_object(value, path)
    strategy = value.get("strategy", "ONE_WORKER")
    codec.one_of("ONE_WORKER", "PERCENTAGE")(strategy, f"{path}.strategy")
    unknown = sorted(set(value) - {"strategy", "configString"})
    if unknown:
        raise ValidationError(f"{path} has unknown field(s): {', '.join(unknown)}")
    return {"strategy": strategy, "configString": codec.string(value.get("configString", ""), path)}


_CLUSTER_FIELDS = (
    Field("name", "name", cluster_name, required=True),
    Field("url", "url", entry_point, required=True),
    Field("version", "version", codec.nonempty_string, default=lambda: "1"),
    Field("owner", "owner", codec.string_map, default=dict),
    Field("user", "user", codec.nonempty_string, default=lambda: "unknown"),
    Field("parameters", "parameters", codec.list_of(Parameter.from_json), default=list),
    Field("schedulingInfo", "scheduling_info", SchedulingInfo.from_json, default=SchedulingInfo),
    Field("jobSla", "job_sla", JobSla.from_json, default=JobSla),
    Field("labels", "labels", codec.list_of(Label.from_json), default=list),
    Field("slaMin", "sla_min", codec.integer(0, 1000), default=lambda: 0),
    Field("slaMax", "sla_max", codec.integer(0, 1000), default=lambda: 0),
    Field("cronSpec", "cron_spec", codec.string),
    Field("cronPolicy", "cron_policy", codec.one_of("KEEP_EXISTING", "KEEP_NEW"),
          default=lambda: "KEEP_EXISTING"),
    Field("migrationConfig", "migration_config", _migration,
          default=lambda: {"strategy": "ONE_WORKER", "configString": ""}),
)


def _check_unique_parameters(parameters: list[Parameter]) -> None:
    seen = set()
    for p in parameters:
        if p.name in seen:
            raise ValidationError(f"parameter {p.name!r} is given twice")
        seen.add(p.name)


@dataclass
class JobDefinition:
    """One job submission.  Fields left None are taken from the cluster on submit."""

    name: str | None = None
    user: str = "unknown"
    version: str | None = None
    url: str | None = None
    parameters: list[Parameter] | None = None
    job_sla: JobSla | None = None
    subscription_timeout_secs: int = 300
    scheduling_info: SchedulingInfo | None = None
    labels: list[Label] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: Any, path: str = "") -> JobDefinition:
        definition = codec.decode_object(cls, _JOB_FIELDS, data, path)
        if definition.parameters:
            _check_unique_parameters(definition.parameters)
        return definition

    def to_json(self) -> dict:
        return codec.encode_object(self, _JOB_FIELDS)

    def merged_with(self, cluster: JobClusterDefinition) -> JobDefinition:
        """The complete definition: this submission's fields over the cluster's defaults.

        Parameters merge by name (the submission wins); everything else is taken whole.
        """
        params = {p.name: p for p in cluster.parameters}
        for p in self.parameters or []:
            params[p.name] = p
        return replace(
            self,
            name=cluster.name,
            version=self.version or cluster.version,
            url=self.url or cluster.url,
            parameters=list(params.values()),
            job_sla=self.job_sla or cluster.job_sla,
            scheduling_info=self.scheduling_info or cluster.scheduling_info,
            labels=self.labels or list(cluster.labels),
        )

    def parameter_values(self) -> dict[str, Any]:
        """Parameters as a name -> value dict."""
        return {p.name: p.value for p in self.parameters or []}


_JOB_FIELDS = (
    Field("name", "name", cluster_name),
    Field("user", "user", codec.nonempty_string, default=lambda: "unknown"),
    Field("version", "version", codec.nonempty_string),
    Field("url", "url", entry_point),
    Field("parameters", "parameters", codec.list_of(Parameter.from_json)),
    Field("jobSla", "job_sla", JobSla.from_json),
    Field("subscriptionTimeoutSecs", "subscription_timeout_secs", codec.integer(0), default=lambda: 300),
    Field("schedulingInfo", "scheduling_info", SchedulingInfo.from_json),
    Field("labels", "labels", codec.list_of(Label.from_json), default=list),
)
