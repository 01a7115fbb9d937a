#!/usr/bin/env bash
# Make sure headless Chromium is installed (Debian's `chromium`), for the UI screenshot test.
# Idempotent: does nothing when /usr/bin/chromium is already there. Needs root for the install (not root and
# missing: says so and exits 0, and the screenshot test skips).
set -euo pipefail

CHROMIUM=/usr/bin/chromium

if [[ -x "$CHROMIUM" ]]; then
    echo "chromium: already installed ($("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM"))"
    exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
    echo "chromium: $CHROMIUM is missing and installing it needs root (apt-get install chromium);" \
        "the UI screenshot test skips" >&2
    exit 0
fi
echo "chromium: installing Debian's chromium package"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium >/dev/null
echo "chromium: installed ($("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM"))"
