# Two commands for a newcomer: `make demo` (see it work) and `make test` (prove it works).
# Both create .venv and install the package with its test tools on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

NEWEST_VENV ?= .venv-newest

.PHONY: demo test lint peers unit install clean test-newest image

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

# The container image gproxy-mp:dev (IMAGE=name:tag to change), with docker where its daemon
# runs, else podman; on the official Python base, or where that cannot be pulled on one made
# from Debian packages (mmdebstrap). scripts/build-image.sh says which, and why.
image:
	scripts/build-image.sh

unit: $(VENV)/.installed
	$(BIN)/python -m pytest tests/unit

install: $(VENV)/.installed

# The unit and process tiers once more on the newest CPython this machine has (pyenv's 3.13
# here; scripts/newest-python.sh finds it, or set NEWEST_PYTHON), in a venv of its own, so the
# package is known to work there too. `.ci/run` calls it after `make test`.
test-newest: $(NEWEST_VENV)/.installed
	$(NEWEST_VENV)/bin/python -m pytest tests/unit tests/process

$(NEWEST_VENV)/.installed: pyproject.toml
	python="$${NEWEST_PYTHON:-$$(scripts/newest-python.sh)}" && \
	  rm -rf $(NEWEST_VENV) && "$$python" -m venv $(NEWEST_VENV)
	$(NEWEST_VENV)/bin/pip install --quiet --upgrade pip
	$(NEWEST_VENV)/bin/pip install --quiet -e '.[test]'
	$(NEWEST_VENV)/bin/python --version
	touch $@

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

clean:
	rm -rf $(VENV) $(NEWEST_VENV) .cache .pytest_cache .mypy_cache .ruff_cache *.egg-info
