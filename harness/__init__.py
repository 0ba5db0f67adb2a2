"""The test and benchmark harness: the real peers that tests/ and bench/ both use, written once.

Nothing here is part of the product (``gproxy_mp`` never imports it); it is checked by the same
ruff and ``mypy --strict`` as the product.
"""
