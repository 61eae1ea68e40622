# `make up` runs a node from ./gate.yaml; `make test` installs what the tests need and runs them.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: up test lint typecheck unit system-deps test-deps llama bench clean web

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# pip keeps its wheel cache in ~/.cache/pip, so a second install on a machine is fast.
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

system-deps:
	./scripts/system-deps.sh

test-deps:
	./scripts/system-deps.sh test

gate.yaml:
	cp gate.yaml.example gate.yaml

up: system-deps $(STAMP) gate.yaml
	$(BIN)/gate up -f gate.yaml

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest -q

# llama-cpp-python compiles llama.cpp (about 7 minutes on 2 cores); the script keeps the
# built wheel in ~/.cache/gate-wheels so that this is paid once per machine.
llama: $(STAMP)
	./scripts/llama-wheel.sh $(VENV)

# GATE_REQUIRE_LLAMA=1: tests that need the real engine fail, rather than skip, without it.
# GATE_REQUIRE_BROWSER=1: the same for the browser tests (tests/web) and Debian's chromium.
# GATE_REQUIRE_ROOT=1 (when run as root, as CI is): the tmpfs and network-namespace tests fail
# rather than skip when the kernel refuses them.
test: test-deps $(STAMP) llama
	$(MAKE) lint typecheck
	GATE_REQUIRE_LLAMA=1 GATE_REQUIRE_BROWSER=1 GATE_REQUIRE_ROOT=$$([ "$$(id -u)" = 0 ] && echo 1) \
		$(BIN)/python -m pytest -q

# Development only: rebuilds the web UI's vendored modules (static/vendor/, committed) from
# the versions pinned in web/package-lock.json. Needs Node.js and npm; CI never runs this.
web:
	cd web && npm ci --no-audit --no-fund
	cd web && node build.mjs

bench: $(STAMP)
	$(BIN)/python bench/reconcile.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
