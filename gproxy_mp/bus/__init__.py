"""The endpoint bus: ZeroMQ sockets between the supervisor and its workers (design §4)."""
