# wordcrawl's two commands, on a fresh machine with Python 3.11+:
#
#   make up      install into .venv, then start the whole stack (wordcrawl up)
#   make test    install into .venv, then run ruff and every test
#
# Everything goes into the project's own virtual environment (.venv); nothing is installed
# for the whole system except, when run as root on Debian/Ubuntu, the two tools the tests
# need that PyPI does not have (see system-deps).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# A file whose date says when the venv last matched pyproject.toml.
STAMP  := $(VENV)/.installed

.PHONY: install up test lint format system-deps clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else \
		"wordcrawl needs Python 3.11 or newer; set PYTHON=python3.11 (or newer)")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

up: install
	$(BIN)/wordcrawl up

test: install system-deps lint
	$(BIN)/python -m pytest

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
