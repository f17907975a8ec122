# spotmap - every command a developer or CI needs. `make help` lists them.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help install demo test unit e2e lint build bench clean

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/'

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP) ## create .venv with spotmap, SAM CLI, moto and the linters

demo: $(STAMP) ## run the whole pipeline on the local cloud on a sample CSV
	$(BIN)/spotmap demo

test: $(STAMP) ## lint, then every test (unit, integration, end to end on the local cloud)
	$(MAKE) lint
	$(BIN)/pytest -q

unit: $(STAMP) ## unit tests only
	$(BIN)/pytest -q tests/unit

clean:
	rm -rf .spotmap .aws-sam .pytest_cache .mypy_cache .ruff_cache
