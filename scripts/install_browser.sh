#!/usr/bin/env bash
# Install Debian's Chromium and its WebDriver (used by the web UI's browser tests).
# Idempotent: does nothing when both chromium and chromedriver are already there.
# Needs root (or sudo).
set -euo pipefail

if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    echo "chromium already installed: $(command -v chromium), $(command -v chromedriver)"
    exit 0
fi

bash "$(dirname "$0")/apt_install.sh" chromium chromium-driver

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    echo "chromium packages installed but chromium or chromedriver is missing" >&2
    exit 1
fi
echo "chromium installed: $(command -v chromium), $(command -v chromedriver)"
