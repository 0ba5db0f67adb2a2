"""How calls split over gproxy-mp's workers when the kernel spreads connections, with and
without ``--max-connection-age`` (``python -m bench connections``)."""
