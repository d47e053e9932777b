# EVA's entry points. `make run` starts everything on the embedded default; `make test` runs
# every check CI runs. Both install what they need first.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install system-deps run test lint format stop status help

help:
	@echo "make run     - start EVA locally (embedded PostgreSQL + Valkey, web, workers) on http://demo.localhost:8000"
	@echo "make test    - install everything and run the whole test suite (what CI runs)"
	@echo "make lint    - ruff, ruff format --check, mypy"
	@echo "make format  - ruff format + ruff --fix"
	@echo "make stop    - stop the embedded PostgreSQL and Valkey"
	@echo "make status  - show whether the embedded services are running"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Debian packages the suite needs (browser tests drive Debian's Chromium).
APT_PACKAGES := chromium espeak-ng ffmpeg
system-deps:
	@bash scripts/system-deps.sh $(APT_PACKAGES)

run: install
	$(PY) scripts/run.py

test: install system-deps
	bash scripts/test.sh

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

stop: install
	$(PY) -m eva.embedded stop

status: install
	$(PY) -m eva.embedded status
