"""The job DSL: finding a job by entry point, and resolving a submission's parameters."""
import sys
import textwrap

import pytest
import reactivex

from mantis.sdk.job_dsl import (
    Context,
    Job,
    JobLoadError,
    ParameterDefinition,
    ParameterError,
    at_least,
    load_job,
    resolve_parameters,
)


def a_job(*parameters):
    return Job("j", lambda c: reactivex.empty(), lambda events, c: events, parameters=list(parameters))


@pytest.fixture
def user_package(tmp_path, monkeypatch):
    """A package ``userjobs`` on sys.path, with modules written by each test."""
    package = tmp_path / "userjobs"
    package.mkdir()
    (package / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(module, source):
        (package / f"{module}.py").write_text(textwrap.dedent(source))
        return f"userjobs.{module}"

    yield write
    for name in [n for n in sys.modules if n == "userjobs" or n.startswith("userjobs.")]:
        del sys.modules[name]


JOB_MODULE = """
    import reactivex
    from mantis.sdk.job_dsl import Job
    job = Job("mine", lambda c: reactivex.empty(), lambda events, c: events)
    def make_job():
        return job
    class Jobs:
        nested = job
    not_a_job = 42
    def broken_factory():
        raise RuntimeError("factory blew up")
"""


# -- load_job ------------------------------------------------------------------------

def test_load_job_finds_a_job_attribute(user_package):
    module = user_package("good", JOB_MODULE)
    assert load_job(f"{module}:job").name == "mine"


def test_load_job_calls_a_zero_argument_factory(user_package):
    module = user_package("good", JOB_MODULE)
    assert load_job(f"{module}:make_job").name == "mine"


def test_load_job_follows_a_dotted_attribute(user_package):
    module = user_package("good", JOB_MODULE)
    assert load_job(f"{module}:Jobs.nested").name == "mine"


def test_shipped_examples_load():
    assert load_job("mantis.examples.synthetic:job").name == "synthetic"
    assert load_job("mantis.examples.word_count:job").name == "word_count"


@pytest.mark.parametrize("entry_point", ["mantis.examples.synthetic", "a:b:c", ":job", "module:", ""])
def test_load_job_rejects_a_malformed_entry_point(entry_point):
    with pytest.raises(JobLoadError, match="must look like 'package.module:attribute'"):
        load_job(entry_point)


def test_load_job_reports_a_missing_module():
    with pytest.raises(JobLoadError, match=r"^module 'no_such_pkg.jobs' not found"):
        load_job("no_such_pkg.jobs:job")


def test_load_job_reports_a_module_whose_own_import_fails(user_package):
    module = user_package("needs_dep", "import not_installed_anywhere\n")
    with pytest.raises(JobLoadError) as caught:
        load_job(f"{module}:job")
    assert str(caught.value) == (f"module '{module}' failed to import: "
                                 "ModuleNotFoundError: No module named 'not_installed_anywhere'")


def test_load_job_reports_a_module_that_raises_on_import(user_package):
    module = user_package("raises", "raise ValueError('bad config')\n")
    with pytest.raises(JobLoadError, match="failed to import: ValueError: bad config"):
        load_job(f"{module}:job")


def test_load_job_reports_a_missing_attribute(user_package):
    module = user_package("good", JOB_MODULE)
    with pytest.raises(JobLoadError, match=f"^module '{module}' has no attribute 'missing'$"):
        load_job(f"{module}:missing")


def test_load_job_rejects_something_that_is_not_a_job(user_package):
    module = user_package("good", JOB_MODULE)
    with pytest.raises(JobLoadError, match=r"is a int, not a Job$"):
        load_job(f"{module}:not_a_job")


def test_load_job_reports_a_factory_that_raises(user_package):
    module = user_package("good", JOB_MODULE)
    with pytest.raises(JobLoadError, match="failed: RuntimeError: factory blew up$"):
        load_job(f"{module}:broken_factory")


def test_load_job_errors_are_one_line(user_package):
    module = user_package("multiline", "raise ValueError('line one\\nline two')\n")
    with pytest.raises(JobLoadError) as caught:
        load_job(f"{module}:job")
    assert "\n" not in str(caught.value)


# -- job and parameter declarations ---------------------------------------------------

def test_job_refuses_missing_or_uncallable_parts():
    with pytest.raises(ValueError, match="source must be callable"):
        Job("j", None, lambda e, c: e)
    with pytest.raises(ValueError, match="non-empty name"):
        Job("", lambda c: reactivex.empty(), lambda e, c: e)


def test_job_refuses_two_parameters_with_one_name():
    with pytest.raises(ValueError, match="declares parameter 'rate' twice"):
        a_job(ParameterDefinition("rate", "int"), ParameterDefinition("rate", "float"))


def test_parameter_declaration_mistakes_are_reported_at_definition():
    with pytest.raises(ValueError, match="use one of string, int, float, bool"):
        ParameterDefinition("rate", "integer")
    with pytest.raises(ValueError, match="required, so it cannot have a default"):
        ParameterDefinition("rate", "int", default=1, required=True)
    with pytest.raises(ValueError, match="default of parameter 'rate' must be a whole number"):
        ParameterDefinition("rate", "int", default="fast")
    with pytest.raises(ValueError, match="validator must be"):
        ParameterDefinition("rate", "int", validator=("not callable", "msg"))


# -- resolve_parameters ---------------------------------------------------------------

def test_defaults_fill_in_what_is_not_supplied_and_undefaulted_optionals_are_none():
    job = a_job(ParameterDefinition("rate", "int", default=50),
                ParameterDefinition("ratio", "float", default=1),
                ParameterDefinition("seed", "int"))
    assert resolve_parameters(job, {}) == {"rate": 50, "ratio": 1.0, "seed": None}


def test_supplied_strings_are_converted_to_the_declared_type():
    job = a_job(ParameterDefinition("rate", "int"), ParameterDefinition("ratio", "float"),
                ParameterDefinition("debug", "bool"), ParameterDefinition("topic", "string"))
    supplied = {"rate": " 20 ", "ratio": "0.5", "debug": "Yes", "topic": "clicks"}
    assert resolve_parameters(job, supplied) == {"rate": 20, "ratio": 0.5, "debug": True, "topic": "clicks"}


def test_json_scalars_are_accepted_where_they_fit():
    job = a_job(ParameterDefinition("rate", "int"), ParameterDefinition("ratio", "float"),
                ParameterDefinition("debug", "bool"), ParameterDefinition("topic", "string"))
    supplied = {"rate": 20.0, "ratio": 2, "debug": 0, "topic": 7}
    assert resolve_parameters(job, supplied) == {"rate": 20, "ratio": 2.0, "debug": False, "topic": "7"}


@pytest.mark.parametrize("kind, value, reason", [
    ("int", "fast", "must be a whole number, got 'fast'"),
    ("int", 2.5, "must be a whole number, got 2.5"),
    ("int", True, "must be a whole number, got True"),
    ("float", "nan", "must be a finite number, got 'nan'"),
    ("float", "abc", "must be a finite number, got 'abc'"),
    ("bool", "maybe", "must be true or false, got 'maybe'"),
    ("bool", 2, "must be true or false, got 2"),
    ("string", None, "must be a string, got None"),
])
def test_a_value_that_does_not_convert_is_rejected_naming_the_parameter(kind, value, reason):
    job = a_job(ParameterDefinition("p", kind))
    with pytest.raises(ParameterError) as caught:
        resolve_parameters(job, {"p": value})
    assert str(caught.value) == f"parameter 'p' {reason}"


def test_a_missing_required_parameter_is_rejected():
    job = a_job(ParameterDefinition("topic", "string", required=True))
    with pytest.raises(ParameterError, match="^parameter 'topic' is required$"):
        resolve_parameters(job, {})
    assert resolve_parameters(job, {"topic": "t"}) == {"topic": "t"}


def test_an_unknown_parameter_is_rejected_listing_the_declared_ones():
    job = a_job(ParameterDefinition("rate", "int"), ParameterDefinition("keys", "int"))
    with pytest.raises(ParameterError) as caught:
        resolve_parameters(job, {"rte": "5"})
    assert str(caught.value) == "unknown parameter 'rte' for job 'j' (it declares: rate, keys)"


def test_a_validator_with_a_message_explains_the_rejection():
    job = a_job(ParameterDefinition("rate", "int", default=5, validator=at_least(0)))
    with pytest.raises(ParameterError) as caught:
        resolve_parameters(job, {"rate": "-1"})
    assert str(caught.value) == "parameter 'rate' = -1 is invalid: must be at least 0"
    assert resolve_parameters(job, {"rate": "0"}) == {"rate": 0}


def test_a_plain_validator_and_a_raising_validator_are_both_reported():
    plain = a_job(ParameterDefinition("name", "string", validator=str.isidentifier))
    with pytest.raises(ParameterError, match=r"^parameter 'name' = '1x' is invalid: rejected by its validator$"):
        resolve_parameters(plain, {"name": "1x"})
    raising = a_job(ParameterDefinition("n", "int", validator=lambda v: 1 / v > 0))
    with pytest.raises(ParameterError, match=r"^parameter 'n' = 0 is invalid: ZeroDivisionError"):
        resolve_parameters(raising, {"n": 0})


def test_defaults_are_validated_too():
    job = a_job(ParameterDefinition("rate", "int", default=-5, validator=at_least(0)))
    with pytest.raises(ParameterError, match="parameter 'rate' = -5 is invalid"):
        resolve_parameters(job, {})


def test_context_carries_a_fresh_stop_signal_per_worker():
    a, b = Context("j-1"), Context("j-1")
    a.stopped.set()
    assert not b.stopped.is_set()
    assert (b.worker_index, b.stage_number, b.parameters) == (0, 1, {})
