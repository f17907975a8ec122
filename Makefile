# spotmap - every command a developer or CI needs. `make help` lists them.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
# Two stamps: the runtime alone (what `make demo` needs) and the runtime plus the dev extras (SAM CLI,
# linters, pytest, Playwright), which `make test`, `lint` and `build` need.
RUNTIME_STAMP := $(VENV)/.installed-runtime
STAMP := $(VENV)/.installed

.PHONY: help install demo images browser report-image test unit e2e lint build push-worker bench clean

# Offline tooling: no AWS account, no credentials, no telemetry. The region only names ARNs.
TOOL_ENV := SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1
EXPANDED := .aws-sam/lint/expanded-template.json
# The same template with the state machine definition inlined (substitutions applied), and the
# definition alone: what cfn-lint's Step Functions schema and asl-validator check.
INLINED := .aws-sam/lint/expanded-inlined-template.json
DEFINITION := .aws-sam/lint/job.asl.json
# Node tools (asl-validator), pinned by package-lock.json; `npm ci` installs exactly that.
NODE_STAMP := node_modules/.installed
# push-worker: the stack to push to (samconfig's default stack) and, optionally, its region.
STACK_NAME ?= spotmap
REGION ?=
# build: the functions to build (default all), e.g. FUNCTIONS=StartJobFunction
FUNCTIONS ?=
IMAGE_TAG ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || date -u +%Y%m%d%H%M%S)
AWS_REGION_ARG := $(if $(REGION),--region $(REGION))

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/'

$(RUNTIME_STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $(RUNTIME_STAMP)

$(STAMP): $(RUNTIME_STAMP)
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP) ## create .venv with spotmap, SAM CLI, moto and the linters

demo: $(RUNTIME_STAMP) ## run the whole pipeline on the local cloud on a sample CSV (installs the runtime alone)
	$(BIN)/spotmap demo

images: ## build the offline Docker images the Docker tests use (tools/images/build; cached)
	tools/images/build all

browser: ## install Debian's chromium when missing (the report page's browser tests, report-image)
	tools/ensure-chromium

report-image: $(STAMP) browser ## docs/report.png: a small faulty job's report page, screenshotted in headless Chromium
	$(PY) -m tools.report_screenshot --output docs/report.png

test: $(STAMP) images browser ## lint, then every test (unit, integration, end to end on the local cloud, Docker runtime, browser)
	$(MAKE) lint
	SPOTMAP_REQUIRE_DOCKER=1 SPOTMAP_REQUIRE_BROWSER=1 $(BIN)/pytest -q -n 2 --dist loadfile

unit: $(STAMP) ## unit tests only
	$(BIN)/pytest -q tests/unit

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $(NODE_STAMP)

lint: $(STAMP) $(NODE_STAMP) ## every static check (SAM, cfn-lint on source and expanded template, state machine, checkov, ruff, mypy, import contracts)
	$(TOOL_ENV) $(BIN)/sam validate --lint --template template.yaml
	$(TOOL_ENV) $(BIN)/cfn-lint template.yaml
	$(TOOL_ENV) $(PY) -m tools.expand_template template.yaml -o $(EXPANDED) \
		--inlined-output $(INLINED) --definition-output $(DEFINITION)
	$(TOOL_ENV) $(BIN)/cfn-lint $(EXPANDED)
	$(TOOL_ENV) $(PY) -m tools.lint_state_machine $(INLINED) $(DEFINITION)
	$(BIN)/checkov --quiet --compact --skip-download --framework cloudformation -f template.yaml
	test -f worker/Dockerfile || { echo "worker/Dockerfile is missing" >&2; exit 1; }
	$(BIN)/checkov --quiet --compact --skip-download --framework dockerfile $(addprefix -f ,$(wildcard worker/Dockerfile*))
	$(BIN)/ruff check .
	$(BIN)/mypy
	# the import contracts of pyproject.toml, with functions/ on the path as pytest and mypy have it
	PYTHONPATH=functions $(BIN)/lint-imports --no-logo

build: $(STAMP) ## sam build: python3.13 Lambda artifacts without Docker (functions/Makefile), then check them; FUNCTIONS="Id ..." builds only those
	PATH="$(abspath $(BIN)):$$PATH" $(TOOL_ENV) $(BIN)/sam build $(FUNCTIONS)
	$(PY) -m tools.check_artifacts .aws-sam/build $(FUNCTIONS)

push-worker: ## build the worker image and push it to the stack's ECR repository (Docker + AWS credentials)
	@set -euo pipefail; \
	repo="$$(aws cloudformation describe-stacks $(AWS_REGION_ARG) --stack-name "$(STACK_NAME)" \
		--query "Stacks[0].Outputs[?OutputKey=='WorkerRepositoryUri'].OutputValue" --output text)"; \
	if [ -z "$$repo" ] || [ "$$repo" = None ]; then \
		echo "stack $(STACK_NAME) has no WorkerRepositoryUri output: run sam deploy first" >&2; exit 1; fi; \
	registry="$${repo%%/*}"; region="$$(cut -d. -f4 <<< "$$registry")"; \
	echo "pushing $$repo:$(IMAGE_TAG) and :latest"; \
	aws ecr get-login-password --region "$$region" | docker login --username AWS --password-stdin "$$registry"; \
	docker build --platform linux/amd64 -f worker/Dockerfile -t "$$repo:$(IMAGE_TAG)" -t "$$repo:latest" .; \
	docker push "$$repo:$(IMAGE_TAG)"; \
	docker push "$$repo:latest"

bench: $(STAMP) ## the six benchmark figures of docs/benchmarks.md, side by side (about 15 minutes)
	$(PY) benchmarks/bench.py --json .spotmap/bench.json

clean:
	rm -rf .spotmap .aws-sam .pytest_cache .mypy_cache .ruff_cache .import_linter_cache node_modules
