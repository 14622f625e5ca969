# The two commands: `make run` starts the gateway, `make test` runs every check.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: run test lint typecheck pytest bench bench-compare k8s-files clean

$(BIN)/python:
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11+ is required")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Reinstall whenever the dependencies change. The hash-pinned packages go first,
# so that the project's install finds them already satisfied.
HASHED := $(BIN)/pip install -q --no-deps --require-hashes -r requirements/hashed.txt

$(VENV)/.installed: pyproject.toml requirements/hashed.txt | $(BIN)/python
	$(HASHED)
	$(BIN)/pip install -q -e '.[ner]'
	touch $@

$(VENV)/.installed-dev: pyproject.toml requirements/hashed.txt requirements/hashed-dev.txt | $(BIN)/python
	$(HASHED)
	$(BIN)/pip install -q --no-deps --require-hashes -r requirements/hashed-dev.txt
	$(BIN)/pip install -q -e '.[ner,dev]'
	touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/llm-gateway serve

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests bench sdk
	$(BIN)/mypy

# The type check and the tests are independent: on two cores they run side by
# side, and `make test` fails if either does.
test: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests bench sdk
	$(MAKE) --no-print-directory -j2 typecheck pytest

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

pytest: $(VENV)/.installed-dev
	$(BIN)/pytest

# Benchmark (see docs/performance.md): `make bench`, `make bench-compare`, or
# `make bench ARGS="--soak 300 --workers"`.
bench: $(VENV)/.installed-dev
	$(BIN)/python bench/run.py $(ARGS)

bench-compare: $(VENV)/.installed-dev
	$(BIN)/python bench/run.py --compare litellm $(ARGS)

# The Kubernetes ConfigMaps are generated from copies of config/ and the policy
# (Kustomize reads no file outside its directory); tests/deploy checks they match.
k8s-files:
	cp $(filter-out %.example.yaml,$(wildcard config/*.yaml)) deploy/k8s/base/files/config/
	cp policies/rego/authz.rego policies/data/access.yaml deploy/k8s/base/files/policies/

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
