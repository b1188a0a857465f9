# wxsub — every target runs in .venv, built from a Python 3.12 (pyenv's where present).
SHELL := /bin/bash
.DEFAULT_GOAL := venv

PY312 := $(shell p=$$(pyenv prefix 3.12 2>/dev/null | head -1); \
	if [ -n "$$p" ] && [ -x "$$p/bin/python3.12" ]; then echo "$$p/bin/python3.12"; \
	else command -v python3.12 || command -v python3; fi)
VENV := .venv
PY := $(VENV)/bin/python
SAM_VENV := .venv-sam
SAM := $(SAM_VENV)/bin/sam
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export SAM_CLI_TELEMETRY := 0
export PYTHONPATH := layers/shared:.

.PHONY: venv demo test unit integration lint typecheck local bench reliability build deploy validate openapi miniprogram clean sam-invoke sam-api sam-test

venv: $(VENV)/.installed

$(VENV)/.installed: requirements-dev.txt layers/shared/requirements.txt pyproject.toml
	@test -x "$(PY312)" || { echo "Python 3.12 not found (install it, e.g. 'pyenv install 3.12')"; exit 1; }
	@"$(PY312)" -c 'import sys; assert sys.version_info[:2] == (3, 12), sys.version' \
		|| echo "warning: $(PY312) is not Python 3.12; Lambda runs 3.12"
	"$(PY312)" -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
	$(PY) -m pip install -q -r requirements-dev.txt 2>&1 | grep -v "is ignored" || true
	$(PY) -m pip install -q --no-deps -e . 2>&1 | grep -v "is ignored" || true
	$(PY) -c "import aws_lambda_powertools, httpx, jwt, moto, pytest, hypothesis, wxsub_cli"
	test -x $(VENV)/bin/wxsub
	touch $@

$(SAM_VENV)/.installed:
	"$(PY312)" -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install -q aws-sam-cli==1.170.0 2>&1 | grep -v "is ignored" || true
	$(SAM) --version
	touch $@

## demo: start moto + the WeChat sandbox + the local API on free ports, run login → refresh → send, stop.
demo: venv
	$(PY) -m local.demo

## local: the whole API on 127.0.0.1:$${PORT:-3000}, in the foreground (Ctrl-C stops it).
local: venv
	$(PY) -m local

## test: template lint, Python tests (unit, handlers, sandbox, integration) and the mini-program tests.
test: venv validate miniprogram
	$(PY) -m pytest -q -p no:cacheprovider

unit: venv
	$(PY) -m pytest -q tests/unit

integration: venv
	$(PY) -m pytest -q tests/integration

validate: $(SAM_VENV)/.installed
	$(SAM) validate --lint --template template.yaml

miniprogram:
	cd miniprogram && npm ci --no-audit --no-fund --loglevel=error && npm test

lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check layers functions local sandbox tests bench wxsub_cli
	$(PY) -m mypy layers/shared/wxsub functions

## openapi: regenerate docs/openapi.json from the routes (and the copy ApiDocsFunction serves).
openapi: venv
	$(PY) -m wxsub.http.openapi > docs/openapi.json
	cp docs/openapi.json functions/api_docs/openapi.json

bench: venv
	$(PY) -m bench

## reliability: the reliability suite at full size (tests/reliability), then its table (docs/reliability.md).
reliability: venv
	@WXSUB_RELIABILITY=full $(PY) -m pytest -q -p no:cacheprovider tests/reliability; tests=$$?; \
	echo; $(PY) -m bench.reliability; table=$$?; \
	exit $$(( tests || table ))

## sam-invoke: SAM CLI's own `sam local invoke FN` with EVENT (default events/<FN's>.json), in Docker,
## against the local AWS and the sandbox; the event is filled with this run's values and the outcome checked.
sam-invoke: venv $(SAM_VENV)/.installed
	@test -n "$(FN)" || { echo "usage: make sam-invoke FN=<LogicalId> [EVENT=events/<file>.json]  (e.g. FN=LoginFunction)"; exit 2; }
	$(PY) -m local.sam_local --sam $(SAM) --python312 "$(PY312)" invoke $(FN) $(EVENT)

## sam-api: SAM CLI's own `sam local start-api` on 127.0.0.1:$${SAM_PORT:-3001}, in front of the local AWS and sandbox.
sam-api: venv $(SAM_VENV)/.installed
	$(PY) -m local.sam_local --sam $(SAM) --python312 "$(PY312)" api

## sam-test: the SAM CLI suite (tests/sam): every function through sam local invoke and start-lambda,
## the README's flow through start-api. Needs Docker (make test does not).
sam-test: venv $(SAM_VENV)/.installed
	WXSUB_SAM=$(SAM) WXSUB_PYTHON312="$(PY312)" $(PY) -m pytest -q -p no:cacheprovider \
		-o addopts="-ra --strict-markers" tests/sam

build: $(SAM_VENV)/.installed
	PATH="$$(dirname $(PY312)):$$PATH" $(SAM) build
	"$(PY312)" -m compileall -q .aws-sam/build

deploy: build
	$(SAM) deploy --guided

clean:
	rm -rf $(VENV) $(SAM_VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache .hypothesis miniprogram/node_modules
