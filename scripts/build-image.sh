#!/usr/bin/env bash
# Build the container image from the Dockerfile (`make image`; tests/container): gproxy-mp:dev,
# or the name IMAGE gives. Prints progress on stderr and the image's name as the last line of
# stdout.
#
# Engine: docker where its daemon answers, else podman (CONTAINER_ENGINE=docker|podman to
# choose). Podman runs with scripts/containers.conf (CONTAINERS_CONF: the machine's own
# configuration is neither read nor changed) and --network host; that file says why.
#
# Base: the Dockerfile's default BASE_IMAGE:BASE_TAG (the pinned official Python image) where
# the engine has it or can pull it. Where it cannot be pulled (no registry reachable), an equivalent base is
# made from Debian packages of the release the official tag names (its python3 and
# python3-venv, linked at /usr/local/bin/python3 as the official image has it) with mmdebstrap,
# imported as localhost/gproxy-mp-base:<release>, and reused by later builds (remove that
# image to refresh it); one line says so. BASE_IMAGE=name BASE_TAG=tag build on that base
# instead, as is.
#
# Every step is bounded (PULL_TIMEOUT, BASE_TIMEOUT, BUILD_TIMEOUT seconds); a missing tool or
# a failed step ends the script with one line naming it and exit status 1 (2 for bad usage).
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE="${IMAGE:-gproxy-mp:dev}"
PULL_TIMEOUT="${PULL_TIMEOUT:-300}"   # a base image of ~50 MB; an unreachable registry fails at once
BASE_TIMEOUT="${BASE_TIMEOUT:-900}"   # mmdebstrap: ~20-60 s here, downloads ~40 MB of packages
BUILD_TIMEOUT="${BUILD_TIMEOUT:-1800}" # a cold build fetches Debian's Rust toolchain and the wheels
DAEMON_TIMEOUT=20                     # `docker info`: does a daemon answer?
LOCAL_BASE_PACKAGES="python3,python3-venv"

fail() { echo "error: $*" >&2; exit 1; }
say() { echo "build-image: $*" >&2; }

[ "$#" -eq 0 ] ||
  { echo "usage: [IMAGE=name:tag] [BASE_IMAGE=name BASE_TAG=tag] $0 (no arguments)" >&2; exit 2; }

# --- the engine ----------------------------------------------------------------------------
engine="${CONTAINER_ENGINE:-}"
if [ -z "$engine" ]; then
  if command -v docker >/dev/null 2>&1 && timeout "$DAEMON_TIMEOUT" docker info >/dev/null 2>&1; then
    engine=docker
  else
    engine=podman
  fi
fi
case "$engine" in
  podman)
    command -v podman >/dev/null 2>&1 ||
      fail "no docker daemon and no podman: install podman and runc (apt-get install podman runc), or start docker"
    command -v runc >/dev/null 2>&1 || fail "podman needs runc here (scripts/containers.conf): apt-get install runc"
    export CONTAINERS_CONF="$PWD/scripts/containers.conf"
    network=(--network host)
    ;;
  docker) network=() ;;
  *) echo "error: CONTAINER_ENGINE '$engine': expected docker or podman" >&2; exit 2 ;;
esac

# --- the base ------------------------------------------------------------------------------
official_name="$(sed -n 's/^ARG BASE_IMAGE=//p' Dockerfile)"
official_tag="$(sed -n 's/^ARG BASE_TAG=//p' Dockerfile)"
if [ -z "$official_name" ] || [ -z "$official_tag" ]; then
  fail "Dockerfile: no 'ARG BASE_IMAGE=<name>' and 'ARG BASE_TAG=<tag>' lines to read the default base from"
fi
official="$official_name:$official_tag"

