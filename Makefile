# Two entry points: `make run` (the main job) and `make test` (the suite CI runs).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test venv opa policies lint bench conformance clean

run: opa policies
	$(BIN)/council demo

test: opa
	$(BIN)/ruff check .
	$(BIN)/pytest

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt --config-settings editable_mode=compat -e '.[dev]'
	touch $(STAMP)

# Installs the pinned OPA (see council/opa_tool.py) with `go install` unless already present.
opa: venv
	$(BIN)/council opa install

policies: opa
	$(BIN)/council policy build rego -o build/council-bundle.tar.gz

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: opa
	$(BIN)/python benchmarks/host_bench.py

conformance: opa
	$(BIN)/council policy conformance ../shared/conformance/opa/cases

clean:
	rm -rf $(VENV) build .cache
