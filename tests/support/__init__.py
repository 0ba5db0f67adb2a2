"""Test support: a real raw-bytes gRPC backend, client helpers and process fixtures.

Nothing here imports ``gproxy_mp``: the process tests drive the product only
through its command line, the way users do.
"""
