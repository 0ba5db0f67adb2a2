"""``python -m bench balance``: round robin against least-request with one slow backend."""
