"""Churn and fault tier: backends, workers and the proxy itself come and go under client load."""
