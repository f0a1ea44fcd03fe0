"""The worker-side runtime: runs a job's stage and moves its events between processes."""
