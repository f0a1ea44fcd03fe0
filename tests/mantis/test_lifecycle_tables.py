"""Every allowed transition of the worker and job tables, and a sample of rejected ones."""
import pytest

from mantis.lifecycles.cluster_state import CLUSTER_TABLE
from mantis.lifecycles.job_state import JOB_TABLE
from mantis.lifecycles.tables import TransitionRejected
from mantis.lifecycles.worker_state import WORKER_TABLE

WORKER_ALLOWED = [
    ("Accepted", "launch", "Launched"), ("Accepted", "fail", "Failed"), ("Accepted", "complete", "Completed"),
    ("Launched", "start_initiated", "StartInitiated"), ("Launched", "started", "Started"),
    ("Launched", "fail", "Failed"), ("Launched", "complete", "Completed"),
    ("StartInitiated", "started", "Started"), ("StartInitiated", "fail", "Failed"),
    ("StartInitiated", "complete", "Completed"),
    ("Started", "fail", "Failed"), ("Started", "complete", "Completed"),
]
WORKER_REJECTED = [
    ("Accepted", "started"), ("Accepted", "start_initiated"), ("Started", "launch"),
    ("Started", "start_initiated"), ("Completed", "launch"), ("Completed", "fail"),
    ("Failed", "started"), ("Failed", "complete"), ("StartInitiated", "launch"),
]
JOB_ALLOWED = [
    ("Accepted", "launch", "Launched"), ("Accepted", "kill_normal", "Terminating_normal"),
    ("Accepted", "kill_abnormal", "Terminating_abnormal"), ("Accepted", "fail", "Failed"),
    ("Accepted", "complete", "Completed"),
    ("Launched", "kill_normal", "Terminating_normal"), ("Launched", "kill_abnormal", "Terminating_abnormal"),
    ("Launched", "fail", "Failed"), ("Launched", "complete", "Completed"),
    ("Terminating_abnormal", "terminated", "Failed"), ("Terminating_normal", "terminated", "Completed"),
]
JOB_REJECTED = [
    ("Launched", "launch"), ("Terminating_normal", "kill_normal"), ("Terminating_abnormal", "launch"),
    ("Completed", "launch"), ("Failed", "kill_normal"), ("Completed", "terminated"),
]


@pytest.mark.parametrize("state,event,target", WORKER_ALLOWED)
def test_worker_table_allows_mantis_transitions(state, event, target):
    assert WORKER_TABLE.next_state(state, event) == target


@pytest.mark.parametrize("state,event", WORKER_REJECTED)
def test_worker_table_rejects_other_transitions_with_reason(state, event):
    with pytest.raises(TransitionRejected) as info:
        WORKER_TABLE.next_state(state, event, "j-1/w1")
    assert f"'{event}'" in str(info.value) and state in str(info.value) and "j-1/w1" in str(info.value)


@pytest.mark.parametrize("state,event,target", JOB_ALLOWED)
def test_job_table_allows_mantis_transitions(state, event, target):
    assert JOB_TABLE.next_state(state, event) == target


@pytest.mark.parametrize("state,event", JOB_REJECTED)
def test_job_table_rejects_other_transitions_with_reason(state, event):
    with pytest.raises(TransitionRejected, match="not allowed"):
        JOB_TABLE.next_state(state, event, "j-1")


def test_terminal_states_allow_nothing():
    for table, states in ((WORKER_TABLE, ["Completed", "Failed"]), (JOB_TABLE, ["Completed", "Failed"]),
                          (CLUSTER_TABLE, ["Deleted"])):
        for state in states:
            assert table.is_terminal(state)
            with pytest.raises(TransitionRejected, match="terminal"):
                table.next_state(state, "launch")


def test_cluster_table_rejects_submit_when_disabled():
    assert CLUSTER_TABLE.next_state("Enabled", "disable") == "Disabled"
    assert CLUSTER_TABLE.next_state("Disabled", "enable") == "Enabled"
    with pytest.raises(TransitionRejected, match="submit"):
        CLUSTER_TABLE.next_state("Disabled", "submit", "c")
