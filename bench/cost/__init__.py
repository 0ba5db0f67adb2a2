"""What a call costs through gproxy-mp, against direct calls, nginx and HAProxy (``python -m bench
cost``), and where a worker spends that CPU (``python -m bench profile``)."""
