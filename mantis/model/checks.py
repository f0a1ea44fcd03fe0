"""Health and readiness check definitions, in Marathon's vocabulary and field names.

A stage's scheduling info may carry ``healthChecks`` and ``readinessChecks``; a job's
code may declare more (``mantis.sdk.job_dsl.Job(health_checks=..., readiness_checks=...)``).
A check is one of:

- ``HTTP``: ``GET <path>`` on the worker; healthy when the status is in
  ``httpStatusCodes`` (default 200-399, as Marathon's HTTP checks);
- ``TCP``: a connection to the port is accepted;
- ``COMMAND``: ``command`` (a shell command line, or Marathon's ``{"value": ...}``)
  run next to the worker exits 0.

Which port: ``portIndex`` into the worker's assigned ports, else, for HTTP, the worker
runtime's health endpoint (``/health``, ``/ready``), and for TCP the worker's output port.
Timing (Marathon's defaults): failures are ignored for ``gracePeriodSeconds`` after the
worker started, or until it is healthy once; a check runs every ``intervalSeconds``, a
probe longer than ``timeoutSeconds`` fails; ``maxConsecutiveFailures`` failures in a row
(0 = never) mark the worker unhealthy, and it is replaced.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mantis.model import codec
from mantis.model.codec import Field, ValidationError

PROTOCOLS = ("HTTP", "TCP", "COMMAND")


def _command(value: Any, path: str) -> str:
    # Marathon writes {"value": "..."}; a plain string is accepted too.
    if isinstance(value, dict):
        unknown = sorted(set(value) - {"value"})
        if unknown:
            raise ValidationError(f"{path} has unknown field(s): {', '.join(unknown)}")
        value = value.get("value")
    return codec.nonempty_string(value, path)


def _status_codes(value: Any, path: str) -> list[int]:
    codes = codec.list_of(codec.integer(100, 599))(value, path)
    if not codes:
        raise ValidationError(f"{path} must list at least one status code")
    return codes


@dataclass(frozen=True)
class CheckDefinition:
    """One health or readiness check of a stage's workers (see the module's docstring)."""

    protocol: str = "HTTP"
    path: str | None = None
    port_index: int | None = None
    command: str | None = None
    http_status_codes: tuple[int, ...] | None = None
    grace_period_s: float = 300.0
    interval_s: float = 60.0
    timeout_s: float = 20.0
    max_consecutive_failures: int = 3
    name: str = field(default="")

    @classmethod
    def from_json(cls, data: Any, path: str = "check") -> CheckDefinition:
        """Decode a check; ValidationError names the field at fault."""
        check = codec.decode_object(cls, _CHECK_FIELDS, data, path)
        if check.protocol == "COMMAND" and not check.command:
            raise ValidationError(f"{path}.command is required for a COMMAND check")
        if check.protocol != "COMMAND" and check.command:
            raise ValidationError(f"{path}.command is only for a COMMAND check")
        if check.protocol != "HTTP" and (check.path or check.http_status_codes):
            raise ValidationError(f"{path}.path and httpStatusCodes are only for an HTTP check")
        if check.http_status_codes is not None:
            object.__setattr__(check, "http_status_codes", tuple(check.http_status_codes))
        if check.timeout_s > check.interval_s:
            raise ValidationError(f"{path}.timeoutSeconds must not exceed intervalSeconds")
        return check

    def to_json(self) -> dict:
        """The wire form (only the fields that are set, so stored records stay short)."""
        out = codec.encode_object(self, _CHECK_FIELDS)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in out.items() if v not in (None, "")}

    def accepts_status(self, status: int) -> bool:
        """True when an HTTP answer with ``status`` passes this check."""
        if self.http_status_codes:
            return status in self.http_status_codes
        return 200 <= status < 400

    def describe(self) -> str:
        """A short human form for reasons and logs: ``HTTP /health``, ``TCP``, ``COMMAND 'x'``."""
        if self.name:
            return self.name
        if self.protocol == "HTTP":
            return f"HTTP {self.path or '/health'}"
        if self.protocol == "COMMAND":
            return f"COMMAND {self.command!r}"
        return "TCP" if self.port_index is None else f"TCP port #{self.port_index}"


_CHECK_FIELDS = (
    Field("protocol", "protocol", codec.one_of(*PROTOCOLS), default=lambda: "HTTP"),
    Field("path", "path", codec.nonempty_string),
    Field("portIndex", "port_index", codec.integer(0, 99)),
    Field("command", "command", _command),
    Field("httpStatusCodes", "http_status_codes", _status_codes),
    Field("gracePeriodSeconds", "grace_period_s", codec.number(0), default=lambda: 300.0),
    Field("intervalSeconds", "interval_s", codec.number(0, exclusive_min=True), default=lambda: 60.0),
    Field("timeoutSeconds", "timeout_s", codec.number(0, exclusive_min=True), default=lambda: 20.0),
    Field("maxConsecutiveFailures", "max_consecutive_failures", codec.integer(0, 1000), default=lambda: 3),
    Field("name", "name", codec.string, default=lambda: ""),
)


def check_list(value: Any, path: str) -> list[dict]:
    """A list of checks, validated, kept in their JSON form (definitions store JSON)."""
    return [CheckDefinition.from_json(item, f"{path}.{i}").to_json()
            for i, item in enumerate(codec.list_of(lambda v, p: v)(value, path))]
