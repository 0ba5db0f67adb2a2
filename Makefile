# Two commands for a newcomer: `make demo` (see it work) and `make test` (prove it works).
# Both create .venv and install the package with its test tools on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

NEWEST_VENV ?= .venv-newest
CARGO ?= cargo
# cargo reads make's jobserver from MAKEFLAGS, but make hands its descriptors only to recursive
# makes: under `make -j` cargo would warn that it cannot reach them. It runs its own jobs.
CARGO_RUN = env -u MAKEFLAGS -u MFLAGS $(CARGO)
NATIVE := native/Cargo.toml
NATIVE_SOURCES := $(NATIVE) native/Cargo.lock $(wildcard native/src/*.rs)
# The native data plane (native/) needs Rust 1.85 or newer (Debian trixie's cargo is 1.85.1).
RUST_OK = @v=$$($(CARGO) --version 2>/dev/null | cut -d' ' -f2) && printf '1.85\n%s\n' "$$v" | sort -V -C || { echo "error: building gproxy-mp needs Rust (cargo) 1.85 or newer, found '$${v:-no cargo}': install it (rustup, or apt-get install cargo on Debian trixie)" >&2; exit 1; }

.PHONY: demo test lint peers unit install clean test-newest image prepare native-test test-image

demo: $(VENV)/.installed
	$(BIN)/gproxy-mp-demo

# The steps before pytest are independent and mostly wait on the network or on one compiler
# each (the Go peers: minutes on a new machine), so they run side by side; each step's output
# is printed whole when it ends.
test: $(VENV)/.installed
	@echo "make test: lint, the Go peers, the engine's tests and the image, side by side"
	$(MAKE) --no-print-directory -j4 --output-sync=target prepare
	$(BIN)/python -m pytest

prepare: lint peers native-test test-image

native-test:
	$(CARGO_RUN) test --quiet --manifest-path $(NATIVE)

# The container tier's image (harness/container.py builds gproxy-mp:test with podman), built
# ahead so that pytest's own build is a cache hit of a second or two; without podman the
# container tier skips (a failure in CI), and this step says so.
test-image:
	@if command -v podman >/dev/null 2>&1; then \
	  CONTAINER_ENGINE=podman IMAGE=gproxy-mp:test scripts/build-image.sh >/dev/null; \
	else echo "test-image: no podman: the container tier will skip"; fi

# The real test peers built from Go modules (grpc-go interop; kube-apiserver, etcd, the
# controller-manager and scheduler; kwok) into the
# ignored .cache/testbin/: minutes on a fresh machine, under a second afterwards.
peers: $(VENV)/.installed
	$(BIN)/python -m harness.testbin

lint: $(VENV)/.installed
	$(BIN)/ruff check gproxy_mp harness tests bench integration
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(CARGO_RUN) fmt --manifest-path $(NATIVE) --check
	$(CARGO_RUN) clippy --quiet --manifest-path $(NATIVE) --all-targets -- -D warnings

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

$(NEWEST_VENV)/.installed: pyproject.toml $(NATIVE_SOURCES)
	$(RUST_OK)
	python="$${NEWEST_PYTHON:-$$(scripts/newest-python.sh)}" && \
	  rm -rf $(NEWEST_VENV) && "$$python" -m venv $(NEWEST_VENV)
	$(NEWEST_VENV)/bin/pip install --quiet --upgrade pip
	$(NEWEST_VENV)/bin/pip install --quiet -e '.[test]'
	$(NEWEST_VENV)/bin/python --version
	touch $@

# pip builds the native engine (maturin, cargo) into gproxy_mp/_native*.so; a change to the
# Rust sources reinstalls.
$(VENV)/.installed: pyproject.toml $(NATIVE_SOURCES)
	$(RUST_OK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

clean:
	rm -rf $(VENV) $(NEWEST_VENV) .cache .pytest_cache .mypy_cache .ruff_cache *.egg-info
	rm -rf native/target gproxy_mp/_native*.so
