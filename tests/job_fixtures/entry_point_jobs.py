"""Job modules for the entry point checker tests; each misbehaves differently on import.

This module itself is well behaved: a job with one validated parameter.  Its siblings
``hangs_on_import`` and ``exits_on_import`` are not, and must only ever be imported in
a child process.
"""
import reactivex

from mantis.sdk.job_dsl import Job, ParameterDefinition, at_least

print("entry_point_jobs imported (this line must not reach the check's answer)")

job = Job("fixture", lambda context: reactivex.empty(), lambda events, context: events,
          parameters=[ParameterDefinition("rate", "int", default=1, validator=at_least(0))])
