"""Example jobs shipped with the platform; each module's ``job`` attribute is an entry point."""
