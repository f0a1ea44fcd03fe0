"""Constraint specs in Mantis and Marathon vocabulary parse into constraints, or fail
with one clear line."""
import pytest

from scheduler.constraints import (
    HOSTNAME,
    Cluster,
    ClusterAffinity,
    ExclusiveHost,
    GroupBy,
    Is,
    Like,
    MaxPer,
    Unique,
    Unlike,
    ZoneBalance,
    parse_constraint,
)


def test_mantis_names_parse_case_insensitively():
    assert parse_constraint("UniqueHost") == Unique(attribute=HOSTNAME, label="UniqueHost")
    assert parse_constraint("uniquehost") == parse_constraint("UniqueHost")
    assert parse_constraint("UniqueHostPerStage").per_stage is True
    assert isinstance(parse_constraint("ExclusiveHost"), ExclusiveHost)
    balance = parse_constraint(" ZoneBalance ")
    assert isinstance(balance, ZoneBalance) and balance.attribute == "zone" and balance.per_stage


def test_machine_family_affinity_names_are_accepted_and_ignored():
    for name in ("M4Cluster", "M3Cluster", "m5cluster"):
        constraint = parse_constraint(name)
        assert isinstance(constraint, ClusterAffinity)
        assert constraint.bind(None, None) is None and constraint.bind_score(None, None) is None


def test_marathon_operators_parse_with_their_values():
    assert parse_constraint(["hostname", "UNIQUE"]) == Unique(attribute=HOSTNAME)
    assert parse_constraint(["zone", "CLUSTER"]) == Cluster(attribute="zone")
    assert parse_constraint(["zone", "CLUSTER", "a"]) == Cluster(attribute="zone", value="a")
    assert parse_constraint(["zone", "GROUP_BY"]) == GroupBy(attribute="zone", groups=None)
    assert parse_constraint(["zone", "GROUP_BY", "3"]) == GroupBy(attribute="zone", groups=3)
    assert parse_constraint(["rack", "MAX_PER", 2]) == MaxPer(attribute="rack", limit=2)
    assert parse_constraint(["type", "LIKE", "m5.*"]) == Like(attribute="type", pattern="m5.*")
    assert parse_constraint(["type", "UNLIKE", "c5.*"]) == Unlike(attribute="type", pattern="c5.*")
    assert parse_constraint(["zone", "IS", "b"]) == Is(attribute="zone", value="b")


def test_operator_case_hostname_spelling_and_colon_strings_are_equivalent():
    assert parse_constraint(["@hostname", "unique"]) == parse_constraint(["hostname", "UNIQUE"])
    assert parse_constraint(["@zone", "GROUP_BY", "3"]) == parse_constraint(["zone", "GROUP_BY", "3"])
    assert parse_constraint("zone:GROUP_BY:3") == parse_constraint(["zone", "GROUP_BY", "3"])
    assert parse_constraint("type:LIKE:a:b") == Like(attribute="type", pattern="a:b")


def test_empty_optional_values_mean_no_value():
    assert parse_constraint(["zone", "GROUP_BY", ""]) == GroupBy(attribute="zone", groups=None)
    assert parse_constraint(["zone", "CLUSTER", " "]) == Cluster(attribute="zone", value=None)


def test_labels_name_the_rule_in_the_users_vocabulary():
    assert parse_constraint(["hostname", "UNIQUE"]).label == "UNIQUE hostname"
    assert parse_constraint(["zone", "GROUP_BY", "3"]).label == "GROUP_BY zone 3"
    assert parse_constraint(["type", "LIKE", "m5.*"]).label == "LIKE type m5.*"
    assert parse_constraint("UniqueHost").label == "UniqueHost"


def test_a_parsed_constraint_passes_through_unchanged():
    constraint = Like(attribute="type", pattern="x")
    assert parse_constraint(constraint) is constraint


def test_equal_specs_give_equal_hashable_constraints():
    a, b = parse_constraint(["type", "LIKE", "m5.*"]), parse_constraint(["type", "LIKE", "m5.*"])
    assert a == b and hash(a) == hash(b) and a is not b
    assert parse_constraint(["type", "LIKE", "m5.*"]) != parse_constraint(["type", "UNLIKE", "m5.*"])


@pytest.mark.parametrize("spec, message", [
    ("Foo", "unknown constraint 'Foo': expected UniqueHost"),
    ("", "unknown constraint ''"),
    (42, "constraint must be a name or a [field, OPERATOR, value] list, got int"),
    ({"field": "zone"}, "got dict"),
    (["zone"], "must be [field, OPERATOR] or [field, OPERATOR, value]"),
    (["zone", "GROUP_BY", "3", "x"], "must be [field, OPERATOR] or [field, OPERATOR, value]"),
    (["zone", "NEAR"], "unknown operator 'NEAR', expected one of UNIQUE, CLUSTER"),
    (["zone", 7], "unknown operator 7"),
    (["", "UNIQUE"], "field must be a non-empty string"),
    (["@", "UNIQUE"], "field must be a non-empty string"),
    ([3, "UNIQUE"], "field must be a non-empty string"),
    (["hostname", "UNIQUE", "x"], "UNIQUE takes no value"),
    (["zone", "MAX_PER"], "MAX_PER needs a value"),
    (["zone", "LIKE", ""], "LIKE needs a value"),
    (["zone", "IS"], "IS needs a value"),
    (["zone", "MAX_PER", "two"], "MAX_PER value must be a positive integer, got 'two'"),
    (["zone", "GROUP_BY", "0"], "GROUP_BY value must be a positive integer, got '0'"),
    (["zone", "GROUP_BY", -1], "GROUP_BY value must be a positive integer"),
    (["type", "LIKE", "(m5"], "LIKE value is not a valid regular expression"),
    (["zone", "IS", ["a"]], "value must be a string or a number"),
    (["zone", "IS", True], "value must be a string or a number"),
])
def test_bad_specs_raise_one_clear_line(spec, message):
    with pytest.raises(ValueError) as caught:
        parse_constraint(spec)
    text = str(caught.value)
    assert message in text
    assert "\n" not in text


def test_worker_request_parses_its_specs_and_rejects_bad_ones():
    from tests.scheduler.builders import request

    built = request("j/w0", hard=["UniqueHost", ["zone", "GROUP_BY"]], soft=["ZoneBalance"])
    assert built.hard_constraints == [parse_constraint("UniqueHost"), GroupBy(attribute="zone")]
    assert isinstance(built.soft_constraints[0], ZoneBalance)
    assert not built.exclusive and request("j/w1", hard=["ExclusiveHost"]).exclusive
    with pytest.raises(ValueError, match="unknown operator 'NEAR'"):
        request("j/w2", hard=[["zone", "NEAR"]])
    with pytest.raises(ValueError, match="cpus must not be negative"):
        request("j/w3", cpus=-1)
