#!/usr/bin/env bash
# The Go command-line tools the deploy checks run, built once from the Go module proxy into a
# cache (no Docker engine, no cluster needed):
#
#   compose    the real Docker Compose v2 CLI: `docker compose config -q` checks docker-compose.yml
#              with the parser Docker itself uses (unknown keys, bad types, unset variables)
#   kustomize  the real kustomize: renders deploy/k8s with the code `kubectl apply -k` runs
#
#   install.sh TOOL               build unless cached (waits for a build already running);
#                                 prints the binary's path on the last line
#   install.sh TOOL --background  start that build detached and return at once (make test runs
#                                 the Compose build while lint and mypy run; a later call waits)
#   install.sh TOOL --path        print where the binary is (or will be) and exit
#
# Versions: COMPOSE_VERSION, KUSTOMIZE_VERSION; cache folders: COMPOSE_CACHE_DIR,
# KUSTOMIZE_CACHE_DIR (default ~/.cache/hrl-<tool>/<version>).
set -euo pipefail

usage() {
	echo "usage: $0 compose|kustomize [--path|--background]" >&2
	exit 2
}

TOOL="${1:-}"
case "$TOOL" in
compose)
	VERSION="${COMPOSE_VERSION:-v2.40.3}"
	CACHE_DIR="${COMPOSE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hrl-compose/$VERSION}"
	BIN="$CACHE_DIR/docker-compose"
	NEEDS="Go 1.24+"
	;;
kustomize)
	# v5.8.2 is the newest that builds with the machine's Go 1.26 (v5.8.3 needs Go 1.27).
	VERSION="${KUSTOMIZE_VERSION:-v5.8.2}"
	CACHE_DIR="${KUSTOMIZE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hrl-kustomize/$VERSION}"
	BIN="$CACHE_DIR/kustomize"
	NEEDS="Go 1.26+"
	;;
*) usage ;;
esac
LOG="$CACHE_DIR/build.log"

log() { echo "$TOOL: $*" >&2; }
cached() { [ -x "$BIN" ] && "$BIN" version >/dev/null 2>&1; }

# Into $1 (a file). Compose: `go install` refuses the module (its go.mod has exclude
# directives), hence a scratch module, `go get -tool` and `go build`: ~6 min of CPU on 2 cores.
build_compose() {
	go mod init compose-build >/dev/null 2>&1
	log "[1/2] go get -tool github.com/docker/compose/v2/cmd@$VERSION"
	go get -tool "github.com/docker/compose/v2/cmd@$VERSION" 2>&1 | tail -n 3 >&2
	log "[2/2] go build (modules fetched after $((SECONDS - start)) s)"
	go build -trimpath -ldflags "-s -w -X github.com/docker/compose/v2/internal.Version=$VERSION" \
		-o "$1" github.com/docker/compose/v2/cmd
}

# kustomize's go.mod has no replace/exclude directives, so plain `go install` takes it (~2.5 min
# of CPU); with the machine's own Go only (no toolchain download).
build_kustomize() {
	GOTOOLCHAIN=local GOBIN="$PWD/bin" GOFLAGS=-trimpath go install -ldflags "-s -w" "sigs.k8s.io/kustomize/kustomize/v5@$VERSION"
	mv -f bin/kustomize "$1"
}

# All in one function: bash reads it whole before running it, so the file may be edited (a git
# pull) while a build runs.
main() {
	case "${2:-}" in
	--path)
		echo "$BIN"
		exit 0
		;;
	--background)
		if cached; then
			log "cached $BIN"
			exit 0
		fi
		mkdir -p "$CACHE_DIR"
		log "building $TOOL $VERSION in the background (log: $LOG)"
		setsid nohup bash "$0" "$TOOL" >"$LOG" 2>&1 </dev/null &
		exit 0
		;;
	"") ;;
	*) usage ;;
	esac

	if cached; then
		log "cached $BIN ($VERSION)"
		echo "$BIN"
		exit 0
	fi

	if ! command -v go >/dev/null 2>&1; then
		for d in /usr/local/go/bin /usr/lib/go/bin; do [ -x "$d/go" ] && PATH="$d:$PATH"; done
	fi
	command -v go >/dev/null 2>&1 || {
		log "$NEEDS is needed to build $TOOL $VERSION"
		exit 1
	}

	mkdir -p "$CACHE_DIR"
	# One build at a time: a second caller (make test and a developer's pytest) waits for the
	# first, and says so every minute.
	exec 9>"$CACHE_DIR/.lock"
	if ! flock -n 9; then
		waited=0
		until flock -w 60 9; do
			waited=$((waited + 60))
			log "waiting for the build already running (${waited} s so far): $(tail -n 1 "$LOG" 2>/dev/null || true)"
		done
	fi
	if cached; then
		log "built meanwhile: $BIN"
		echo "$BIN"
		exit 0
	fi

	SCRATCH="$(mktemp -d)"
	ticker=""
	cleanup() {
		[ -n "$ticker" ] && kill "$ticker" 2>/dev/null
		rm -rf "$SCRATCH" "$BIN.tmp"
	}
	trap cleanup EXIT
	cd "$SCRATCH"
	start=$SECONDS
	log "building $TOOL $VERSION from the Go module proxy (once; minutes on 2 cores)"
	# The build is silent for minutes: say it is alive once a minute.
	(while sleep 60; do log "  still building ($((SECONDS - start)) s)"; done) >&2 &
	ticker=$!
	"build_$TOOL" "$BIN.tmp"
	mv -f "$BIN.tmp" "$BIN"
	log "built $BIN in $((SECONDS - start)) s: $("$BIN" version)"
	echo "$BIN"
}

main "$@"
