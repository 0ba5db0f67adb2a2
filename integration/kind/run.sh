#!/usr/bin/env bash
# The kind suite: gproxy-mp's image and deploy/base in a real Kubernetes cluster.
#
#   integration/kind/run.sh [PYTEST-ARGS...]
#   integration/kind/run.sh --dry-run [--kind-config PATH] [--workflow PATH]
#
# Needs a Docker engine, kind (v0.33.0: `go install sigs.k8s.io/kind@v0.33.0`), kubectl, and the
# repository's .venv (`make install`). Not part of `make test` or CI: there is no Docker engine
# there. Steps: create a one-node cluster, build the image, load it into the node, apply
# integration/kind/manifests (deploy/base + backends), wait for the rollouts, run
# integration/kind with pytest. On exit, whatever happened: objects, pod logs and `kind export
# logs` go to $ARTIFACTS, and the cluster is deleted (GPROXY_KIND_KEEP=1 keeps it).
#
# --dry-run needs no Docker, kind or kubectl, creates nothing and runs in seconds: shellcheck
# of this directory's scripts (skipped, with a hint, where shellcheck is not installed), the
# kind config, the manifests' and .github/workflows/kind.yml's YAML, and `pytest
# --collect-only` of the suite (integration/kind/dry_run.py). tests/deploy runs it in CI.
#
# Environment:
#   GPROXY_KIND_CLUSTER     cluster name                        (gproxy-e2e)
#   GPROXY_KIND_NODE_IMAGE  node image                          (see NODE_IMAGE below)
#   GPROXY_KIND_KEEP        1: keep the cluster after the run   (0)
#   ARTIFACTS               where logs go                       (.cache/kind/<time>)
#   PYTHON                  the interpreter that runs pytest    (.venv/bin/python)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"

CLUSTER="${GPROXY_KIND_CLUSTER:-gproxy-e2e}"
KIND_VERSION="v0.33.0"
# Kubernetes v1.37.0: the default node image of kind v0.33.0, digest included, as written in
# that release's source (sigs.k8s.io/kind@v0.33.0 pkg/apis/config/defaults/image.go). Node
# images are built for one kind release; a newer v1.37.x patch image is listed in the notes of
# the kind release that built it. Verify with `docker pull` on first use, and keep tag and
# digest together when changing it.
NODE_IMAGE="${GPROXY_KIND_NODE_IMAGE:-kindest/node:v1.37.0@sha256:a1ed56cfb0e7b93589bdf97c8cd566405a265939e3620fc4f5de89adff580ae5}"
IMAGE="gproxy-mp:e2e"
KEEP="${GPROXY_KIND_KEEP:-0}"
ARTIFACTS="${ARTIFACTS:-$REPO/.cache/kind/$(date +%Y%m%dT%H%M%S)}"
PYTHON="${PYTHON:-$REPO/.venv/bin/python}"

die() {
  echo "run.sh: $*" >&2
  exit 2
}

if [ "${1:-}" = "--dry-run" ]; then
  shift
  [ -x "$PYTHON" ] || die "$PYTHON not found: run 'make install' first, or set PYTHON"
  cd "$REPO"
  exec "$PYTHON" -m integration.kind.dry_run "$@"
fi

for tool in docker kind kubectl; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found"
done
docker info >/dev/null 2>&1 || die "no Docker engine answers (docker info failed)"
[ -x "$PYTHON" ] || die "$PYTHON not found: run 'make install' first, or set PYTHON"
kind_version="$(kind version)"
case "$kind_version" in
  *"$KIND_VERSION "*) ;;
  *) echo "run.sh: warning: $kind_version; this suite pins a node image of kind $KIND_VERSION" >&2 ;;
esac
if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  die "a kind cluster named $CLUSTER exists already; delete it (kind delete cluster --name $CLUSTER) or set GPROXY_KIND_CLUSTER"
fi

mkdir -p "$ARTIFACTS"
# A kubeconfig of this run's own: kubectl and the tests see only this cluster, and the user's
# ~/.kube/config is left alone.
export KUBECONFIG="$ARTIFACTS/kubeconfig"

cleanup() {
  local rc=$?
  set +e
  echo "--- run.sh: collecting logs into $ARTIFACTS"
  kubectl get all,endpointslices,events -A -o wide >"$ARTIFACTS/objects.txt" 2>&1
  kubectl logs -n gproxy-mp -l app.kubernetes.io/name=gproxy-mp --all-containers --prefix \
    --tail=-1 >"$ARTIFACTS/gproxy-mp.log" 2>&1
  kubectl logs -n default -l app.kubernetes.io/name=backend --all-containers --prefix \
    --tail=-1 >"$ARTIFACTS/backend.log" 2>&1
  kind export logs "$ARTIFACTS/kind" --name "$CLUSTER" >/dev/null 2>&1
  if [ "$KEEP" = "1" ]; then
    echo "--- run.sh: keeping cluster $CLUSTER (KUBECONFIG=$KUBECONFIG)"
  else
    kind delete cluster --name "$CLUSTER"
  fi
  exit "$rc"
}
trap cleanup EXIT

echo "--- run.sh: creating cluster $CLUSTER ($NODE_IMAGE)"
kind create cluster --name "$CLUSTER" --config "$HERE/kind-config.yaml" \
  --image "$NODE_IMAGE" --kubeconfig "$KUBECONFIG" --retain --wait 180s

echo "--- run.sh: building $IMAGE"
docker build --tag "$IMAGE" "$REPO"
kind load docker-image "$IMAGE" --name "$CLUSTER"

echo "--- run.sh: applying integration/kind/manifests"
kubectl apply -k "$HERE/manifests"
kubectl rollout status deployment/backend -n default --timeout=180s
kubectl rollout status daemonset/gproxy-mp -n gproxy-mp --timeout=180s

echo "--- run.sh: pytest integration/kind"
cd "$REPO"
GPROXY_KIND=1 GPROXY_KIND_CLUSTER="$CLUSTER" GPROXY_KIND_PROXY_ADDRESS="127.0.0.1:15000" \
  "$PYTHON" -m pytest "$HERE" -v -rA -p no:cacheprovider "$@"
