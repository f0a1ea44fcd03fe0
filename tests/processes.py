"""Re-exported for the tests: real processes live in mantis.local_processes."""
from mantis.local_processes import LocalCluster as Cluster, Service, api, write_config  # noqa: F401
