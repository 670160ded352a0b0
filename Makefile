# Targets people and CI both run. Every target creates .venv from the hashed lock if needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
# checkov's pins clash with the gateway's, so it gets a virtualenv of its own.
CHECKOV_VENV := $(VENV)/checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install run run-fleet test test-fast lint bench openapi clean redis-server node-tools chromium

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): requirements-dev.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements-dev.lock
	touch $@

$(CHECKOV_STAMP): requirements-checkov.lock
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --require-hashes --no-deps -r requirements-checkov.lock
	touch $@

install: $(STAMP) $(CHECKOV_STAMP) ## create .venv (and .venv/checkov) from the hashed locks

run: $(STAMP) ## start the emulator with sample data and the gateway on 127.0.0.1:8080
	$(BIN)/python -m scripts.run_local

run-fleet: $(STAMP) redis-server ## start the emulator, a redis-server and 3 gateways sharing it on 127.0.0.1:8080-8082
	$(BIN)/python -m scripts.run_fleet

test: lint $(CHECKOV_STAMP) redis-server node-tools chromium ## run lint, then the whole test suite, with coverage
	$(BIN)/python -m pytest --cov --cov-report=term

test-fast: $(STAMP) ## the fast tier: in-process tests only, in seconds (no coverage)
	$(BIN)/python -m pytest -m fast -q

lint: $(STAMP) ## ruff and mypy --strict
	$(BIN)/ruff check app tests emulator scripts bench harness
	$(BIN)/ruff format --check app tests emulator scripts bench harness
	$(BIN)/mypy

bench: $(STAMP) redis-server ## measure the gateway against its ceilings (~5 min; BENCH_ARGS=--quick ~2 min)
	command -v wrk || (apt-get update -qq && apt-get install -y -qq --no-install-recommends wrk)
	$(BIN)/python -m bench $(BENCH_ARGS)

openapi: $(STAMP) ## regenerate openapi.json and schema.graphql
	$(BIN)/python -m app.export

# Fleet mode's tests, its bench cases and `make run-fleet` need a real Redis; Debian's package is Redis 7.
redis-server:
	command -v redis-server >/dev/null || (apt-get update -qq && apt-get install -y -qq --no-install-recommends redis-server)

# The browser tests drive Debian's Chromium with Playwright (never `playwright install`).
chromium:
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium)

# What the tests run with node (npm, pinned by its lockfile): the GraphQL-over-HTTP audit
# suite and the frontends' clients. node is on these machines; Debian's otherwise.
NODE_TESTS := tests/node
node-tools: $(NODE_TESTS)/node_modules/.installed
$(NODE_TESTS)/node_modules/.installed: $(NODE_TESTS)/package-lock.json
	command -v node >/dev/null || (apt-get update -qq && apt-get install -y -qq --no-install-recommends nodejs npm)
	cd $(NODE_TESTS) && npm ci --no-audit --no-fund --omit=dev
	touch $@

clean: ## remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis .coverage $(NODE_TESTS)/node_modules test-output
