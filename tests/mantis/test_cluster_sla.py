"""The cluster SLA's rules on a fixed clock: min, max with each policy, cron with each policy."""
import pytest

from mantis.lifecycles.cluster_sla import (
    ClusterSla,
    CronClock,
    CronSkipped,
    KillJobs,
    SubmitJobs,
    enforce,
    refusal,
)
from mantis.lifecycles.cluster_state import JobCluster
from mantis.lifecycles.tables import TransitionRejected
from mantis.model.codec import ValidationError
from mantis.model.cron import CronSchedule
from mantis.model.definitions import JobClusterDefinition, JobDefinition

T0 = 1_767_225_600.0  # 2026-01-01 00:00:00 UTC


def definition(**fields) -> JobClusterDefinition:
    return JobClusterDefinition.from_json({"name": "c", "url": "mantis.examples.synthetic:job", **fields})


def test_below_min_the_missing_jobs_are_submitted_counting_pending_submits():
    sla = ClusterSla.of(definition(slaMin=3, slaMax=5))
    assert enforce(sla, True, {"c-1": "Launched"}) == [SubmitJobs(2, "slaMin 3, 1 active")]
    assert enforce(sla, True, {"c-1": "Launched"}, pending=2) == []
    assert enforce(sla, False, {}) == []  # a disabled cluster is left alone


def test_above_max_keep_new_kills_the_oldest_once_the_newer_ones_run():
    sla = ClusterSla.of(definition(slaMax=2, cronPolicy="KEEP_NEW"))
    jobs = {"c-1": "Launched", "c-2": "Launched", "c-3": "Accepted"}
    # c-3 has not started: nothing is killed for it yet.
    assert enforce(sla, True, jobs) == []
    jobs["c-3"] = "Launched"
    [kill] = enforce(sla, True, jobs)
    assert isinstance(kill, KillJobs) and kill.job_ids == ("c-1",)
    jobs.update({"c-4": "Launched", "c-10": "Launched"})  # numbers, not strings, order the jobs
    assert enforce(sla, True, jobs)[0].job_ids == ("c-1", "c-2", "c-3")


def test_above_max_keep_existing_refuses_the_newest_submission():
    sla = ClusterSla.of(definition(slaMax=2, cronPolicy="KEEP_EXISTING"))
    assert refusal(sla, 1) is None
    assert "slaMax" in refusal(sla, 2)
    assert refusal(ClusterSla.of(definition(slaMax=2, cronPolicy="KEEP_NEW")), 2) is None
    # Lowered below what runs: the newest go, the oldest are kept.
    [kill] = enforce(ClusterSla.of(definition(slaMax=1)), True, {"c-1": "Launched", "c-2": "Launched",
                                                                   "c-3": "Accepted"})
    assert kill.job_ids == ("c-2", "c-3")


def test_the_cluster_refuses_a_submit_at_max_only_with_keep_existing():
    keep = JobCluster(definition(slaMax=1), active_jobs=["c-1"])
    with pytest.raises(TransitionRejected, match="KEEP_EXISTING"):
        keep.preview_submit(JobDefinition(user="u"))
    new = JobCluster(definition(slaMax=1, cronPolicy="KEEP_NEW"), active_jobs=["c-1"])
    assert new.preview_submit(JobDefinition(user="u")).name == "c"


def test_a_cron_spec_forces_min_0_and_max_1_and_a_bad_one_is_refused():
    d = definition(slaMin=2, slaMax=5, cronSpec="0 */5 * * * ?")
    assert (d.sla_min, d.sla_max) == (0, 1)
    with pytest.raises(ValidationError, match="cronSpec"):
        definition(cronSpec="every five minutes")


def test_quartz_specs_have_seconds_first_and_sunday_as_1():
    assert CronSchedule.parse("*/3 * * ? * *").next_after(T0) == T0 + 3
    monday_noon = T0 + 4 * 86400 + 12 * 3600  # 2026-01-01 is a Thursday
    assert CronSchedule.parse("0 0 12 ? * 2").next_after(T0) == monday_noon  # Quartz: 2 = Monday
    assert CronSchedule.parse("0 12 * * 1").next_after(T0) == monday_noon  # Unix: 1 = Monday


def test_cron_keep_existing_skips_a_firing_while_a_job_runs():
    sla = ClusterSla.of(definition(cronSpec="*/5 * * * * ?"))
    clock = CronClock()
    assert clock.due(sla, True, {}, T0) == []  # arms for T0 + 5
    assert clock.next_fire == T0 + 5
    assert clock.due(sla, True, {}, T0 + 4.9) == []
    assert clock.due(sla, True, {}, T0 + 5) == [SubmitJobs(1, "cron '*/5 * * * * ?'", by_cron=True)]
    [skipped] = clock.due(sla, True, {"c-1": "Launched"}, T0 + 10)
    assert isinstance(skipped, CronSkipped)
    # A submission still being checked counts as running too.
    assert isinstance(clock.due(sla, True, {}, T0 + 15, pending=1)[0], CronSkipped)


def test_cron_keep_new_submits_and_max_1_then_kills_the_old_job():
    sla = ClusterSla.of(definition(cronSpec="*/5 * * * * ?", cronPolicy="KEEP_NEW"))
    clock = CronClock()
    clock.due(sla, True, {}, T0)
    [submit] = clock.due(sla, True, {"c-1": "Launched"}, T0 + 5)
    assert isinstance(submit, SubmitJobs) and submit.count == 1
    assert enforce(sla, True, {"c-1": "Launched", "c-2": "Launched"})[0].job_ids == ("c-1",)


def test_cron_fires_once_for_many_missed_moments():
    sla = ClusterSla.of(definition(cronSpec="*/5 * * * * ?"))
    clock = CronClock()
    clock.due(sla, True, {}, T0)
    assert clock.due(sla, True, {}, T0 + 60) == [SubmitJobs(1, "cron '*/5 * * * * ?'", by_cron=True)]
    assert clock.next_fire == T0 + 65


def test_cron_is_paused_while_the_cluster_is_disabled():
    sla = ClusterSla.of(definition(cronSpec="*/5 * * * * ?"))
    clock = CronClock()
    clock.due(sla, True, {}, T0)
    assert clock.due(sla, False, {}, T0 + 5) == [] and clock.next_fire is None
    assert clock.due(sla, False, {}, T0 + 30) == []
    # Enabled again: it waits for the next moment, missed ones are not made up.
    assert clock.due(sla, True, {}, T0 + 31) == [] and clock.next_fire == T0 + 35
    assert clock.due(sla, True, {}, T0 + 35) == [SubmitJobs(1, "cron '*/5 * * * * ?'", by_cron=True)]


def test_a_changed_cron_spec_is_armed_afresh():
    clock = CronClock()
    clock.due(ClusterSla.of(definition(cronSpec="0 0 * * * ?")), True, {}, T0)
    assert clock.next_fire == T0 + 3600
    assert clock.due(ClusterSla.of(definition(cronSpec="*/2 * * * * ?")), True, {}, T0 + 1) == []
    assert clock.next_fire == T0 + 2
