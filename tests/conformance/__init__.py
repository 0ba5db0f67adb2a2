"""Conformance tier: the official grpc-go interop client talks to grpc-go interop servers
through gproxy-mp (peers built from Go modules by scripts/build-interop.sh)."""
