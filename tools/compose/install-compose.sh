#!/usr/bin/env bash
# The real Docker Compose v2 CLI, built once from the Go module proxy into a cache, so that
# docker-compose.yml is checked by the parser `docker compose` itself uses (no engine needed):
# `config -q` rejects unknown keys, bad types and unset required variables.
#
#   install-compose.sh               build unless cached (waits for a build already running);
#                                    prints the binary's path on the last line
#   install-compose.sh --background  start that build detached and return at once (make test
#                                    runs it while lint and mypy run; a later plain call waits)
#   install-compose.sh --path        print where the binary is (or will be) and exit
#
# `go install` refuses the module (its go.mod has exclude directives), hence a scratch module
# and `go get -tool` + `go build`. About 6 min of CPU on 2 cores; far longer on a loaded machine.
set -euo pipefail

VERSION="${COMPOSE_VERSION:-v2.40.3}"
CACHE_DIR="${COMPOSE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hrl-compose/$VERSION}"
BIN="$CACHE_DIR/docker-compose"
LOG="$CACHE_DIR/build.log"

log() { echo "compose: $*" >&2; }
cached() { [ -x "$BIN" ] && "$BIN" version >/dev/null 2>&1; }

# All in one function: bash reads it whole before running it, so the file may be edited (a git
# pull) while a build runs.
main() {
	case "${1:-}" in
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
		log "building Docker Compose $VERSION in the background (log: $LOG)"
		setsid nohup bash "$0" >"$LOG" 2>&1 </dev/null &
		exit 0
		;;
	"") ;;
	*)
		echo "usage: $0 [--path|--background]" >&2
		exit 2
		;;
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
		log "Go 1.24+ is needed to build Docker Compose $VERSION"
		exit 1
	}

	mkdir -p "$CACHE_DIR"
	# One build at a time: a second caller waits for the first (and says so every minute).
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
	log "building Docker Compose $VERSION from the Go module proxy (once; minutes on 2 cores)"
	go mod init compose-build >/dev/null 2>&1
	log "[1/2] go get -tool github.com/docker/compose/v2/cmd@$VERSION"
	go get -tool "github.com/docker/compose/v2/cmd@$VERSION" 2>&1 | tail -n 3 >&2
	log "[2/2] go build (modules fetched after $((SECONDS - start)) s)"
	# The build is silent for minutes: say it is alive once a minute.
	(while sleep 60; do log "  still compiling ($((SECONDS - start)) s)"; done) >&2 &
	ticker=$!
	go build -trimpath -ldflags "-s -w -X github.com/docker/compose/v2/internal.Version=$VERSION" \
		-o "$BIN.tmp" github.com/docker/compose/v2/cmd
	mv -f "$BIN.tmp" "$BIN"
	log "built $BIN in $((SECONDS - start)) s: $("$BIN" version)"
	echo "$BIN"
}

main "$@"
