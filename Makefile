# Graphlake: two commands for a new machine.
#   make run   set everything up and start the server on its embedded default
#   make test  set everything up and run the whole suite against real services
#   make unit  only the pure tests (tests/unit/): no database, no object store, nothing built
# All are idempotent: each step is redone only when its inputs changed.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
export GRAPHLAKE_BIN_CACHE ?= $(HOME)/.cache/graphlake/bin

.PHONY: run test unit bench setup python assets ferretdb minio schema check-python clean

run: setup ferretdb
	$(BIN)/graphlake serve

test: setup ferretdb minio
	$(BIN)/pytest

unit: python
	$(BIN)/pytest tests/unit

# Speed, as ratios against raw-driver baselines measured in the same run (see README, Performance).
bench: setup ferretdb minio
	$(BIN)/python bench/nested_read.py
	$(BIN)/python bench/upload.py
	$(BIN)/python bench/events.py
	$(BIN)/python bench/scale.py
	$(BIN)/python bench/peer.py

setup: python assets

python: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml | check-python
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

check-python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "error: Graphlake needs Python 3.11 or newer ($(PYTHON) is $$($(PYTHON) --version 2>&1)); set PYTHON=python3.12, say." >&2; exit 1; }

# GraphiQL, React and graphql-ws from the npm registry, served by Graphlake itself (works offline).
assets: assets/node_modules/.installed

assets/node_modules/.installed: assets/package.json assets/package-lock.json
	@command -v npm >/dev/null || { echo "error: npm (Node.js) is needed once to install GraphiQL's assets." >&2; exit 1; }
	npm ci --prefix assets --no-audit --no-fund --loglevel=error
	touch $@

# FerretDB is skipped when GRAPHLAKE_MONGODB_URL points at a running MongoDB.
ferretdb:
	@if [ -z "$$GRAPHLAKE_MONGODB_URL" ]; then scripts/build-services.sh ferretdb >/dev/null; fi

minio:
	@if [ -z "$$GRAPHLAKE_TEST_S3_ENDPOINT" ]; then scripts/build-services.sh minio >/dev/null; fi

schema: python
	$(BIN)/graphlake export-schema

clean:
	rm -rf $(VENV) assets/node_modules
