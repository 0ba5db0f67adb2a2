#!/usr/bin/env bash
# Build kwok, the node and pod-lifecycle simulator of the real-controllers tier (tests/cluster/),
# into .cache/testbin/kwok.
#
# kwok's version is pinned by the wrapper module testbin/kwok/ (a go.mod `tool` directive plus
# go.sum), so a fresh machine needs only the Go toolchain and the Go module proxy. The build is
# skipped when the binary exists and the stamp file names the same pinned version; the binary is
# written under a temporary name and moved into place, and the stamp is written last, so an
# interrupted build is simply redone. Binaries live in the git-ignored .cache/: never commit them.
set -euo pipefail
cd "$(dirname "$0")/.."

module_dir=testbin/kwok
out_dir=.cache/testbin
binary="$out_dir/kwok"
stamp="$out_dir/kwok.stamp"

started=$(date +%s.%N)
elapsed() { awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1fs", b - a }'; }

version=$(awk '$1 == "sigs.k8s.io/kwok" { print $2 }' "$module_dir/go.mod")
if [[ -z "$version" ]]; then
  echo "error: $module_dir/go.mod does not require sigs.k8s.io/kwok" >&2
  exit 1
fi
wanted="sigs.k8s.io/kwok $version"

if [[ -x "$binary" && -f "$stamp" && "$(cat "$stamp")" == "$wanted" ]]; then
  echo "kwok up to date ($wanted) in $out_dir, checked in $(elapsed)"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  echo "error: go not installed: cannot build kwok" >&2
  exit 1
fi

mkdir -p "$out_dir"
rm -f "$stamp"
work=$(mktemp -d "$out_dir/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "building kwok ($wanted) with $(go env GOVERSION)..."
# Static, path-independent binary; -mod=readonly: go.mod and go.sum are the pin, never rewritten.
export CGO_ENABLED=0
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-trimpath -mod=readonly -buildvcs=false"
(cd "$module_dir" && go build -p 2 -ldflags "-s -w" \
  -o "$OLDPWD/$work/kwok" sigs.k8s.io/kwok/cmd/kwok)

mv -f "$work/kwok" "$binary"
echo "$wanted" >"$stamp"
echo "built $binary ($wanted) in $(elapsed)"
