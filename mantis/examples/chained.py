"""A chained job: another job's output, passed through and tagged with where it came from.

Entry point ``mantis.examples.chained:job``.  The source reads the upstream job's output
through the master (``mantis.runtime.job_source``); the one stage passes every event
on, a dict event with ``upstreamJobId`` added (any other event wrapped as
``{"value": event, "upstreamJobId": ...}``), so a consumer sees which upstream job
each event came from, even across a switch.  With ``tag`` false events pass unchanged.

Parameters (exactly one of the first two):

- ``upstreamJobId``: follow this job; the chained job completes when it ends;
- ``upstreamCluster``: follow the cluster's latest active job, moving to the next one
  when it is replaced (killed, and another submitted);
- ``tag``: add ``upstreamJobId`` to each event (default true).
"""
from __future__ import annotations

from typing import Any

import reactivex
from reactivex import operators as ops

from mantis.examples.parameters import parsed_by
from mantis.model.codec import ValidationError
from mantis.model.definitions import cluster_name
from mantis.model.ids import parse_job_id
from mantis.runtime.job_source import UpstreamEvent, job_output_source
from mantis.sdk.job_dsl import Context, Job, ParameterDefinition, ParameterError

TAG_FIELD = "upstreamJobId"


_is_job_id = parsed_by(parse_job_id, ValidationError)
_is_cluster_name = parsed_by(lambda text: cluster_name(text, "upstreamCluster"), ValidationError)


def resolve_upstream(parameters: dict, own_job_id: str | None = None) -> dict:
    """``{"job_id": id}`` or ``{"cluster": name}`` from resolved parameters.

    Raises ParameterError unless exactly one of ``upstreamJobId`` and ``upstreamCluster``
    is set, or when it names the chained job itself (``own_job_id``) or its own cluster:
    a job reading its own output would feed on itself.
    """
    job_id, cluster = parameters.get("upstreamJobId"), parameters.get("upstreamCluster")
    if (job_id is None) == (cluster is None):
        given = "both" if job_id is not None else "neither"
        raise ParameterError(f"give exactly one of parameters 'upstreamJobId' and 'upstreamCluster' "
                             f"({given} given)")
    if own_job_id is not None:
        own_cluster = parse_job_id(own_job_id)[0]
        if job_id == own_job_id or cluster == own_cluster:
            raise ParameterError(f"job {own_job_id} cannot read its own output "
                                 f"(upstream {job_id or cluster})")
    return {"job_id": job_id} if job_id is not None else {"cluster": cluster}


def upstream_events(context: Context) -> reactivex.Observable:
    """The source: ``UpstreamEvent``s of the upstream job's output (ParameterError for bad parameters)."""
    return job_output_source(context, **resolve_upstream(context.parameters, context.job_id))


def tag_with_upstream(events: reactivex.Observable, context: Context) -> reactivex.Observable:
    """The stage: each upstream event, tagged with its job id when ``tag`` is true."""
    def untagged(upstream: UpstreamEvent) -> Any:
        return upstream.event

    if not context.parameters["tag"]:
        return events.pipe(ops.map(untagged))

    def tag(upstream: UpstreamEvent) -> dict:
        event = upstream.event
        if isinstance(event, dict):
            # Decoded afresh from the upstream's JSON for this job only: safe to tag in place.
            event[TAG_FIELD] = upstream.job_id
            return event
        return {"value": event, TAG_FIELD: upstream.job_id}

    return events.pipe(ops.map(tag))


job = Job(
    name="chained",
    description="Another job's output (by job id or by cluster), tagged with the upstream job id.",
    source=upstream_events,
    stage=tag_with_upstream,
    validate=resolve_upstream,
    parameters=[
        ParameterDefinition("upstreamJobId", "string",
                            validator=(_is_job_id, "must be a job id of the form <clusterName>-<n>"),
                            description="the job whose output to read"),
        ParameterDefinition("upstreamCluster", "string",
                            validator=(_is_cluster_name, "must be a job cluster name"),
                            description="the cluster whose latest active job's output to read"),
        ParameterDefinition("tag", "bool", default=True,
                            description=f"add '{TAG_FIELD}' to every event"),
    ],
)
