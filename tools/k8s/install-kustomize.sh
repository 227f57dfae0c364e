#!/usr/bin/env bash
# Build the real kustomize CLI from the Go module proxy, once, into a cache, so the manifests in
# deploy/k8s are rendered by the same code `kubectl apply -k` runs (no cluster needed).
# v5.8.2 is the newest that builds with the machine's Go 1.26 (v5.8.3 needs Go 1.27).
# Prints the binary's path on the last line. Skips the build when the cached binary runs.
set -euo pipefail

VERSION="${KUSTOMIZE_VERSION:-v5.8.2}"
CACHE_DIR="${KUSTOMIZE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hrl-kustomize/$VERSION}"
BIN="$CACHE_DIR/kustomize"

log() { echo "kustomize: $*" >&2; }

cached() { [ -x "$BIN" ] && "$BIN" version >/dev/null 2>&1; }

if cached; then
	log "cached $BIN ($VERSION)"
	echo "$BIN"
	exit 0
fi

if ! command -v go >/dev/null 2>&1; then
	for d in /usr/local/go/bin /usr/lib/go/bin; do [ -x "$d/go" ] && PATH="$d:$PATH"; done
fi
command -v go >/dev/null 2>&1 || { log "Go 1.26+ is needed to build kustomize $VERSION"; exit 1; }

mkdir -p "$CACHE_DIR"
# One build at a time: a second caller (make test and a developer's pytest) waits for the first.
exec 9>"$CACHE_DIR/.lock"
if ! flock -n 9; then
	log "another build of $VERSION is running; waiting for it"
	flock 9
fi
if cached; then
	log "built meanwhile: $BIN"
	echo "$BIN"
	exit 0
fi

SCRATCH="$(mktemp -d)"
start=$SECONDS
log "building kustomize $VERSION from the Go module proxy (once; a few minutes on 2 cores)"
# Progress: the build is silent for minutes, so say it is alive every 60 s.
( while sleep 60; do log "  still building ($((SECONDS - start)) s)"; done ) &
ticker=$!
trap 'kill "$ticker" 2>/dev/null || true; rm -rf "$SCRATCH"' EXIT
# The module's go.mod has no replace/exclude directives, so plain `go install` takes it. The
# machine's own Go only (no toolchain download); GOBIN: a scratch folder, moved in when whole.
(cd "$SCRATCH" && GOTOOLCHAIN=local GOBIN="$SCRATCH/bin" GOFLAGS=-trimpath \
	go install -ldflags "-s -w" "sigs.k8s.io/kustomize/kustomize/v5@$VERSION")
mv -f "$SCRATCH/bin/kustomize" "$BIN"
log "built $BIN in $((SECONDS - start)) s: $("$BIN" version)"
echo "$BIN"
