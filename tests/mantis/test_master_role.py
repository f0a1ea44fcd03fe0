"""The master role table: standby, leading, stopped, and the record of terms."""
import pytest

from mantis.ha.master_role import LEADING, STANDBY, STOPPED, MasterRole
from mantis.lifecycles.tables import TransitionRejected


def test_elected_then_lost_records_one_closed_term():
    role = MasterRole()
    assert role.change("elected", now=10.0) == LEADING and role.leading
    assert role.change("lost", now=12.5) == STANDBY and not role.leading
    assert role.describe() == {"role": STANDBY, "terms": [[10.0, 12.5]]}


def test_a_second_election_opens_a_second_term():
    role = MasterRole()
    role.change("elected", now=1.0)
    role.change("lost", now=2.0)
    role.change("elected", now=3.0)
    assert role.describe()["terms"] == [[1.0, 2.0], [3.0, None]]


@pytest.mark.parametrize("events,rejected", [
    ([], "lost"),                     # a standby has nothing to lose
    (["elected"], "elected"),         # no second term inside a term
    (["stop"], "elected"),            # stopped is terminal
])
def test_role_changes_out_of_order_are_rejected_with_the_reason(events, rejected):
    role = MasterRole()
    for event in events:
        role.change(event)
    with pytest.raises(TransitionRejected, match=f"'{rejected}' is not allowed"):
        role.change(rejected)


def test_stopping_a_leader_closes_its_term():
    role = MasterRole()
    role.change("elected", now=5.0)
    assert role.change("stop", now=6.0) == STOPPED
    assert role.describe()["terms"] == [[5.0, 6.0]]
