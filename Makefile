# wordcrawl's two commands, on a fresh machine with Python 3.11+:
#
#   make up      install into .venv, then start the whole stack (wordcrawl up)
#   make test    install into .venv, then run ruff and every test
#
# Everything goes into the project's own virtual environment (.venv); nothing is installed
# for the whole system except, when run as root on Debian/Ubuntu, the one tool a test
# needs that PyPI does not have (docker-compose, to validate docker-compose.yml).

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

# Debian's docker-compose 1.29 checks docker-compose.yml without a Docker engine. Installed
# only when missing and when we may (root, apt-get); otherwise its tests say they skip why.
system-deps:
	@if ! command -v docker-compose >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing docker-compose (apt-get) to validate docker-compose.yml"; \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null \
			|| (apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
				apt-get install -y -qq docker-compose >/dev/null) \
			|| echo "could not install docker-compose: its tests will be skipped"; \
		else \
			echo "docker-compose is missing and cannot be installed here: its tests will be skipped"; \
		fi; \
	fi

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
