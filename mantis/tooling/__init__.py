"""Tooling for tests, benchmarks and scale runs: local processes, a ZooKeeper server, simulated agents.

Nothing a worker imports lives here."""
