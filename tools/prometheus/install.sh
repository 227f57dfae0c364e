#!/usr/bin/env bash
# Prometheus and promtool from Debian's `prometheus` package, for tests/observability.
# Skips when promtool is already on PATH. Never starts the Debian service: the tests start
# their own Prometheus on a free port with a temporary config and data directory.
set -euo pipefail

if command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; then
	exit 0
fi

SUDO=""
if [ "$(id -u)" != "0" ]; then
	command -v sudo >/dev/null 2>&1 || { echo "tools/prometheus/install.sh: need root or sudo to apt-get install prometheus" >&2; exit 1; }
	SUDO="sudo"
fi

# policy-rc.d answering 101 stops dpkg from starting (or enabling) the packaged service;
# where systemd is not running there is nothing to start anyway.
POLICY=/usr/sbin/policy-rc.d
CREATED_POLICY=""
if [ ! -e "$POLICY" ]; then
	printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
	$SUDO chmod +x "$POLICY"
	CREATED_POLICY=1
fi
cleanup() { if [ -n "$CREATED_POLICY" ]; then $SUDO rm -f "$POLICY"; fi; }
trap cleanup EXIT

echo "installing prometheus (Debian package: prometheus, promtool) …" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
# Belt and braces: should a service manager have started it, stop it (it would hold :9090).
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
	$SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
command -v promtool >/dev/null && command -v prometheus >/dev/null
