#!/bin/sh
# Debian's Chromium for the browser tests (tests/e2e/test_console.py): Playwright drives it at
# /usr/bin/chromium, since Playwright's own browser download cannot work here. Idempotent.
set -eu
if [ -x /usr/bin/chromium ]; then
    exit 0
fi
if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends chromium
/usr/bin/chromium --version
