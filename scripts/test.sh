#!/usr/bin/env bash
# Install the project with what its tests need, then run every test.
# Usage: bash scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q -e '.[test,mesos]'   # mesos: the Mesos client, for tests/mesos
bash scripts/install_zookeeper.sh   # a real ZooKeeper for the HA tests (Debian's package)
bash scripts/install_browser.sh     # headless Chromium and its driver for the web UI tests (Debian's)
python3 -m ruff check mantis actors scheduler webapi   # lint (.ruff.toml)
python3 -m mypy                                         # types (setup.cfg [mypy])
exec python3 -m pytest -q "$@"