# A short name as Docker Hub reads it: podman without a short-name alias would refuse it.
qualified() {
  local name="$1" first="${1%%/*}"
  if [[ "$name" != */* ]]; then echo "docker.io/library/$name"
  elif [[ "$first" != *.* && "$first" != *:* && "$first" != localhost ]]; then echo "docker.io/$name"
  else echo "$name"; fi
}

has_image() { "$engine" image inspect "$1" >/dev/null 2>&1; }

make_local_base() {
  local release="$1" name="$2" tmp
  command -v mmdebstrap >/dev/null 2>&1 ||
    fail "cannot pull $official and no mmdebstrap to make a local base: apt-get install mmdebstrap (or BASE_IMAGE=<an image you have>)"
  tmp="$(mktemp -d)"
  # shellcheck disable=SC2064  # expand $tmp now: it is local to this function
  trap "rm -rf '$tmp'" EXIT
  # shellcheck disable=SC2016  # "$1" is the hook's: mmdebstrap's shell expands it to the root
  if ! timeout "$BASE_TIMEOUT" mmdebstrap --quiet --variant=minbase --include="$LOCAL_BASE_PACKAGES" \
      --customize-hook='ln -s /usr/bin/python3 "$1/usr/local/bin/python3"' \
      "$release" "$tmp/base.tar" >"$tmp/mmdebstrap.log" 2>&1; then
    tail -n 20 "$tmp/mmdebstrap.log" >&2
    fail "mmdebstrap of Debian $release ($LOCAL_BASE_PACKAGES) failed or took over ${BASE_TIMEOUT}s"
  fi
  # The official image's PATH and locale; no CMD needed (the Dockerfile sets its own).
  timeout "$BASE_TIMEOUT" "$engine" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change "LABEL org.opencontainers.image.description=\"Debian $release minbase + $LOCAL_BASE_PACKAGES (scripts/build-image.sh)\"" \
    "$tmp/base.tar" "$name" >/dev/null || fail "$engine import of the local base $name failed"
  rm -rf "$tmp"
  trap - EXIT
}

if [ -n "${BASE_IMAGE:-}" ] || [ -n "${BASE_TAG:-}" ]; then
  if [ -z "${BASE_IMAGE:-}" ] || [ -z "${BASE_TAG:-}" ]; then
    echo "error: BASE_IMAGE and BASE_TAG go together (got '${BASE_IMAGE:-}' and '${BASE_TAG:-}')" >&2
    exit 2
  fi
  base_name="$BASE_IMAGE" base_tag="$BASE_TAG"
else
  base_name="$(qualified "$official_name")" base_tag="$official_tag"
  if ! has_image "$base_name:$base_tag" &&
     ! timeout "$PULL_TIMEOUT" "$engine" pull --quiet "$base_name:$base_tag" >/dev/null 2>&1; then
    release="${official_tag%%@*}" release="${release##*-}"  # 3.11.14-slim-trixie -> trixie
    [[ "$release" =~ ^[a-z]+$ ]] || fail "cannot read the Debian release from the base tag '$official_tag'"
    base_name="localhost/gproxy-mp-base" base_tag="$release"
    if has_image "$base_name:$base_tag"; then
      say "$official cannot be pulled: building on $base_name:$base_tag (Debian $release's python3, made earlier by this script)"
    else
      say "$official cannot be pulled: making $base_name:$base_tag from Debian $release packages (python3, python3-venv) with mmdebstrap"
      make_local_base "$release" "$base_name:$base_tag"
    fi
  fi
fi

# --- the image -----------------------------------------------------------------------------
# A CA bundle the host's pip is told to trust (a TLS-inspecting egress proxy's) goes to the
# builder as the secret "ca", for pip and cargo there (see the Dockerfile).
ca=()
host_ca="${PIP_CERT:-${SSL_CERT_FILE:-}}"
if [ -n "$host_ca" ]; then
  [ -f "$host_ca" ] || fail "PIP_CERT/SSL_CERT_FILE '$host_ca' is not a file"
  ca=(--secret "id=ca,src=$host_ca" --build-arg PIP_CERT=/run/secrets/ca
      --build-arg CARGO_HTTP_CAINFO=/run/secrets/ca)
fi
say "$engine build of $IMAGE on $base_name:$base_tag"
timeout "$BUILD_TIMEOUT" "$engine" build "${network[@]}" "${ca[@]}" \
  --build-arg "BASE_IMAGE=$base_name" --build-arg "BASE_TAG=$base_tag" --tag "$IMAGE" . >&2 || fail "$engine build of $IMAGE failed or took over ${BUILD_TIMEOUT}s (output above)"
echo "$IMAGE"
