"""The rig ``cost``, ``profile`` and ``connections`` share: fixed-response nginx backends, the
proxies in front of them (gproxy-mp, nginx, HAProxy) as process groups, the workloads, h2load
and the grpcio client process."""
