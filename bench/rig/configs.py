"""Configuration files of the peers: fixed-response nginx backends and the two reference proxies.

Pure text builders, no I/O. The backend is the one from the benchmarking method that held up:
nginx as an HTTP/2 cleartext server answering every POST with a file of gRPC frames plus the
trailer ``grpc-status: 0``. Its pitfalls, and why each directive is there:

- nginx's static handler refuses POST (405), hence ``error_page 405 =200 /files$uri``;
- without ``mirror_request_body on`` nginx answers before reading the request body, then resets
  the stream, which breaks any proxy in front of it;
- bodies above ``client_body_buffer_size`` spill to temp files and make nginx the bottleneck;
- ``client_max_body_size 0`` lets the 5 MiB probe through (the default 1m answers 413).

Reference proxies: nginx ``grpc_pass`` with 2 workers and ``reuseport`` (each worker has its own
accept queue, like gproxy-mp's workers; without it one worker takes every connection), an
upstream keepalive pool of 1024 connections and a huge ``keepalive_requests`` so upstream
connections are never recycled during a run; HAProxy in ``mode http`` with HTTP/2 on both sides
and its default thread count (one per CPU: 2 here).
"""

from __future__ import annotations

from pathlib import Path

NGINX_COMMON = """daemon off; pid {dir}/nginx.pid; error_log {dir}/error.log error;
events {{ worker_connections 4096; }}
"""

NGINX_BACKEND = NGINX_COMMON + """worker_processes 1;
http {{ access_log off; client_body_buffer_size 1m; client_max_body_size 0;
  keepalive_requests 100000000;
  http2_max_concurrent_streams 1024; client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  server {{ listen 127.0.0.1:{port} http2; root {www}; types {{ }}
    default_type application/grpc;
    location / {{ mirror /mirror_sink; mirror_request_body on; error_page 405 =200 /files$uri; }}
    location /files/ {{ internal; alias {www}/; add_trailer grpc-status 0 always; }}
    location = /mirror_sink {{ internal; return 204; }} }} }}
"""

NGINX_PROXY = NGINX_COMMON + """worker_processes {workers};
http {{ access_log off; client_body_buffer_size 1m; client_max_body_size 0;
  keepalive_requests 100000000;
  http2_max_concurrent_streams 1024; client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  upstream backends {{
{servers}
    keepalive 1024; keepalive_requests 100000000; keepalive_timeout 600s; }}
  server {{ listen 127.0.0.1:{port} http2 reuseport;
    location / {{ grpc_pass grpc://backends; }} }} }}
"""

HAPROXY = """global
    maxconn 4000
defaults
    mode http
    timeout connect 5s
    timeout client 120s
    timeout server 120s
frontend grpc
    bind 127.0.0.1:{port} proto h2
    default_backend backends
backend backends
    balance roundrobin
{servers}
"""


def nginx_backend(*, directory: Path, www: Path, port: int) -> str:
    return NGINX_BACKEND.format(dir=directory, www=www, port=port)


def nginx_proxy(*, directory: Path, port: int, backends: list[str], workers: int = 2) -> str:
    servers = "\n".join(f"    server {address};" for address in backends)
    return NGINX_PROXY.format(dir=directory, port=port, servers=servers, workers=workers)


def haproxy(*, port: int, backends: list[str]) -> str:
    servers = "\n".join(
        f"    server b{index} {address} proto h2" for index, address in enumerate(backends))
    return HAPROXY.format(port=port, servers=servers)


def gproxy_argv(python: str, *, port: int, backends: list[str], workers: int) -> list[str]:
    target = "static:///" + ",".join(backends)
    return [python, "-m", "gproxy_mp", "-p", f"127.0.0.1:{port}-{target}",
            "--workers", str(workers), "-d", "0s", "--admin-address", "off",
            "--log-level", "warning"]


def go_gproxy_argv(binary: str, *, port: int, backends: list[str]) -> list[str]:
    """The Go gproxy (kube-grpc-balancer) in front of the first backend only: it has no static
    resolver, and ``dns:///`` with an IP literal resolves to that one address."""
    return [binary, "-p", f"127.0.0.1:{port}-dns:///{backends[0]}", "-d", "0s"]
