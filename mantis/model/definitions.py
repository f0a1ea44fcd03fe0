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
from mantis.model.checks import check_list
from mantis.model.codec import Field, ValidationError
from mantis.model.cron import CronSchedule
from mantis.model.migration_config import MigrationConfig
from scheduler.constraints import parse_constraint  # the scheduler owns what a constraint means

CLUSTER_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,99}$")
ENTRY_POINT = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def cluster_name(value: Any, path: str) -> str:
    """A cluster name: a letter, then letters, digits, '_', '.' or '-' (at most 100).

    Names may hold '-' as Mantis' do: a job id ``<cluster>-<n>`` is split on its last '-'.
    """
    value = codec.string(value, path)
    if not CLUSTER_NAME.match(value):
        raise ValidationError(
            f"{path} must start with a letter and hold only letters, digits, '_', '.' or '-' (at most 100)")
    return value


ARTIFACT_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://\S+$")


def artifact(value: Any, path: str) -> str:
    """A job's artifact: our entry point ``package.module:attribute``, or an artifact URL
    as Mantis clusters name theirs (``https://.../job-1.0.zip``).

    A cluster may be registered with either, as Mantis takes any artifact at create;
    only an entry point can run here, which a submit checks (``is_entry_point``).
    """
    value = codec.string(value, path)
    if not (ENTRY_POINT.match(value) or ARTIFACT_URL.match(value)):
        raise ValidationError(f"{path} must name a job as 'package.module:attribute' (or an artifact URL)")
    return value


def is_entry_point(url: str | None) -> bool:
    """Whether ``url`` is an entry point this platform can run (not an artifact URL)."""
    return bool(url and ENTRY_POINT.match(url))


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
    # Marathon-style checks (``mantis.model.checks``), kept in their JSON form.
    health_checks: list = field(default_factory=list)
    readiness_checks: list = field(default_factory=list)

    @classmethod
    def from_json(cls, data: Any, path: str = "stage") -> StageSchedulingInfo:
        return codec.decode_object(cls, _STAGE_FIELDS, data, path, ignored=_MANTIS_STAGE_ONLY)

    def to_json(self) -> dict:
        return codec.encode_object(self, _STAGE_FIELDS)


_STAGE_FIELDS = (
    Field("numberOfInstances", "number_of_instances", codec.integer(0, 10_000), default=lambda: 1),
    Field("machineDefinition", "machine", MachineDefinition.from_json, default=MachineDefinition),
    Field("hardConstraints", "hard_constraints", codec.list_of(constraint_spec), default=list),
    Field("softConstraints", "soft_constraints", codec.list_of(constraint_spec), default=list),
    Field("scalable", "scalable", codec.boolean, default=lambda: False),
    Field("scalingPolicy", "scaling_policy", codec.json_object),
    Field("healthChecks", "health_checks", check_list, default=list),
    Field("readinessChecks", "readiness_checks", check_list, default=list),
)


# StageSchedulingInfo fields of Mantis' that we accept and do not use.
_MANTIS_STAGE_ONLY = frozenset({"containerAttributes"})


def _stages(value: Any, path: str) -> dict[int, StageSchedulingInfo]:
    value = codec.json_object(value, path)
    if not any(str(k) != "0" for k in value):
        raise ValidationError(f"{path} must name at least one stage")
    stages = {}
    for key, stage in value.items():
        if str(key) == "0":
            # Mantis lists its Job Master as stage 0; the master adds its own where a
            # stage is scalable, so a given one is checked and left out.
            StageSchedulingInfo.from_json(stage, f"{path}.0")
            continue
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
    jobs of the cluster run at once (0 = no bound); a ``cron_spec`` (checked here)
    submits a job on its schedule and forces min 0, max 1
    (``mantis.lifecycles.cluster_sla`` holds the rules).
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
    job_principal: dict | None = None

    @classmethod
    def from_json(cls, data: Any, path: str = "") -> JobClusterDefinition:
        """Decode our flat form, or Mantis' ``{"jobDefinition": {...}, "owner": {...},
        "jobPrincipal"?}`` (NamedJobDefinition); both are strict about unknown fields."""
        if isinstance(data, dict) and "jobDefinition" in data:
            data, path = _unwrap_named_job_definition(data), path or "jobDefinition"
        data = _artifact_alias(data, path)
        definition = codec.decode_object(cls, _CLUSTER_FIELDS, data, path, ignored=_MANTIS_CLUSTER_ONLY)
        if definition.cron_spec:
            CronSchedule.parse(definition.cron_spec)
            # As Mantis: a cron cluster runs at most one job, and none between triggers.
            definition.sla_min, definition.sla_max = 0, 1
        if definition.sla_max and definition.sla_max < definition.sla_min:
            raise ValidationError("slaMax must be at least slaMin")
        _check_unique_parameters(definition.parameters)
        return definition

    def to_json(self) -> dict:
        return codec.encode_object(self, _CLUSTER_FIELDS)


