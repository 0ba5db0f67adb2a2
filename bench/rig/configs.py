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


def gproxy_argv(python: str, *, port: int, backends: list[str], workers: int,
                data_plane: str | None = None) -> list[str]:
    """gproxy-mp in front of every backend; ``data_plane`` adds ``--data-plane`` (None: no
    option, for a ``--baseline`` checkout that may predate it: its own default plane)."""
    target = "static:///" + ",".join(backends)
    return [python, "-m", "gproxy_mp", "-p", f"127.0.0.1:{port}-{target}",
            "--workers", str(workers), "-d", "0s", "--admin-address", "off",
            "--log-level", "warning", *(["--data-plane", data_plane] if data_plane else [])]


def go_gproxy_argv(binary: str, *, port: int, backends: list[str]) -> list[str]:
    """The Go gproxy (kube-grpc-balancer) in front of the first backend only: it has no static
    resolver, and ``dns:///`` with an IP literal resolves to that one address."""
    return [binary, "-p", f"127.0.0.1:{port}-dns:///{backends[0]}", "-d", "0s"]


# TLS (``python -m bench cost --tls``): the same texts with TLS added, so that every plaintext
# text above stays as it is. Each builder starts from the plaintext one and replaces one anchor;
# a missing anchor is an error, not a silently plaintext configuration.


def _replace_once(text: str, anchor: str, replacement: str) -> str:
    if text.count(anchor) != 1:
        raise ValueError(f"expected {anchor!r} once in the configuration text")
    return text.replace(anchor, replacement)


def nginx_backend_tls(*, directory: Path, www: Path, port: int, tls_port: int, cert: Path,
                      key: Path) -> str:
    """``nginx_backend`` that also listens on ``tls_port`` with TLS (``ssl http2``), in the same
    server block: the same backend reached in clear on ``port`` and over TLS on ``tls_port``."""
    listen = f"listen 127.0.0.1:{port} http2;"
    return _replace_once(
        nginx_backend(directory=directory, www=www, port=port), listen,
        f"{listen}\n    listen 127.0.0.1:{tls_port} ssl http2;\n"
        f"    ssl_certificate {cert}; ssl_certificate_key {key};")


def nginx_proxy_tls(*, directory: Path, port: int, backends: list[str], cert: Path, key: Path,
                    ca: Path, server_name: str) -> str:
    """``nginx_proxy`` with TLS on both hops: its listener ``ssl http2`` with ``cert`` and
    ``key``; towards ``backends`` (their TLS ports) ``grpcs://``, verifying them against ``ca``
    and the name ``server_name`` (also sent as SNI), TLS sessions reused across connections."""
    text = nginx_proxy(directory=directory, port=port, backends=backends)
    text = _replace_once(text, f"listen 127.0.0.1:{port} http2 reuseport;",
                         f"listen 127.0.0.1:{port} ssl http2 reuseport;\n"
                         f"    ssl_certificate {cert}; ssl_certificate_key {key};")
    return _replace_once(
        text, "grpc_pass grpc://backends;",
        f"grpc_pass grpcs://backends;\n      grpc_ssl_verify on; "
        f"grpc_ssl_trusted_certificate {ca};\n      grpc_ssl_name {server_name}; "
        f"grpc_ssl_server_name on; grpc_ssl_session_reuse on;")


def gproxy_tls_options(*, cert: Path, key: Path, ca: Path, server_name: str) -> list[str]:
    """gproxy-mp options for TLS on both hops: its listener with ``cert`` and ``key``; towards
    the backends verifying them against ``ca`` and the name ``server_name``."""
    return ["--tls-cert", str(cert), "--tls-key", str(key), "--backend-tls",
            "--backend-ca", str(ca), "--backend-tls-server-name", server_name]
