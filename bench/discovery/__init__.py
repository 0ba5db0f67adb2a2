"""How fast a change of the backend set reaches traffic through gproxy-mp: DNS
(``python -m bench discovery``) and Kubernetes EndpointSlices (``python -m bench discovery-k8s``),
with one change loop and one set of statistics."""
