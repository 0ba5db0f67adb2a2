"""A real Kubernetes control plane for tests and benchmarks, inside a network namespace.

``netns`` (the namespace and threads pinned into it), ``pki`` (CA, serving certs, tokens),
``binaries`` (locating etcd and kube-apiserver), ``process`` (one control-plane program),
``controlplane`` (etcd + kube-apiserver), ``cluster`` (the API client hands), ``sandbox``
(namespace + control plane + admin client as one resource), ``workloads`` (backends, proxies and
callers started in the namespace), ``routes`` (the proxy under test there: its command line and
what it resolved) and ``fakeapi`` (an HTTP server that speaks the watch protocol badly on
purpose).
"""
