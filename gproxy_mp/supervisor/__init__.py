"""The supervisor: validates, resolves, publishes, starts and restarts workers, shuts down.

It never imports grpc (design §1): the data path lives in the workers only.
"""
