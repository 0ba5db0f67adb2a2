# Two commands for a newcomer: `make demo` (see it work) and `make test` (prove it works).
# Both create .venv and install the package with its test tools on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint peers unit install clean

demo: $(VENV)/.installed
	$(BIN)/gproxy-mp-demo

test: lint peers
	$(BIN)/python -m pytest

# The real test peers built from Go modules (grpc-go interop; kube-apiserver, etcd, the
# controller-manager and scheduler; kwok) into the
# ignored .cache/testbin/: minutes on a fresh machine, under a second afterwards.
peers: $(VENV)/.installed
	$(BIN)/python -m harness.testbin

lint: $(VENV)/.installed
	$(BIN)/ruff check gproxy_mp harness tests bench integration
	$(BIN)/mypy
	$(BIN)/lint-imports

unit: $(VENV)/.installed
	$(BIN)/python -m pytest tests/unit

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

clean:
	rm -rf $(VENV) .cache .pytest_cache .mypy_cache .ruff_cache *.egg-info
