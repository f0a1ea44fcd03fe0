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


# -- the role as a machine: table, meta-states, story, invariants --------------------------

def test_every_role_and_event_is_handled_or_rejected_with_a_reason():
    from mantis.ha.master_role import ROLE_TABLE, Role

    assert set(ROLE_TABLE.states) == set(Role)
    for state in Role:
        for event in ROLE_TABLE.events:
            if ROLE_TABLE.allows(state, event):
                assert ROLE_TABLE.next_state(state, event) in Role
            else:
                reason = ROLE_TABLE.reasons[(state, event)]
                with pytest.raises(TransitionRejected, match=reason):
                    ROLE_TABLE.next_state(state, event, "x")


def test_meta_states_cover_every_role_and_only_stopped_is_terminal():
    from mantis.ha.master_role import META_STATES, ROLE_TABLE, TERMINAL_ROLES, Role

    assert set(META_STATES) == set(Role) and TERMINAL_ROLES == {STOPPED}
    for state in Role:
        assert ROLE_TABLE.is_terminal(state) == (state in TERMINAL_ROLES)


def test_the_role_story_records_stimulus_ids_in_order():
    role = MasterRole()
    role.handle("elected", now=1.0, stimulus_id="zk-1")
    with pytest.raises(TransitionRejected):
        role.handle("elected", now=1.5, stimulus_id="zk-2")
    role.handle("lost", now=2.0, stimulus_id="zk-3")
    role.change("stop", now=3.0)
    story = role.story()
    assert [(e.stimulus_id, e.event, e.after) for e in story[:3]] == [
        ("zk-1", "elected", LEADING), ("zk-2", "elected", None), ("zk-3", "lost", STANDBY)]
    assert "no second term inside a term" in story[1].note
    assert story[3].stimulus_id.startswith("role-stop-") and story[3].after == STOPPED


def test_the_role_is_the_string_masterinfo_shows():
    import json

    role = MasterRole()
    role.change("elected", now=1.0)
    assert json.loads(json.dumps(role.describe())) == {"role": "Leading", "terms": [[1.0, None]]}


def test_validate_catches_a_broken_invariant():
    from mantis.lifecycles.tables import InvariantViolation

    role = MasterRole()
    role.change("elected", now=1.0)
    role.validate()
    role.terms[-1][1] = 2.0  # a leader whose term is closed
    with pytest.raises(InvariantViolation, match="no open term"):
        role.validate()
    role.state = STANDBY
    role.terms.append([1.5, None])  # a standby with an open term, out of order
    with pytest.raises(InvariantViolation):
        role.validate()
