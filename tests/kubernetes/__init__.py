"""Kubernetes tier: a real etcd and kube-apiserver in a network namespace."""
