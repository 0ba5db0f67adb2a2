"""Test-only support: bounded runs of a benchmark's ``--smoke`` mode (`smoke`) and call
traffic (`traffic`). The real peers themselves (backend program, processes, process facts,
clients, fixtures) are the top-level ``harness`` package, shared with ``bench``.
"""
