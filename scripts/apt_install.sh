#!/usr/bin/env bash
# Install Debian packages non-interactively: scripts/apt_install.sh PACKAGE...
# Uses sudo when not run as root.  The install_*.sh scripts call it once they have
# found that what they need is missing.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q "$@"
