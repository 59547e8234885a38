# Graphlake: two commands for a new machine.
#   make run   set everything up and start the server on its embedded default
#   make test  set everything up and run the whole suite against real services
#   make unit  only the pure tests (tests/unit/): no database, no object store, nothing built
# All are idempotent: each step is redone only when its inputs changed.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Where built binaries are kept, as graphlake itself looks for them (XDG_CACHE_HOME when set).
export GRAPHLAKE_BIN_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/graphlake/bin
# Graphlake's own Python packages (pyproject.toml's setuptools list).
PACKAGES := graphlake graphlake_client resolvers services documents storage migrations

# The Python packages, pinned: see the lock target below.
LOCK        := requirements.lock
LOCK_PYTHON := 3.11
UV_VERSION  := 0.13.9
UV          := $(VENV)/.uv-$(UV_VERSION)
# A digest of what pyproject.toml asks for (comments and layout aside), recorded in $(LOCK).
LOCK_INPUTS = $(PYTHON) -c 'import hashlib, json, tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
  print(hashlib.sha256(json.dumps([p["requires-python"], p["dependencies"], p["optional-dependencies"]]).encode()).hexdigest()[:16])'

.PHONY: run test unit lint bench setup python lock assets webapp browser ferretdb minio schema check-python clean

# A data dir an older Graphlake wrote is brought to this one's schema version first (backed up before
# any step; nothing to do on a current or new one): the server itself refuses other versions.
run: setup ferretdb
	$(BIN)/graphlake db migrate
	$(BIN)/graphlake serve

test: setup ferretdb minio browser
	$(BIN)/pytest

# Layers point one way (contracts in pyproject.toml) and the code passes ruff; .ci/run runs this first.
lint: python
	$(BIN)/ruff check .
	$(BIN)/lint-imports

# The pure tests alone (tests/unit/): no FerretDB, no MinIO, a few seconds.
unit: python
	$(BIN)/pytest tests/unit

# Speed, as ratios against raw-driver baselines measured in the same run (see README, Performance).
bench: setup ferretdb minio browser
	$(BIN)/python bench/nested_read.py
	$(BIN)/python bench/upload.py
	$(BIN)/python bench/events.py
	$(BIN)/python bench/scale.py
	$(BIN)/python bench/peer.py
	$(BIN)/python bench/backup.py
	$(BIN)/python bench/validation.py
	$(BIN)/python bench/webapp.py
	$(BIN)/python bench/thumbnails.py
	$(BIN)/python bench/health.py
	$(BIN)/python bench/exchange.py

setup: python assets webapp

# Every module compiled ahead (about half a second when nothing changed): where PYTHONDONTWRITEBYTECODE
# is set, as on this project's CI machines, nothing writes __pycache__ on import, and every process
# (the server, each CLI command, each test's subprocess) compiled all it imports again: 3.5 s of CPU
# to import the server against 1.4 s compiled (`python -c "import graphlake.app"`, 3 pairs).
python: $(VENV)/.installed
	@$(BIN)/python -m compileall -q -j 0 $$($(BIN)/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])") \
	  $(PACKAGES) > /dev/null

# Python packages come from $(LOCK) only, exactly (a package it lacks is removed), checked by hash;
# Graphlake itself is then installed editable, without dependencies of its own: in compat mode (a path
# in a .pth file), which mypy, pyright and editors follow to the client's type hints; setuptools' default
# import hook they cannot see, and scripts type-checked outside the checkout got Any everywhere.
$(VENV)/.installed: $(LOCK) pyproject.toml $(UV) | check-python
	@grep -qx "# pyproject.toml dependencies: $$($(LOCK_INPUTS))" $(LOCK) || \
	  { echo "error: $(LOCK) was made for other dependencies than pyproject.toml declares: run make lock, and commit both." >&2; exit 1; }
	$(BIN)/uv pip sync --quiet --python $(BIN)/python --require-hashes $(LOCK)
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e . --config-settings editable_mode=compat
	touch $@

# uv, pinned here, installs and locks; a new UV_VERSION installs it again (and syncs again).
$(UV): | check-python
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	touch $@

