# Local entry points. Each target installs what it needs (into .venv) before it runs.
#   make demo    run the pipeline end to end without Docker, print the loaded users, clean up
#   make shell   a shell with a throwaway local Airflow + PostgreSQL + stand-in API (exit removes them)
#   make test    lint + the whole test suite (real PostgreSQL, real Airflow, real HTTP)
#   make test-docker  docker-compose.yaml on a real Docker engine, end to end (11-15 min)
#   make bench   the pipeline vs naive baselines at 10k/100k/1M users -> docs/benchmarks.* (~15 min)
#   make lock    re-resolve requirements/*.in into the pinned requirements/*.txt
#   make env     write .env for docker compose with generated secrets (never overwrites it; every
#                target above writes it too when it is missing). Then: docker compose up -d

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# dbt gets its own virtualenv so its pins never fight Airflow's; Cosmos runs it by path.
DBT_VENV := .venv-dbt
UV := $(BIN)/uv
# Resolve once for every platform, for the oldest Python we support.
LOCK := $(UV) pip compile --quiet --universal --python-version 3.11

.PHONY: install dbt-parse demo shell test lint format lock clean

# Cosmos renders the dbt tasks from this manifest, so parsing the DAG never has to run dbt.
DBT_MANIFEST := dbt_project/target/manifest.json
DBT_SOURCES := $(wildcard dbt_project/*.yml dbt_project/models/*/*.sql dbt_project/models/*/*.yml dbt_project/tests/*.sql)

install: $(VENV)/.synced $(DBT_VENV)/.synced $(DBT_MANIFEST)

# docker compose reads .env: secrets generated on this machine, written once and never overwritten.
.PHONY: env
install: | .env
env .env:
	$(PYTHON) -m scripts.make_env

# The lock file is the single source of truth: re-sync whenever it changes.
$(VENV)/.synced: requirements/dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required, found " + sys.version.split()[0] + ": set PYTHON=/path/to/python3.11")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@test -x $(UV) || $(BIN)/python -m pip install --quiet "$$(grep -E '^uv==' requirements/dev.txt)"
	$(UV) pip sync --quiet --python $(BIN)/python --compile-bytecode requirements/dev.txt
	@touch $@

$(DBT_VENV)/.synced: requirements/dbt.txt $(VENV)/.synced
	@test -x $(DBT_VENV)/bin/python || $(UV) venv --quiet --python $(BIN)/python $(DBT_VENV)
	$(UV) pip sync --quiet --python $(DBT_VENV)/bin/python --compile-bytecode requirements/dbt.txt
	@touch $@

$(DBT_MANIFEST): $(DBT_VENV)/.synced $(DBT_SOURCES)
	cd dbt_project && DBT_PROFILES_DIR=. ../$(DBT_VENV)/bin/dbt parse --quiet
	@touch $@

dbt-parse: $(DBT_MANIFEST)

demo: install
	$(BIN)/python -m scripts.demo

shell: install
	$(BIN)/python -m scripts.shell

# Not part of `make test`: minutes long, and its numbers are for reading, not asserting.
.PHONY: bench
bench: install
	$(BIN)/python -m bench.run

test: lint
	$(BIN)/python -m pytest -m "not docker"

# The unmodified docker-compose.yaml and Dockerfile on a real Docker engine (yours, or, as root on
# Debian/Ubuntu, a private dockerd it installs and starts): tests/docker/. .ci/run runs it after make test.
.PHONY: test-docker
test-docker: install
	$(BIN)/python -m pytest -m docker --durations=0 tests/docker

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

lock: install
	$(LOCK) requirements/airflow.in -o requirements/airflow.txt
	$(LOCK) requirements/dev.in -o requirements/dev.txt
	$(LOCK) requirements/dbt.in -o requirements/dbt.txt

clean:
	rm -rf .local .pytest_cache .ruff_cache
