"""A job's SLA on a fixed clock: subscription timeout, runtime limit, minimum runtime."""
from mantis.lifecycles.job_sla import JobSlaTerms, JobSlaWatch, KillForSla
from mantis.model.definitions import JobDefinition, JobSla

T0 = 1_000.0


def watch(**terms) -> JobSlaWatch:
    return JobSlaWatch(JobSlaTerms(**terms), since=T0 - 10)


def test_terms_come_from_the_job_definition():
    d = JobDefinition(job_sla=JobSla(runtime_limit_secs=60, min_runtime_secs=5, duration_type="Transient"),
                      subscription_timeout_secs=30)
    assert JobSlaTerms.of(d) == JobSlaTerms(True, 30.0, 60.0, 5.0)
    assert not JobSlaTerms.of(JobDefinition()).applies  # Perpetual, no limit: never killed


def test_a_transient_job_without_subscribers_is_killed_after_its_timeout():
    w = watch(transient=True, subscription_timeout_s=30)
    assert w.check(T0 - 5, None, 0) is None  # not started yet: no rule applies
    assert w.check(T0 + 29, T0, 0) is None
    kill = w.check(T0 + 30, T0, 0)
    assert isinstance(kill, KillForSla) and kill.reason == "SLA" and "subscriptionTimeoutSecs 30" in kill.message


def test_a_subscribed_transient_job_is_not_killed_and_the_timeout_counts_from_the_last_subscriber():
    w = watch(transient=True, subscription_timeout_s=30)
    for t in range(0, 300, 10):
        assert w.check(T0 + t, T0, 1) is None
    assert w.check(T0 + 310, T0, 0) is None  # last seen subscribed at T0 + 290
    assert w.check(T0 + 319, T0, 0) is None
    assert w.check(T0 + 320, T0, 0).reason == "SLA"


def test_a_perpetual_job_without_subscribers_is_not_killed():
    assert watch(transient=False, subscription_timeout_s=30).check(T0 + 10_000, T0, 0) is None


def test_min_runtime_holds_back_the_subscription_kill():
    w = watch(transient=True, subscription_timeout_s=10, min_runtime_s=60)
    assert w.check(T0 + 59, T0, 0) is None
    assert w.check(T0 + 60, T0, 0).reason == "SLA"


def test_the_runtime_limit_kills_at_its_limit_even_when_subscribed():
    w = watch(runtime_limit_s=120)
    assert w.check(T0 + 119, T0, 3) is None
    kill = w.check(T0 + 120, T0, 3)
    assert kill.reason == "RuntimeLimit" and "runtimeLimitSecs is 120" in kill.message


def test_after_a_master_restart_the_subscription_timeout_counts_from_the_restart():
    w = JobSlaWatch(JobSlaTerms(transient=True, subscription_timeout_s=30), since=T0 + 1000)
    assert w.check(T0 + 1020, T0, 0) is None
    assert w.check(T0 + 1030, T0, 0).reason == "SLA"
