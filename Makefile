# Targets people and CI both run. Every target creates .venv from the hashed lock if needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev

.DEFAULT_GOAL := help
.PHONY: help install run test lint openapi clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): requirements-dev.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements-dev.lock
	touch $@

install: $(STAMP) ## create .venv and install the locked dependencies

run: $(STAMP) ## start the emulator with sample data and the gateway on 127.0.0.1:8080
	$(BIN)/python -m scripts.run_local

test: lint ## run lint, then the whole test suite
	$(BIN)/python -m pytest

lint: $(STAMP) ## ruff and mypy --strict
	$(BIN)/ruff check app tests emulator scripts
	$(BIN)/ruff format --check app tests emulator scripts
	$(BIN)/mypy

openapi: $(STAMP) ## regenerate openapi.json and schema.graphql
	$(BIN)/python -m app.export

clean: ## remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis .coverage
