# syntax=docker/dockerfile:1
#
# gproxy-mp container image.
#
#   docker build -t gproxy-mp:0.1.0 .
#   docker run --rm gproxy-mp:0.1.0 --version
#
# Two stages. The builder turns this source tree into wheels: gproxy-mp's own (built with the
# maturin backend named in pyproject.toml, which compiles the native data plane, native/, with
# Debian trixie's cargo 1.85.1: the crate's rust-version) and one for every dependency (grpcio, pyzmq,
# kubernetes, ... come as manylinux wheels: no compiler runs). The final stage installs those
# wheels, offline, into a virtualenv that has no pip, setuptools or wheel in it, and then removes
# those three from the base interpreter too: the image can run gproxy-mp, not build or install
# anything. The wheels reach the final stage through a bind mount, so no layer keeps them.
#
# Every RUN, ENTRYPOINT and CMD is in exec (JSON) form: no shell parses anything at build or at
# run time, and gproxy-mp is PID 1 itself, so SIGTERM reaches its supervisor directly (it
# handles SIGTERM/SIGINT and reaps its own workers; see README "Shutdown").
#
# The base is pinned by tag (Python patch release and Debian release). Pin it by digest as well
# (python:3.11.14-slim-trixie@sha256:...) where the registry can be reached to look the digest
# up. Both stages name the same base, written out (not through an ARG) so that linters and
# readers see the tag; tests/deploy/test_dockerfile.py checks the two stay equal.

FROM python:3.11.14-slim-trixie AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN ["apt-get", "update"]
RUN ["apt-get", "install", "--yes", "--no-install-recommends", "cargo"]
# README.md is the package's long description (pyproject.toml: readme).
COPY pyproject.toml README.md ./
COPY native/ ./native/
COPY gproxy_mp/ ./gproxy_mp/
RUN ["python", "-m", "pip", "wheel", "--wheel-dir", "/wheels", "."]

FROM python:3.11.14-slim-trixie
LABEL org.opencontainers.image.title="gproxy-mp" \
      org.opencontainers.image.description="Node-level gRPC load balancer: per-call round robin over Kubernetes, DNS or static backends" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/gproxy-mp/bin:$PATH
# A venv without pip; the base interpreter's pip installs into it (--python), from the
# builder's wheels only (--no-index). The base interpreter is named by its full path: PATH above
# already puts the venv's python, which has no pip, first. pip compiles the .pyc files now
# (PYTHONDONTWRITEBYTECODE does not stop that), at build time, because at run time the root
# filesystem is read-only.
RUN ["/usr/local/bin/python", "-m", "venv", "--without-pip", "/opt/gproxy-mp"]
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    ["/usr/local/bin/python", "-m", "pip", "--python", "/opt/gproxy-mp/bin/python", "install", "--no-index", "--no-cache-dir", "--disable-pip-version-check", "--find-links", "/wheels", "gproxy-mp"]
RUN ["/usr/local/bin/python", "-m", "pip", "uninstall", "--yes", "--no-cache-dir", "--disable-pip-version-check", "setuptools", "wheel", "pip"]
# A numeric, non-root user with no login shell and no home: Kubernetes' runAsNonRoot can only
# verify a numeric USER. Workers are started by the supervisor as the same user.
RUN ["useradd", "--system", "--uid", "10001", "--user-group", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", "gproxy"]
USER 10001:10001
# 5000: the listen port the README and the deploy/ manifests use for -p (any port works).
# 9901: --admin-address (/healthz, /readyz, /metrics, /debug/endpoints). Its default binds
# 127.0.0.1, which nothing outside the container reaches: pass --admin-address :9901 (every
# address) where probes or scrapers need it, as deploy/ does.
EXPOSE 5000/tcp 9901/tcp
ENTRYPOINT ["gproxy-mp"]
CMD ["--help"]