# Writes $(LOCK) again after a change to the dependencies in pyproject.toml, keeping every pin that
# still fits. Resolved for Python $(LOCK_PYTHON), the oldest Graphlake supports, on any platform; the
# pins hold on newer Pythons too. All pins to the newest allowed: make lock LOCK_ARGS=--upgrade;
# one package: make lock LOCK_ARGS='--upgrade-package stamina'.
lock: $(UV)
	@if [ -f $(LOCK) ]; then cp $(LOCK) $(VENV)/lock.tmp; else rm -f $(VENV)/lock.tmp; fi
	$(BIN)/uv pip compile --quiet pyproject.toml --extra dev --universal --python-version $(LOCK_PYTHON) \
	  --generate-hashes --no-header $(LOCK_ARGS) -o $(VENV)/lock.tmp
	@{ echo "# Every Python package make run and make test install: Graphlake's dependencies and its dev extra,"; \
	   echo "# with hashes. Resolved by uv $(UV_VERSION) for Python $(LOCK_PYTHON) and newer, any platform."; \
	   echo "# Written by make lock (see the Makefile); do not edit by hand."; \
	   echo "# pyproject.toml dependencies: $$($(LOCK_INPUTS))"; \
	   cat $(VENV)/lock.tmp; } > $(VENV)/lock.new
	@cmp -s $(VENV)/lock.new $(LOCK) || mv $(VENV)/lock.new $(LOCK)
	@rm -f $(VENV)/lock.tmp $(VENV)/lock.new

check-python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "error: Graphlake needs Python 3.11 or newer ($(PYTHON) is $$($(PYTHON) --version 2>&1)); set PYTHON=python3.12, say." >&2; exit 1; }

# GraphiQL, React and graphql-ws from the npm registry, served by Graphlake itself (works offline);
# ws and graphql-http for the tests (the graphql-ws client in Node, the GraphQL over HTTP audit).
assets: assets/node_modules/.installed

assets/node_modules/.installed: assets/package.json assets/package-lock.json
	@command -v npm >/dev/null || { echo "error: npm (Node.js) is needed once to install GraphiQL's assets." >&2; exit 1; }
	npm ci --prefix assets --no-audit --no-fund --loglevel=error
	touch $@

# The web app (webapp/): its npm packages from its lock, then its bundle, built again only when a
# source file, its configuration or the GraphQL schema (its types come from it) changed.
WEBAPP_SOURCES := $(shell find webapp/src -type f -not -path 'webapp/src/generated/*' 2>/dev/null) \
  $(wildcard webapp/index.html webapp/vite.config.ts webapp/tsconfig.json webapp/codegen.yml) graphql/schema.graphql

webapp: webapp/dist/index.html

webapp/node_modules/.installed: webapp/package.json webapp/package-lock.json
	@command -v npm >/dev/null || { echo "error: npm (Node.js) is needed to build the web app." >&2; exit 1; }
	@node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit((a === 20 && b >= 19) || (a === 22 && b >= 12) || a > 22 ? 0 : 1)' || \
	  { echo "error: the web app's build (Vite 8) needs Node.js 20.19+ or 22.12+; this is $$(node --version)." >&2; exit 1; }
	npm ci --prefix webapp --no-audit --no-fund --loglevel=error
	touch $@

webapp/dist/index.html: webapp/node_modules/.installed $(WEBAPP_SOURCES)
	npm run --prefix webapp --silent build
	touch $@

# Chromium from the OS packages, for the browser tests (tests/test_webapp.py drives it with
# playwright-core; Playwright's own browser download does not work offline). Installed when missing
# and we may (root, as in CI). Otherwise make says what to run and the suite still runs: the browser
# test then fails, saying the same.
CHROMIUM ?= /usr/bin/chromium
browser:
	@if [ ! -x $(CHROMIUM) ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Chromium for the browser tests (apt-get install chromium)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
	  else echo "warning: the browser tests need Chromium at $(CHROMIUM): run sudo apt-get install -y --no-install-recommends chromium" >&2; fi; \
	fi

# FerretDB is skipped when GRAPHLAKE_MONGODB_URL points at a running MongoDB.
ferretdb:
	@if [ -z "$$GRAPHLAKE_MONGODB_URL" ]; then scripts/build-services.sh ferretdb >/dev/null; fi

minio:
	@if [ -z "$$GRAPHLAKE_TEST_S3_ENDPOINT" ]; then scripts/build-services.sh minio >/dev/null; fi

schema: python
	$(BIN)/graphlake export-schema

clean:
	rm -rf $(VENV) assets/node_modules webapp/node_modules webapp/dist webapp/src/generated
