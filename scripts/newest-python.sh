#!/usr/bin/env bash
# Print the path of the newest CPython 3.x on this machine (pyenv's versions, then python3.N on
# PATH), for `make test-newest`. Exit 1 with one line on stderr when none is newer than 3.11,
# the oldest version gproxy-mp supports (which `make test` already covers).
set -euo pipefail
candidates=()
if command -v pyenv >/dev/null 2>&1; then
  root="$(pyenv root)"
  for python in "$root"/versions/3.*/bin/python3.*; do
    [[ "$python" =~ /python3\.[0-9]+$ ]] && candidates+=("$python")
  done
fi
for minor in $(seq 12 20); do
  python="$(command -v "python3.$minor" 2>/dev/null || true)"
  [ -n "$python" ] && candidates+=("$python")
done
best="" best_version=0
for python in "${candidates[@]}"; do
  # A pyenv shim for a version that is not installed fails here, and is skipped.
  version="$("$python" -c 'import sys; print(sys.version_info[0] * 1000 + sys.version_info[1])' \
    2>/dev/null)" || continue
  if [ "$version" -gt "$best_version" ]; then best="$python" best_version="$version"; fi
done
if [ "$best_version" -le 3011 ]; then
  echo "error: no CPython newer than 3.11 found (pyenv install 3.13, or make test-newest NEWEST_PYTHON=/path/to/python3.13)" >&2
  exit 1
fi
echo "$best"
