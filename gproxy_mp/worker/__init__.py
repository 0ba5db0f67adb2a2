"""Worker processes: each serves one route's listen address and proxies every call (design §6).

Workers import grpc and zmq; they never import kubernetes, dns or the supervisor.
"""
