# One-command entry points. `make up` on a fresh machine: Python 3.11+ and Java 17+ (+ Maven) needed.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Everything the stack creates at run time (Kafka jars and data, SQLite files, keys, logs, mail).
RUN_DIR ?= $(CURDIR)/.run
export RUN_DIR

# uv on PATH, else the one `pip install --user uv` put in ~/.local/bin, else run it as a module
# (works wherever pip put the package, e.g. ~/Library/Python/3.x/bin on macOS).
UV := $(shell command -v uv 2>/dev/null || { [ -x "$(HOME)/.local/bin/uv" ] && echo "$(HOME)/.local/bin/uv"; } || echo "python3 -m uv")

.PHONY: help bootstrap up down status logs clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

bootstrap: ## install uv if absent, then create the environment (uv sync)
	@if ! $(UV) --version >/dev/null 2>&1; then \
		echo "installing uv (python3 -m pip install --user uv) …"; \
		python3 -m pip install --user uv \
		|| python3 -m pip install --user --break-system-packages uv \
		|| python3 -m pip install uv \
		|| { echo "could not install uv: install pip (e.g. apt-get install python3-pip) or uv, then retry"; exit 1; }; \
	fi
	@$(UV) sync --frozen || { echo "uv.lock does not match pyproject.toml: running plain uv sync"; $(UV) sync; }

# The runner's options go through ARGS, e.g. make up ARGS="--base-port 18000 --timeout 180"
# (uv run stack up --help lists them). Labs stop/freeze one process: uv run stack stop|start|restart|pause|resume <name>.
ARGS ?=
# The services' databases: empty (SQLite files, the default) or DB=postgres (a local PostgreSQL
# server under $(RUN_DIR)/postgres, one database per service).
DB ?=

up: bootstrap ## start Kafka, the SMTP sink and the six services; waits for green; Ctrl-C stops all (options: DB=postgres, ARGS="...")
	$(UV) run stack up $(if $(DB),--db $(DB)) $(ARGS)

down: ## stop the stack started by `make up` (from any terminal)
	@$(UV) run stack down

status: ## readiness of every service
	@$(UV) run stack status

logs: ## show and follow every log (make logs s="room kafka" for some)
	@$(UV) run stack logs $(s)

clean: down ## stop the stack, then delete the run folder (.run: databases, Kafka data and jars, logs)
	rm -rf "$(RUN_DIR)"

# ---------------------------------------------------------------------------------------------
# test / lint: maintained by the lead — add those targets below this line.
# ---------------------------------------------------------------------------------------------
.PHONY: test lint typecheck imports pytest fmt kustomize compose-cli compose-cli-start prometheus browser

# compose-cli-start first: the Compose build (minutes, once per machine) runs while lint and mypy do.
test: bootstrap compose-cli-start lint typecheck imports kustomize compose-cli prometheus browser pytest ## everything CI runs: lint, types, architecture, all tests on a real broker

lint: ## ruff: lint rules and formatting
	$(UV) run ruff check .
	$(UV) run ruff format --check .

fmt: ## apply ruff's fixes and formatting
	$(UV) run ruff check --fix .
	$(UV) run ruff format .

typecheck: ## mypy, strict, over the library, the services and the tools
	$(UV) run mypy libs/common/src tools/stack/src tools/contracts tools/k8s services/*/src bench

imports: ## import-linter: services independent, common knows no service, domain free of I/O
	$(UV) run lint-imports

kustomize: ## build the real kustomize once (Go module proxy; cached): tests/deploy renders deploy/k8s with it
	@bash tools/go-tools/install.sh kustomize >/dev/null

prometheus: ## promtool and prometheus from Debian's package, unless present (tests/observability, tests/e2e/test_alerts.py)
	@bash tools/prometheus/install.sh

browser: ## Debian's Chromium for the browser tests (Playwright drives /usr/bin/chromium), unless present
	@sh tools/browser/install.sh

compose-cli-start: ## start building the Docker Compose v2 CLI in the background, unless cached
	@bash tools/go-tools/install.sh compose --background

compose-cli: ## the real Docker Compose v2 CLI, built once (Go module proxy; cached): tests/deploy checks docker-compose.yml with it
	@bash tools/go-tools/install.sh compose >/dev/null

pytest: ## unit, integration (real Kafka broker, real SQLite) and end-to-end tests
	$(UV) run pytest -q

.PHONY: bench
bench: bootstrap ## the benchmark suite on a stack of its own: prints the table, writes bench/results/<date>-*.json|md|png (ARGS="--smoke", "--db postgres", "--only hop")
	$(UV) run python -m bench $(ARGS)

.PHONY: contracts
contracts: ## regenerate contracts/openapi/<service>.yaml from the code (make test fails while they differ)
	$(UV) run python tools/contracts/openapi.py
