"""Health and readiness checks as machines on a fixed clock (Marathon's rules)."""
import pytest

from mantis.lifecycles.health_checks import (
    FAILING,
    GRACE,
    HEALTHY,
    UNHEALTHY,
    Ready,
    Unhealthy,
    WorkerChecks,
)
from mantis.model.checks import CheckDefinition
from mantis.model.codec import ValidationError
from mantis.model.definitions import StageSchedulingInfo

HTTP = CheckDefinition.from_json({"protocol": "HTTP", "path": "/health", "gracePeriodSeconds": 10,
                                  "intervalSeconds": 2, "timeoutSeconds": 1, "maxConsecutiveFailures": 3})


def test_a_check_is_due_at_start_then_every_interval_from_the_probe_start():
    checks = WorkerChecks.start("j-1-worker-0-1", [HTTP], [], now=100.0)
    (t,) = checks.due(100.0)
    t.begin(100.0)
    assert checks.due(101.0) == []          # one probe at a time
    checks.record(t, True, "200", 100.5)
    assert checks.due(101.9) == []
    assert checks.due(102.0) == [t]


def test_failures_in_the_grace_period_do_not_count_until_it_ends():
    checks = WorkerChecks.start("w", [HTTP], [], now=0.0)
    (t,) = checks.health
    for now in (0.0, 2.0, 4.0, 6.0, 8.0):   # five failures, all inside the 10 s grace
        assert checks.record(t, False, "503", now) == []
    assert t.state == GRACE and t.consecutive_failures == 0
    assert checks.record(t, False, "503", 10.0) == [] and t.state == FAILING
    assert checks.record(t, False, "503", 12.0) == []
    (effect,) = checks.record(t, False, "503", 14.0)
    assert isinstance(effect, Unhealthy) and t.state == UNHEALTHY
    assert "HTTP /health failed 3 time(s) in a row: 503" in effect.reason
    assert checks.due(100.0) == []          # an unhealthy worker is not probed again
    assert checks.record(t, False, "503", 16.0) == []  # and is told only once


def test_the_grace_period_ends_once_the_worker_has_been_healthy():
    checks = WorkerChecks.start("w", [HTTP], [], now=0.0)
    (t,) = checks.health
    checks.record(t, True, "200", 0.5)
    assert t.state == HEALTHY
    checks.record(t, False, "503", 2.0)
    checks.record(t, False, "503", 4.0)
    assert [type(e) for e in checks.record(t, False, "503", 6.0)] == [Unhealthy]


def test_a_pass_resets_the_consecutive_failures():
    checks = WorkerChecks.start("w", [HTTP], [], now=0.0)
    (t,) = checks.health
    for now, ok in [(11, False), (13, False), (15, True), (17, False), (19, False)]:
        assert checks.record(t, ok, "x", now) == []
    assert t.state == FAILING and t.consecutive_failures == 2


def test_max_consecutive_failures_zero_never_gives_up():
    never = CheckDefinition.from_json({"protocol": "TCP", "gracePeriodSeconds": 0, "intervalSeconds": 1,
                                       "timeoutSeconds": 1, "maxConsecutiveFailures": 0})
    checks = WorkerChecks.start("w", [never], [], now=0.0)
    (t,) = checks.health
    for now in range(1, 50):
        assert checks.record(t, False, "refused", float(now)) == []
    assert t.state == FAILING and t.consecutive_failures == 49


def test_a_probe_past_its_timeout_is_overdue():
    checks = WorkerChecks.start("w", [HTTP], [], now=0.0)
    (t,) = checks.due(0.0)
    t.begin(0.0)
    assert checks.overdue(1.0) == [] and checks.overdue(1.01) == [t]


def test_the_worker_is_ready_once_every_readiness_check_has_passed_once():
    tcp = CheckDefinition.from_json({"protocol": "TCP", "intervalSeconds": 1, "timeoutSeconds": 1})
    http = CheckDefinition.from_json({"protocol": "HTTP", "path": "/ready", "intervalSeconds": 1,
                                      "timeoutSeconds": 1})
    checks = WorkerChecks.start("w", [], [tcp, http], now=0.0)
    a, b = checks.readiness
    assert not checks.ready
    assert checks.record(a, True, "ok", 1.0) == [] and not checks.ready
    assert checks.record(b, False, "503", 1.0) == []
    assert checks.record(b, True, "200", 2.0) == [Ready("w")] and checks.ready
    assert checks.due(10.0) == []           # readiness checks stop once passed
    assert WorkerChecks.start("x", [HTTP], [], now=0.0).ready  # none: ready at once


def test_readiness_failures_never_make_a_worker_unhealthy():
    ready = CheckDefinition.from_json({"protocol": "HTTP", "gracePeriodSeconds": 0, "intervalSeconds": 1,
                                       "timeoutSeconds": 1, "maxConsecutiveFailures": 1})
    checks = WorkerChecks.start("w", [], [ready], now=0.0)
    for now in range(10):
        assert checks.record(checks.readiness[0], False, "503", float(now)) == []


def test_check_definitions_use_marathons_fields_and_defaults():
    c = CheckDefinition.from_json({"protocol": "COMMAND", "command": {"value": "true"}})
    assert (c.grace_period_s, c.interval_s, c.timeout_s, c.max_consecutive_failures) == (300, 60, 20, 3)
    assert c.to_json()["command"] == "true"
    assert CheckDefinition.from_json({"path": "/h", "httpStatusCodes": [204]}).accepts_status(204)
    assert not CheckDefinition.from_json({"path": "/h", "httpStatusCodes": [204]}).accepts_status(200)
    assert CheckDefinition.from_json({}).accepts_status(302)


@pytest.mark.parametrize("bad, message", [
    ({"protocol": "UDP"}, "protocol must be one of"),
    ({"protocol": "COMMAND"}, "command is required"),
    ({"protocol": "TCP", "path": "/x"}, "only for an HTTP check"),
    ({"intervalSeconds": 1, "timeoutSeconds": 5}, "must not exceed intervalSeconds"),
    ({"maxConsecutiveFailures": -1}, "at least 0"),
    ({"pth": "/x"}, "unknown field"),
])
def test_bad_checks_are_refused_with_the_field_named(bad, message):
    with pytest.raises(ValidationError, match=message):
        StageSchedulingInfo.from_json({"healthChecks": [bad]})