# Fields of Mantis' MantisJobDefinition that we accept and do not use.
_MANTIS_JOB_ONLY = frozenset({"isReadyForJobMaster", "deploymentStrategy"})
# At the cluster level also the job's own subscription timeout (a job gives its own).
_MANTIS_CLUSTER_ONLY = _MANTIS_JOB_ONLY | {"subscriptionTimeoutSecs"}
# A submission may carry the cluster-level fields of a MantisJobDefinition; a job has no use for them.
_MANTIS_SUBMIT_ONLY = _MANTIS_JOB_ONLY | {"slaMin", "slaMax", "cronSpec", "cronPolicy", "migrationConfig"}
# The fields of Mantis' NamedJobDefinition, the body of a cluster create or update.
_NAMED_JOB_FIELDS = frozenset({"jobDefinition", "owner", "jobPrincipal"})


def _unwrap_named_job_definition(data: dict) -> dict:
    """Mantis' ``{jobDefinition, owner, jobPrincipal?}`` as our flat cluster definition."""
    unknown = sorted(set(data) - _NAMED_JOB_FIELDS)
    if unknown:
        raise ValidationError(f"body has unknown field(s): {', '.join(unknown)} "
                              "(with jobDefinition, the body holds jobDefinition, owner and jobPrincipal)")
    flat = dict(codec.json_object(data["jobDefinition"], "jobDefinition"))
    if data.get("owner") is not None:
        flat["owner"] = data["owner"]
    if data.get("jobPrincipal") is not None:
        flat["jobPrincipal"] = data["jobPrincipal"]
    return flat


def _principal(value: Any, path: str) -> dict:
    """Mantis' JobPrincipal ``{email, type}``: who a cluster's jobs act as (kept, shown)."""
    value = codec.json_object(value, path)
    unknown = sorted(set(value) - {"email", "type"})
    if unknown:
        raise ValidationError(f"{path} has unknown field(s): {', '.join(unknown)}")
    return {k: codec.string(v, f"{path}.{k}") for k, v in value.items() if v is not None}


def _artifact_alias(data: Any, path: str) -> Any:
    """Mantis names a job's artifact ``url`` in requests and ``jobJarFileLocation`` in
    what it writes back; take either (both only if they agree)."""
    if not isinstance(data, dict) or "jobJarFileLocation" not in data:
        return data
    data = dict(data)
    alias = data.pop("jobJarFileLocation") or None  # "" (as Mantis' UI sends): the cluster's
    if data.get("url") is None:
        data["url"] = alias
    elif alias is not None and alias != data["url"]:
        raise ValidationError(f"{path or 'body'} names two artifacts: url and jobJarFileLocation differ")
    return data


def _owner(value: Any, path: str) -> dict:
    """A cluster's owner (Mantis' JobOwner: name, teamName, description, contactEmail,
    repo), strings; a null value is left out."""
    value = codec.json_object(value, path)
    return codec.string_map({k: v for k, v in value.items() if v is not None}, path)


def _migration(value: Any, path: str) -> dict:
    value = codec.json_object(value, path)
    strategy = value.get("strategy", "ONE_WORKER")
    codec.one_of("ONE_WORKER", "PERCENTAGE")(strategy, f"{path}.strategy")
    unknown = sorted(set(value) - {"strategy", "configString"})
    if unknown:
        raise ValidationError(f"{path} has unknown field(s): {', '.join(unknown)}")
    result = {"strategy": strategy, "configString": codec.string(value.get("configString", ""), path)}
    MigrationConfig.parse(result)  # a PERCENTAGE config string must parse (ValidationError)
    return result


_CLUSTER_FIELDS = (
    Field("name", "name", cluster_name, required=True),
    Field("url", "url", artifact, required=True),
    Field("version", "version", codec.nonempty_string, default=lambda: "1"),
    Field("owner", "owner", _owner, default=dict),
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
    Field("jobPrincipal", "job_principal", _principal),
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
        """Decode a submission: our fields, or Mantis' MantisJobDefinition (whose
        cluster-level fields are accepted and not used)."""
        data = _artifact_alias(data, path)
        definition = codec.decode_object(cls, _JOB_FIELDS, data, path, ignored=_MANTIS_SUBMIT_ONLY)
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
    Field("url", "url", artifact),
    Field("parameters", "parameters", codec.list_of(Parameter.from_json)),
    Field("jobSla", "job_sla", JobSla.from_json),
    Field("subscriptionTimeoutSecs", "subscription_timeout_secs", codec.integer(0), default=lambda: 300),
    Field("schedulingInfo", "scheduling_info", SchedulingInfo.from_json),
    Field("labels", "labels", codec.list_of(Label.from_json), default=list),
)
