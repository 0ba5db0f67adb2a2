# syntax=docker/dockerfile:1
#
# gproxy-mp container image.
#
#   make image                                   # gproxy-mp:dev, with podman or docker
#   docker build -t gproxy-mp:0.1.0 .            # the same by hand, on the official base
#   docker run --rm gproxy-mp:0.1.0 --version
#
# Two stages on one base (the build arguments BASE_IMAGE and BASE_TAG; their defaults name the
# pinned official Python image). The builder turns this source tree into wheels: gproxy-mp's own (built by the
# backend named in pyproject.toml) and one for every dependency (grpcio, pyzmq, kubernetes, ...
# come as manylinux wheels). It has Debian's Rust toolchain (cargo, rustc and the C linker they
# call) for the native data plane's extension, which maturin, the build backend fetched from
# PyPI, compiles there. The final stage installs those wheels, offline, into a virtualenv
# that has no pip, setuptools or wheel in it, and removes those three from the base interpreter
# too: the image can run gproxy-mp, not build or install anything, and has no compiler. The
# wheels and the builder's pip reach the final stage through bind mounts, so no layer keeps them.
#
# Every RUN, ENTRYPOINT and CMD is in exec (JSON) form: no shell parses anything at build or at
# run time, and gproxy-mp is PID 1 itself, so SIGTERM reaches its supervisor directly (it
# handles SIGTERM/SIGINT and reaps its own workers; see README "Shutdown").
#
# The base interpreter is named /usr/local/bin/python3, where the official image has it.
# `make image` on a machine that cannot pull the official image builds on a base made from
# Debian packages of the same release instead (scripts/build-image.sh), whose python3 it
# links there too. The default base is pinned by tag (Python patch release and Debian
# release); pin it by digest as well (BASE_TAG=3.11.14-slim-trixie@sha256:...) where the
# registry can be reached to look the digest up. Both stages name the same base, and the tag
# is an argument of its own so that linters see one in every FROM;
# tests/deploy/test_dockerfile.py checks both.

ARG BASE_IMAGE=python
ARG BASE_TAG=3.11.14-slim-trixie

FROM ${BASE_IMAGE}:${BASE_TAG} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DEBIAN_FRONTEND=noninteractive
# Two RUNs, as exec form cannot chain commands; the install layer is cached only on top of
# this very update layer, so it never meets stale package lists. ca-certificates: pip and
# cargo verify PyPI and crates.io against it (a Debian minbase has none).
RUN ["apt-get", "update"]
RUN ["apt-get", "install", "--yes", "--no-install-recommends", "cargo", "ca-certificates"]
# A venv of the builder's own for pip (Debian's python3 has no pip; the official one's is left
# alone): ensurepip puts pip in it.
RUN ["/usr/local/bin/python3", "-m", "venv", "/opt/build"]
WORKDIR /src
# The whole context, which .dockerignore narrows to what the build reads: pyproject.toml,
# README.md (the long description), gproxy_mp/, and the Rust sources (native/, Cargo.*)
# where the tree has them.
COPY . ./
# Behind a TLS-inspecting proxy, pip (PyPI) and cargo (crates.io) need its CA: pass the bundle
# as the build secret "ca" and name it in these two (scripts/build-image.sh does where the
# host's PIP_CERT or SSL_CERT_FILE names one). Unset, both use the system's CAs; an absent
# secret mounts nothing.
ARG PIP_CERT
ARG CARGO_HTTP_CAINFO
RUN --mount=type=secret,id=ca,target=/run/secrets/ca \
    ["/opt/build/bin/python", "-m", "pip", "wheel", "--wheel-dir", "/wheels", "."]
# What the final stage installs, by name and hash. A layer cache keys a RUN on its command line,
# never on what a bind mount holds: the final stage copies this list before it installs, so
# new wheels (a changed engine or package) invalidate its cached install.
RUN ["/opt/build/bin/python", "-c", "import hashlib, pathlib; pathlib.Path('/wheels.sha256').write_text(''.join(f'{hashlib.sha256(w.read_bytes()).hexdigest()}  {w.name}\\n' for w in sorted(pathlib.Path('/wheels').glob('*.whl'))))"]

FROM ${BASE_IMAGE}:${BASE_TAG}
LABEL org.opencontainers.image.title="gproxy-mp" \
      org.opencontainers.image.description="Node-level gRPC load balancer: per-call round robin over Kubernetes, DNS or static backends" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# A venv without pip. The builder's pip (its venv, bind-mounted at the same path, on the same
# base interpreter) installs into it (--python), from the builder's wheels only (--no-index),
# then takes pip, setuptools and wheel out of the base interpreter (there are none on a Debian
# base, whose python3 is an externally managed environment: --break-system-packages lets pip
# look, and it skips them). pip compiles the .pyc files now (PYTHONDONTWRITEBYTECODE does not
# stop that), at build time, because at run time the root filesystem is read-only.
RUN ["/usr/local/bin/python3", "-m", "venv", "--without-pip", "/opt/gproxy-mp"]
COPY --from=builder /wheels.sha256 /opt/gproxy-mp/wheels.sha256
RUN --mount=type=bind,from=builder,source=/opt/build,target=/opt/build \
    --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    ["/opt/build/bin/python", "-m", "pip", "--python", "/opt/gproxy-mp/bin/python", "install", "--no-index", "--no-cache-dir", "--disable-pip-version-check", "--find-links", "/wheels", "gproxy-mp"]
RUN --mount=type=bind,from=builder,source=/opt/build,target=/opt/build \
    ["/opt/build/bin/python", "-m", "pip", "--python", "/usr/local/bin/python3", "uninstall", "--yes", "--break-system-packages", "--no-cache-dir", "--disable-pip-version-check", "setuptools", "wheel", "pip"]
# A numeric, non-root user with no login shell and no home: Kubernetes' runAsNonRoot can only
# verify a numeric USER. Workers are started by the supervisor as the same user.
RUN ["useradd", "--system", "--uid", "10001", "--user-group", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", "gproxy"]
USER 10001:10001
# Set last: the RUNs above name the base interpreter by its full path anyway.
ENV PATH=/opt/gproxy-mp/bin:$PATH
# 5000: the listen port the README and the deploy/ manifests use for -p (any port works).
# 9901: --admin-address (/healthz, /readyz, /metrics, /debug/endpoints). Its default binds
# 127.0.0.1, which nothing outside the container reaches: pass --admin-address :9901 (every
# address) where probes or scrapers need it, as deploy/ does.
EXPOSE 5000/tcp 9901/tcp
ENTRYPOINT ["gproxy-mp"]
CMD ["--help"]
