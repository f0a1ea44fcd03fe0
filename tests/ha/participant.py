"""A leader-election participant in a process of its own, for kill -9 tests.

    python tests/ha/participant.py <hosts> <path> <session_timeout> <description JSON>

Prints ``elected <monotonic time>`` and ``lost <monotonic time>`` lines as they happen
and runs until killed.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from mantis.ha.leader_election import LeaderElection  # noqa: E402


def main() -> None:
    hosts, path, session_timeout, description = sys.argv[1:5]
    election = LeaderElection(
        hosts, path, json.loads(description), session_timeout=float(session_timeout),
        on_elected=lambda lease: print(f"elected {time.monotonic()}", flush=True),
        on_lost=lambda: print(f"lost {time.monotonic()}", flush=True))
    election.start()
    print("started", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
