"""Subscriber filters and sampling: what is allowed, what matches, what is refused."""
import pytest

from mantis.runtime.subscription import Subscription, SubscriptionError, compile_filter

EVENT = {"user": "u-1", "value": 72, "tags": {"country": "NL"}, "ok": True}


@pytest.mark.parametrize("text,expected", [
    ("value >= 50", True),
    ("value >= 50 and user == 'u-2'", False),
    ("value > 100 or user in ('u-1', 'u-3')", True),
    ("not (tags.country == 'NL')", False),
    ("tags.country != 'US' and ok == True", True),
    ("missing == None", True),             # a field the event lacks is None
    ("tags.missing.deeper == None", True),
    ("0 < value < 80", True),              # chained comparison
    ("value < -1", False),
    ("user > 5", False),                   # str vs int: no match rather than an error
    ("user not in ['u-2']", True),
])
def test_filter_expressions_match_events_by_their_fields(text, expected):
    assert compile_filter(text)(EVENT) is expected


@pytest.mark.parametrize("text,message", [
    ("__import__('os').system('true')", "Call is not allowed"),
    ("value + 1 > 2", "BinOp is not allowed"),
    ("tags['country'] == 'NL'", "Subscript is not allowed"),
    ("value is None", "may compare only with"),
    ("value >=", "not a valid expression"),
    ("x" * 2001, "longer than"),
])
def test_filters_that_could_run_code_or_do_not_parse_are_refused(text, message):
    with pytest.raises(SubscriptionError, match=message):
        compile_filter(text)


def test_sampling_keeps_the_first_event_of_each_period_per_subscriber():
    select = Subscription.parse(None, "100").sampler()
    assert select([1, 2, 3], now=10.0) == [1]
    assert select([4], now=10.05) == []
    assert select([5, 6], now=10.1) == [5]
    other = Subscription.parse(None, "100").sampler()  # its own state
    assert other([7], now=10.05) == [7]


def test_filter_applies_before_sampling_and_no_options_pass_everything():
    select = Subscription.parse("value > 1", "1000").sampler()
    assert select([{"value": 1}, {"value": 2}, {"value": 3}], now=0.0) == [{"value": 2}]
    everything = Subscription.parse(None, None)
    assert not everything.narrows and everything.sampler()([1, 2], now=0.0) == [1, 2]


@pytest.mark.parametrize("sample,message", [("soon", "whole number"), ("-5", "between 0"),
                                            ("99999999", "between 0")])
def test_bad_sampling_periods_are_refused(sample, message):
    with pytest.raises(SubscriptionError, match=message):
        Subscription.parse(None, sample)
