"""High availability: the leader election, the master's role, and finding the leader."""
