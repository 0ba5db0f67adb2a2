"""Every file the proxy reads has a size bound: `/dev/zero` (endless) given for any of them is
one line naming the option and the bound, exit 2, within seconds, through the real CLI.

The child runs under an address-space limit, so that a build without the bound fails the test
with a MemoryError instead of growing until the machine runs out of memory.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.certs import CertificateAuthority
from harness.processes import free_port

pytestmark = pytest.mark.timeout(60)

ENDLESS = "/dev/zero"
ADDRESS_SPACE = 2 << 30
"""Bytes of address space the child may map: far more than a refused start needs."""
FAST = 10.0
"""Seconds within which a refused start must have exited (a loaded machine included)."""


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def static_route() -> list[str]:
    return ["-p", f"127.0.0.1:{free_port()}-static:///127.0.0.1:1"]


Args = Callable[[CertificateAuthority], list[str]]

ENDLESS_FILES: list[object] = [
    pytest.param("--proto-descriptor-set",
                 lambda ca: [*static_route(), "--proto-descriptor-set", ENDLESS],
                 id="descriptor-set"),
    pytest.param("--tls-cert",
                 lambda ca: [*static_route(), "--tls-cert", ENDLESS,
                             "--tls-key", str(ca.issue("p").key)], id="tls-cert"),
    pytest.param("--tls-key",
                 lambda ca: [*static_route(), "--tls-cert", str(ca.issue("p").cert),
                             "--tls-key", ENDLESS], id="tls-key"),
    pytest.param("--tls-client-ca",
                 lambda ca: [*static_route(), "--tls-cert", str(ca.issue("p").cert),
                             "--tls-key", str(ca.issue("p").key), "--tls-client-ca", ENDLESS],
                 id="tls-client-ca"),
    pytest.param("--backend-ca",
                 lambda ca: [*static_route(), "--backend-tls", "--backend-ca", ENDLESS],
                 id="backend-ca"),
    pytest.param("--backend-cert",
                 lambda ca: [*static_route(), "--backend-tls", "--backend-cert", ENDLESS,
                             "--backend-key", str(ca.issue("c", client=True).key)],
                 id="backend-cert"),
    pytest.param("--kubeconfig",
                 lambda ca: ["-p", f"127.0.0.1:{free_port()}-kubernetes:///svc.ns:80",
                             "--kubeconfig", ENDLESS], id="kubeconfig"),
]


@pytest.mark.parametrize(("option", "args"), ENDLESS_FILES)
def test_an_endless_file_is_one_line_naming_the_option_and_its_bound_and_exit_2(
    option: str, args: Args, tmp_path: Path,
) -> None:
    ca = CertificateAuthority(tmp_path / "ca")
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "gproxy_mp", "--admin-address", "off", *args(ca)],
        capture_output=True, text=True, timeout=30, check=False, preexec_fn=_limit_memory)
    elapsed = time.monotonic() - started
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result
    assert len(lines) == 1 and "Traceback" not in result.stderr, lines
    assert option in lines[0] and ENDLESS in lines[0] and "MiB" in lines[0], lines
    assert elapsed < FAST, f"{elapsed:.1f}s: {lines}"
