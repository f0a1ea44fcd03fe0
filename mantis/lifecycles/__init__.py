"""The lifecycles: cluster, job and worker state machines as tables, and the views their watchers see."""
