"""gproxy-mp's benchmarks, one subpackage per question; run them as ``python -m bench QUESTION``.

``cost`` (and its ``profile``), ``discovery`` (DNS and Kubernetes), ``scale``, ``connections``;
``rig`` holds the nginx/h2load/grpcio rig that ``cost``, ``profile`` and ``connections`` share;
``results`` writes every question's results and chart. Real peers (backends, traffic, DNS
server, control plane, process facts) come from ``harness``; nothing here imports ``tests``.
"""
