#!/usr/bin/env bash
# Install the project and run the embedded default: master, local agent, demo job output.
# Usage: bash scripts/up.sh [mantis up args...]
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q -e .
exec mantis up "$@"
