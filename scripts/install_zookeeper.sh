#!/usr/bin/env bash
# Install Debian's ZooKeeper server (used by the HA store and leader election tests).
# Idempotent: does nothing when /usr/share/zookeeper/bin/zkServer.sh is already there.
# Needs root (or sudo) and a Java runtime, which the package pulls in if missing.
set -euo pipefail

ZK_SERVER=/usr/share/zookeeper/bin/zkServer.sh

if [ -x "$ZK_SERVER" ]; then
    echo "zookeeper already installed: $ZK_SERVER"
    exit 0
fi

bash "$(dirname "$0")/apt_install.sh" zookeeper

# The package installs a service definition; the tests start their own servers on
# loopback, so a system-wide one is neither needed nor started here.
if [ ! -x "$ZK_SERVER" ]; then
    echo "zookeeper package installed but $ZK_SERVER is missing" >&2
    exit 1
fi
echo "zookeeper installed: $ZK_SERVER"
