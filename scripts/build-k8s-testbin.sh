#!/usr/bin/env bash
# Build the Kubernetes tiers' real peers from Go modules into the git-ignored .cache/testbin/ (never
# commit the binaries): kube-apiserver and etcd (tests/kubernetes), and kube-controller-manager and
# kube-scheduler of the same Kubernetes version (tests/cluster, the real-controllers tier).
#
# No Python, npm or Debian package ships kube-apiserver, and `go install k8s.io/kubernetes/...@v`
# cannot work (k8s's go.mod requires its staging modules at v0.0.0 and replaces them with local
# paths), so testbin/k8s/ is a wrapper module that replaces each staging module with its published
# v0.Y.Z. The Kubernetes version is the one that go.mod requires; etcd is go.etcd.io/etcd/server/v3
# at the version Kubernetes itself selects for its etcd client.
#
# Idempotent: skips the build when `kube-apiserver --version` already prints the wanted version and
# etcd runs. Set FORCE=1 to rebuild. GOMODCACHE / GOCACHE are honoured when set (CI may point them
# at a cache directory); otherwise Go's defaults are used.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
MODDIR="$ROOT/testbin/k8s"
OUT="${TESTBIN_DIR:-$ROOT/.cache/testbin}"
export CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false"

# The wanted version comes from the wrapper's go.mod, the one place it is written down.
K="$(sed -n 's/^\(require\)\{0,1\}[[:space:]]*k8s\.io\/kubernetes \(v[0-9][^ ]*\).*/\2/p' \
  "$MODDIR/go.mod" | head -n1)"
[ -n "$K" ] || { echo "build-k8s-testbin: no k8s.io/kubernetes version in $MODDIR/go.mod" >&2; exit 2; }
MINOR="$(echo "$K" | cut -d. -f2)"

COMPONENTS="kube-apiserver kube-controller-manager kube-scheduler"

have_wanted() {
  for c in $COMPONENTS; do
    [ -x "$OUT/$c" ] && [ "$("$OUT/$c" --version 2>/dev/null)" = "Kubernetes $K" ] || return 1
  done
  [ -x "$OUT/etcd" ] && "$OUT/etcd" --version >/dev/null 2>&1
}

if [ "${FORCE:-0}" != 1 ] && have_wanted; then
  echo "build-k8s-testbin: $COMPONENTS $K and etcd already in $OUT, nothing to do"
  exit 0
fi
command -v go >/dev/null 2>&1 || { echo "build-k8s-testbin: go is not installed" >&2; exit 2; }

step_start=$SECONDS
total_start=$SECONDS
step() { # step NAME: print the previous step's duration, then announce the next one
  echo "build-k8s-testbin: $1 (previous step $((SECONDS - step_start)) s)"
  step_start=$SECONDS
}

cd "$MODDIR"
mkdir -p "$OUT"

# Record the programs as tools (Go >= 1.24) so `go mod tidy` keeps their dependencies. Only done
# when go.mod does not record them yet; a committed go.mod/go.sum makes this a no-op.
for c in $COMPONENTS; do
  if ! grep -q "k8s.io/kubernetes/cmd/$c\$" go.mod; then
    step "go get -tool $c@$K"
    go get -tool "k8s.io/kubernetes/cmd/$c@$K"
  fi
done
if ! grep -Eq '(^|\s)go.etcd.io/etcd/server/v3$' go.mod; then
  ETCD="$(go list -m -f '{{.Version}}' go.etcd.io/etcd/client/v3)"
  step "go get -tool etcd server $ETCD"
  go get -tool "go.etcd.io/etcd/server/v3@$ETCD"
  go mod tidy
fi
ETCD="$(go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)"

step "download modules"
go mod download

VERSION_FLAGS="-X k8s.io/component-base/version.gitVersion=$K
  -X k8s.io/component-base/version.gitMajor=1
  -X k8s.io/component-base/version.gitMinor=$MINOR
  -X k8s.io/component-base/version.gitTreeState=clean
  -X k8s.io/client-go/pkg/version.gitVersion=$K"
# -p 2: kube-apiserver's generated packages are large; more parallel compiles only add memory.
for c in $COMPONENTS; do
  step "build $c $K"
  go build -p 2 -ldflags "-s -w $(echo $VERSION_FLAGS)" -o "$OUT/$c.new" "k8s.io/kubernetes/cmd/$c"
  mv "$OUT/$c.new" "$OUT/$c"
done

step "build etcd $ETCD"
go build -p 2 -ldflags "-s -w" -o "$OUT/etcd.new" go.etcd.io/etcd/server/v3
mv "$OUT/etcd.new" "$OUT/etcd"

step "check versions"
for c in $COMPONENTS; do "$OUT/$c" --version; done
"$OUT/etcd" --version | sed -n 1p  # sed reads all: no SIGPIPE under pipefail
have_wanted || { echo "build-k8s-testbin: built binaries do not report $K" >&2; exit 1; }
echo "build-k8s-testbin: done in $((SECONDS - total_start)) s"
