#!/usr/bin/env bash
# Build the official grpc-go interop server and client, the real peers of the conformance tier
# (tests/conformance/), into .cache/testbin/interop-{server,client}.
#
# The grpc-go version is pinned by the wrapper module testbin/interop/ (go.mod `tool` directives
# plus go.sum), so a fresh machine needs only the Go toolchain and the Go module proxy. The build
# is skipped when both binaries exist and the stamp file names the same pinned version; binaries
# are written under a temporary name and moved into place, and the stamp is written last, so an
# interrupted build is simply redone. Binaries live in the git-ignored .cache/: never commit them.
set -euo pipefail
cd "$(dirname "$0")/.."

module_dir=testbin/interop
out_dir=.cache/testbin
server="$out_dir/interop-server"
client="$out_dir/interop-client"
stamp="$out_dir/interop.stamp"

started=$(date +%s.%N)
elapsed() { awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1fs", b - a }'; }

version=$(awk '$1 == "google.golang.org/grpc" { print $2 }' "$module_dir/go.mod")
if [[ -z "$version" ]]; then
  echo "error: $module_dir/go.mod does not require google.golang.org/grpc" >&2
  exit 1
fi
wanted="google.golang.org/grpc $version"

if [[ -x "$server" && -x "$client" && -f "$stamp" && "$(cat "$stamp")" == "$wanted" ]]; then
  echo "interop peers up to date ($wanted) in $out_dir, checked in $(elapsed)"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  echo "error: go not installed: cannot build the grpc-go interop peers" >&2
  exit 1
fi

mkdir -p "$out_dir"
rm -f "$stamp"
work=$(mktemp -d "$out_dir/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "building interop peers ($wanted) with $(go env GOVERSION)..."
# Static, path-independent binaries; -mod=readonly: go.mod and go.sum are the pin, never
# rewritten; -buildvcs=false: the wrapper module has nothing to stamp, and stamping needs git.
export CGO_ENABLED=0
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-trimpath -mod=readonly -buildvcs=false"
(cd "$module_dir" && go build -o "$OLDPWD/$work/" \
  google.golang.org/grpc/interop/server google.golang.org/grpc/interop/client)

mv -f "$work/server" "$server"
mv -f "$work/client" "$client"
echo "$wanted" >"$stamp"
echo "built $server and $client ($wanted) in $(elapsed)"
