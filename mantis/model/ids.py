"""Job and worker identity.

Job ids are ``<clusterName>-<n>``, n counting up per cluster from 1.  A worker is one
slot (stage, index) of a job filled by a numbered incarnation: a replacement takes the
same index and a new, never reused, worker number.
"""
from __future__ import annotations

from mantis.model.codec import ValidationError
from mantis.model.definitions import CLUSTER_NAME


def job_id(cluster: str, n: int) -> str:
    """The id of job number ``n`` of ``cluster``."""
    return f"{cluster}-{n}"


def parse_job_id(text: str) -> tuple[str, int]:
    """(cluster, n) from a job id; ValidationError if it is not ``<cluster>-<n>``."""
    cluster, sep, number = str(text).rpartition("-")
    if not sep or not number.isdigit() or not CLUSTER_NAME.match(cluster) or int(number) < 1:
        raise ValidationError(f"'{text}' is not a job id of the form <clusterName>-<n>")
    return cluster, int(number)


def worker_key(job: str, worker_number: int) -> str:
    """The id of one worker incarnation across the platform: ``<jobId>/w<number>``."""
    return f"{job}/w{worker_number}"


def parse_worker_key(key: str) -> tuple[str, int]:
    """(job id, worker number) from a worker key."""
    job, sep, number = key.rpartition("/w")
    if not sep or not number.isdigit():
        raise ValidationError(f"'{key}' is not a worker key of the form <jobId>/w<number>")
    return job, int(number)
