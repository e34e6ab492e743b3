# One venv, two entry points: `make serve` and `make test` (README quick start).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
comma := ,
REPO ?= $(or $(STLSNN_MODEL_REPOSITORY),model_repository)

.PHONY: serve test lint export bench mutation

$(VENV)/.export: requirements/serve.txt requirements/export.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements/export.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

$(VENV)/.dev: $(VENV)/.export requirements/dev.txt
	$(PY) -m pip install -q -r requirements/dev.txt
	touch $@

$(REPO)/demo/1/manifest.json: | $(VENV)/.export
	$(PY) -m export models/checkpoints --out $(REPO)

export: $(VENV)/.export
	$(PY) -m export models/checkpoints --out $(REPO)

serve: $(VENV)/.export $(REPO)/demo/1/manifest.json
	STLSNN_MODEL_REPOSITORY=$(REPO) $(PY) -m service

test: $(VENV)/.dev
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest -q

lint: $(VENV)/.dev
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

# Mutation testing (mutmut), one module at a time against its own tests; slow, so not in `make test`
# (TESTING.md). MODULES=upload_limit,energy limits it to some of tools/mutation.py's targets.
mutation: $(VENV)/.dev
	$(PY) tools/mutation.py $(subst $(comma), ,$(MODULES))
