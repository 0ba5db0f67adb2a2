"""A real DNS server for the DNS tier: one dnsmasq process answering from a hosts file.

dnsmasq listens on 127.0.0.1 on a free port and answers only from `hosts_path`; names under
`.test` that the file does not list get NXDOMAIN (`--local=/test/`), every other name gets
REFUSED (no upstream servers). A name outside `.test` that the file lists is answered for the
families the file gives it, and a query for a family it lacks is forwarded, so REFUSED: the A
answer with a refused AAAA that a dnsmasq without an upstream gives for a hosts-file name.
`set_hosts` rewrites the file atomically, sends SIGHUP, and waits until queries give the new
answers; `stop` and `start` take the server away and bring it back on the same port. The
process runs in its own session and only its group is ever signalled.

Concurrency: used from the test thread only.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

from harness.processes import signal_group

START_TIMEOUT = 10.0
"""Seconds dnsmasq may take to answer its first query."""
STOP_TIMEOUT = 5.0
"""Seconds between SIGTERM and SIGKILL."""
RELOAD_TIMEOUT = 10.0
"""Seconds dnsmasq may take, after SIGHUP, to answer from a rewritten hosts file."""
QUERY_TIMEOUT = 0.5
"""Seconds one probe query may take."""
PROBE_INTERVAL = 0.05
"""Seconds between two probe queries."""
PORT_ATTEMPTS = 50
"""Candidate ports tried before giving up on finding one free for both UDP and TCP."""

LOCAL_DOMAIN = "test"
"""The domain dnsmasq answers for alone (`--local`): NXDOMAIN and empty answers, never REFUSED."""

Answer = frozenset[str] | None
"""The A and AAAA addresses of a name, or None for NXDOMAIN."""


def find_dnsmasq() -> str | None:
    """dnsmasq's path; /usr/sbin is searched too, since it is not on every user's PATH."""
    return shutil.which("dnsmasq") or shutil.which("dnsmasq", path="/usr/sbin:/sbin")


def free_dns_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago for both UDP and TCP."""
    for _ in range(PORT_ATTEMPTS):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port: int = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError(f"no port free for UDP and TCP after {PORT_ATTEMPTS} attempts")


def parse_hosts(lines: Iterable[str]) -> dict[str, frozenset[str]]:
    """`address name...` lines → the addresses of each name."""
    names: dict[str, set[str]] = {}
    for line in lines:
        address, *aliases = line.split()
        for name in aliases:
            names.setdefault(name, set()).add(address)
    return {name: frozenset(addresses) for name, addresses in names.items()}


class DnsServer:
    """A dnsmasq on 127.0.0.1:`port`, answering from the lines given to `set_hosts`."""

    def __init__(self, *, executable: str, directory: Path) -> None:
        self.executable = executable
        self.port = free_dns_port()
        self.hosts_path = directory / "dns-hosts"
        self.log_path = directory / "dnsmasq.log"
        self.hosts_path.write_text("")
        self._names: dict[str, frozenset[str]] = {}
        self._log = self.log_path.open("ab")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start dnsmasq (again, on the same port) and wait until it answers."""
        assert self.process is None or self.process.poll() is not None, "already running"
        args = [
            self.executable,
            "--keep-in-foreground",
            f"--port={self.port}",
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            f"--addn-hosts={self.hosts_path}",
            "--local-ttl=1",
            f"--local=/{LOCAL_DOMAIN}/",
            "--log-facility=-",
            f"--pid-file={self.hosts_path.parent / 'dnsmasq.pid'}",
        ]
        if os.geteuid() == 0:
            args.append("--user=root")  # dropping to nobody would lose access to tmp_path
        self.process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while self.answer("probe.test") is False:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"dnsmasq exited with {self.process.returncode}\n{self.output()}"
                )
            if time.monotonic() >= deadline:
                raise RuntimeError(f"dnsmasq not answering after {START_TIMEOUT}s\n{self.output()}")
            time.sleep(PROBE_INTERVAL)

    def stop(self) -> None:
        """SIGTERM, a bounded wait, then SIGKILL; the port stays reserved for `start`."""
        if self.process is None:
            return
        if self.process.poll() is None:
            signal_group(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=STOP_TIMEOUT)
        if self.process.poll() is None:
            signal_group(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=STOP_TIMEOUT)

    def close(self) -> None:
        self.stop()
        self._log.close()

    def set_hosts(self, lines: Iterable[str]) -> None:
        """Serve exactly these `address name` lines; return once queries show them."""
        lines = list(lines)
        names = parse_hosts(lines)
        staged = self.hosts_path.with_suffix(".new")
        staged.write_text("".join(f"{line}\n" for line in lines))
        os.replace(staged, self.hosts_path)  # dnsmasq never reads a half-written file
        expected: dict[str, Answer] = {name: None for name in self._names}
        expected.update(names)
        self._names = names
        assert self.process is not None and self.process.poll() is None, self.output()
        self.process.send_signal(signal.SIGHUP)
        seen = self._wait_answers(expected)
        assert seen == expected, (
            f"dnsmasq still answers {seen} after {RELOAD_TIMEOUT}s, want {expected}\n"
            f"{self.output()}"
        )

    def _wait_answers(self, expected: Mapping[str, Answer]) -> dict[str, Answer | bool]:
        deadline = time.monotonic() + RELOAD_TIMEOUT
        while True:
            seen = {name: self.answer(name, rdtypes=_probed_types(name, addresses))
                    for name, addresses in expected.items()}
            if seen == expected or time.monotonic() >= deadline:
                return seen
            time.sleep(PROBE_INTERVAL)

    def answer(
        self,
        name: str,
        *,
        rdtypes: Iterable[dns.rdatatype.RdataType] = (dns.rdatatype.A, dns.rdatatype.AAAA),
    ) -> Answer | bool:
        """The addresses of `name` for `rdtypes`; None for NXDOMAIN; False for no answer."""
        addresses: set[str] = set()
        for rdtype in rdtypes:
            query = dns.message.make_query(name, rdtype)
            try:
                reply = dns.query.udp(query, "127.0.0.1", port=self.port, timeout=QUERY_TIMEOUT)
            except (OSError, dns.exception.DNSException):
                return False
            if reply.rcode() == dns.rcode.NXDOMAIN:
                return None
            if reply.rcode() != dns.rcode.NOERROR:
                return False
            addresses.update(rdata.to_text() for rrset in reply.answer for rdata in rrset)
        return frozenset(addresses)

    def output(self) -> str:
        return f"--- dnsmasq on port {self.port}\n{self.log_path.read_text(errors='replace')}"


def _probed_types(name: str, addresses: Answer) -> list[dns.rdatatype.RdataType]:
    """The query types that show a name's hosts lines: both under `.test`; outside it only the
    families listed, since a query for another family is REFUSED (forwarded, no upstream)."""
    if addresses is None or name == LOCAL_DOMAIN or name.endswith(f".{LOCAL_DOMAIN}"):
        return [dns.rdatatype.A, dns.rdatatype.AAAA]
    families = {":" in address for address in addresses}
    return [rdtype for rdtype, v6 in ((dns.rdatatype.A, False), (dns.rdatatype.AAAA, True))
            if v6 in families]
