"""IP-in-IP for the lab without the ``ipip`` kernel module: a user-space ``tunl0``.

The lab kernel has no ``ipip`` module, yet Calico's IPIP mode must put real protocol-4 packets on
the node network so that captures, MTU and source-address behaviour match a real cluster. The
topology code therefore creates ``tunl0`` in every node namespace as a persistent TUN device
(IFF_TUN|IFF_NO_PI, MTU 1480, tunnel IP /32, routes ``block via remoteNodeIP dev tunl0
onlink``), and this module does the module's job:

* encapsulation: a packet the kernel routes into ``tunl0`` is read from the TUN fd, the remote
  node owning the inner destination's block is found by longest-prefix match, and the inner
  packet is sent through a raw ``IPPROTO_IPIP`` socket bound to the node IP — the kernel
  writes the outer header (protocol 4, source = node IP, destination = remote node IP);
* decapsulation: the same raw socket receives every protocol-4 packet addressed to the node;
  packets whose outer source is not a cluster node are dropped (Calico only accepts IPIP from
  cluster hosts), the rest lose their outer header and are written into the TUN fd, so the
  kernel sees them arrive on ``tunl0`` and routes/polices them as it would after ``ipip_rcv``.

A raw socket bound to a protocol is also what stops the kernel from answering unhandled
protocol-4 packets with ICMP protocol-unreachable (``ip_local_deliver_finish`` only sends it
when no raw socket took the packet).

ONE process serves all nodes: a helper thread enters each namespace (``setns``; Python 3.11
has no ``os.setns``) and opens the fds there — sockets and TUN attachments keep the namespace
they were created in — and the main thread runs a single epoll loop over all of them. The lab
starts it with :func:`start_forwarder` (returns once the process printed ``ready``), registers
the PID, and ends it with :func:`stop_forwarder`. Per-node counters are written as JSON to
``stats_path`` on SIGUSR1 (:func:`request_stats`) and at exit, as evidence of tunnel traffic.

Note for teardown: the forwarder's sockets keep node namespaces alive after ``ip netns
delete``; stop the forwarder to release them.
"""

from __future__ import annotations

import errno
import fcntl
import ipaddress
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import IO, TYPE_CHECKING, Any

from netiso.backends.lab.netns import call_in

if TYPE_CHECKING:  # the forwarder process imports this module: keep its start-up light (no model)
    from netiso.model.types import Topology

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IPPROTO_IPIP = 4
SOCKET_BUFFER = 4 << 20  # absorbs connection bursts; per socket, no host sysctl touched
BATCH = 64  # packets drained per fd per wakeup, so one busy fd cannot starve the others
READY_LINE = "ready"


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class TunnelRoute:
    """``block`` is reached through the node whose node IP is ``remote_ip``."""

    block: str
    remote_ip: str


@dataclass(frozen=True)
class NodeTunnel:
    """One node: its namespace, its node IP (outer source) and its tunnel routes."""

    netns: str
    node_ip: str
    routes: tuple[TunnelRoute, ...] = ()
    tun: str = "tunl0"


@dataclass(frozen=True)
class ForwarderConfig:
    """Everything the forwarder process needs; serialised as JSON on its stdin or in a file.

    >>> cfg = ForwarderConfig.from_dict({"nodes": [{"netns": "lab-n-a", "node_ip": "198.18.0.10",
    ...     "routes": [{"block": "100.64.1.0/26", "remote_ip": "198.18.0.11"}]}]})
    >>> cfg.nodes[0].routes[0].remote_ip, cfg.nodes[0].tun
    ('198.18.0.11', 'tunl0')
    """

    nodes: tuple[NodeTunnel, ...]
    stats_path: str | None = None
    parent_pid: int | None = None  # exit when this process is gone (no orphaned forwarders)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ForwarderConfig:
        """Parse and validate; errors name the offending node and field."""
        nodes = []
        for i, raw in enumerate(data.get("nodes") or ()):
            where = f"nodes[{i}]"
            try:
                ipaddress.IPv4Address(raw["node_ip"])
                routes = tuple(
                    TunnelRoute(str(ipaddress.IPv4Network(r["block"])), str(ipaddress.IPv4Address(r["remote_ip"])))
                    for r in raw.get("routes") or ()
                )
                nodes.append(NodeTunnel(raw["netns"], raw["node_ip"], routes, raw.get("tun", "tunl0")))
            except (KeyError, ValueError) as exc:
                raise ValueError(f"ipip config {where}: {exc!r}") from exc
        if not nodes:
            raise ValueError("ipip config: no nodes")
        return cls(tuple(nodes), data.get("stats_path"), data.get("parent_pid"))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def config_for_topology(topology: Topology, prefix: str, stats_path: str | None = None) -> ForwarderConfig:
    """The forwarder config of a lab topology: every node routes every other node's block.

    Mirrors what BIRD programs in IPIP mode (``block via remoteNodeIP dev tunl0 onlink``); the
    topology code must install the same kernel routes.
    """
    from netiso.backends.lab.naming import node_ns

    nodes = tuple(
        NodeTunnel(
            netns=node_ns(prefix, node.name),
            node_ip=node.ip,
            routes=tuple(
                TunnelRoute(other.block, other.ip) for other in topology.nodes.values() if other.name != node.name
            ),
        )
        for node in topology.nodes.values()
    )
    return ForwarderConfig(nodes, stats_path)


# --------------------------------------------------------------------------- forwarder process


@dataclass
class Counters:
    """Per-node evidence: what went into and came out of the tunnel, and what was dropped."""

    encap_packets: int = 0
    encap_bytes: int = 0  # inner bytes
    decap_packets: int = 0
    decap_bytes: int = 0  # inner bytes
    drop_no_route: int = 0  # routed into tunl0 but no tunnel route for the inner destination
    drop_unknown_source: int = 0  # IPIP from a host that is not a cluster node
    drop_not_ipv4: int = 0  # e.g. IPv6 router solicitations if tunl0 has IPv6 enabled
    drop_malformed: int = 0  # truncated headers
    send_errors: int = 0
    write_errors: int = 0


@dataclass
class _Node:
    cfg: NodeTunnel
    tun_fd: int
    raw: socket.socket
    # prefix length -> {network as int -> remote node IP}, longest first
    table: list[tuple[int, dict[int, str]]] = field(default_factory=list)
    counters: Counters = field(default_factory=Counters)

    def lookup(self, dst: int) -> str | None:
        for plen, nets in self.table:
            remote = nets.get(dst & ((0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF))
            if remote is not None:
                return remote
        return None


def _build_table(routes: tuple[TunnelRoute, ...]) -> list[tuple[int, dict[int, str]]]:
    by_len: dict[int, dict[int, str]] = {}
    for r in routes:
        net = ipaddress.IPv4Network(r.block)
        by_len.setdefault(net.prefixlen, {})[int(net.network_address)] = r.remote_ip
    return sorted(by_len.items(), reverse=True)


def _open_tun(name: str) -> int:
    """Attach to the existing persistent TUN ``name`` (must be IFF_TUN|IFF_NO_PI, not in use)."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", name.encode(), IFF_TUN | IFF_NO_PI))
    except OSError as exc:
        os.close(fd)
        raise OSError(exc.errno, f"attach to TUN {name!r}: {exc.strerror}") from exc
    return fd


def _open_raw(node_ip: str) -> socket.socket:
    """Raw protocol-4 socket bound to the node IP: outer source = node IP, receives IPIP to it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, IPPROTO_IPIP)
    sock.setblocking(False)
    for force, plain in ((33, socket.SO_RCVBUF), (32, socket.SO_SNDBUF)):  # SO_*BUFFORCE
        try:
            sock.setsockopt(socket.SOL_SOCKET, force, SOCKET_BUFFER)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, plain, SOCKET_BUFFER)
    sock.bind((node_ip, 0))
    return sock


class Forwarder:
    """All nodes' TUN and raw fds in one epoll loop."""

    def __init__(self, config: ForwarderConfig) -> None:
        self.config = config
        self.nodes: list[_Node] = []
        self.known_sources = {socket.inet_aton(n.node_ip) for n in config.nodes} | {
            socket.inet_aton(r.remote_ip) for n in config.nodes for r in n.routes
        }
        self.dumps = 0
        self._stop = False
        self._dump = False

    def open(self) -> None:
        for cfg in self.config.nodes:
            tun_fd, raw = call_in(cfg.netns, lambda c=cfg: (_open_tun(c.tun), _open_raw(c.node_ip)))
            self.nodes.append(_Node(cfg, tun_fd, raw, _build_table(cfg.routes)))

    def close(self) -> None:
        for node in self.nodes:
            node.raw.close()
            os.close(node.tun_fd)

    def _encap(self, node: _Node) -> None:
        c, sendto = node.counters, node.raw.sendto
        for _ in range(BATCH):
            try:
                pkt = os.read(node.tun_fd, 65535)
            except BlockingIOError:
                return
            if not pkt or pkt[0] >> 4 != 4:
                c.drop_not_ipv4 += 1
                continue
            if len(pkt) < 20:
                c.drop_malformed += 1
                continue
            remote = node.lookup(int.from_bytes(pkt[16:20], "big"))
            if remote is None:
                c.drop_no_route += 1
                continue
            try:
                sendto(pkt, (remote, 0))
            except OSError:
                c.send_errors += 1
                continue
            c.encap_packets += 1
            c.encap_bytes += len(pkt)

    def _decap(self, node: _Node) -> None:
        c, recv, known = node.counters, node.raw.recv, self.known_sources
        for _ in range(BATCH):
            try:
                pkt = recv(65535)
            except BlockingIOError:
                return
            ihl = (pkt[0] & 0x0F) * 4 if pkt else 0
            if ihl < 20 or len(pkt) < ihl + 20 or pkt[ihl] >> 4 != 4:
                c.drop_malformed += 1
                continue
            if pkt[12:16] not in known:
                c.drop_unknown_source += 1
                continue
            inner = pkt[ihl:]
            try:
                os.write(node.tun_fd, inner)
            except OSError:
                c.write_errors += 1
                continue
            c.decap_packets += 1
            c.decap_bytes += len(inner)

    def stats(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "dumps": self.dumps,
            "nodes": {n.cfg.netns: asdict(n.counters) for n in self.nodes},
        }

    def dump_stats(self) -> None:
        """Write the counters atomically (tmp + rename) so readers never see half a file."""
        self.dumps += 1
        if not self.config.stats_path:
            return
        tmp = f"{self.config.stats_path}.tmp{os.getpid()}"
        with open(tmp, "w") as fh:
            json.dump(self.stats(), fh, indent=1, sort_keys=True)
        os.replace(tmp, self.config.stats_path)

    def run(self, ready: IO[str] | None = None) -> None:
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w)  # a signal during poll() wakes it at once

        def on_signal(signum: int, _frame: object) -> None:
            if signum == signal.SIGUSR1:
                self._dump = True
            else:
                self._stop = True

        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
            signal.signal(sig, on_signal)
        ep = select.epoll()
        handlers: dict[int, Callable[[], None]] = {}
        for node in self.nodes:
            handlers[node.tun_fd] = lambda n=node: self._encap(n)
            handlers[node.raw.fileno()] = lambda n=node: self._decap(n)
        for fd in handlers:
            ep.register(fd, select.EPOLLIN)
        ep.register(wake_r, select.EPOLLIN)
        if ready is not None:
            print(READY_LINE, file=ready, flush=True)
        try:
            while not self._stop:
                for fd, events in ep.poll(1.0):
                    if fd == wake_r:
                        while True:
                            try:
                                if not os.read(wake_r, 512):
                                    break
                            except BlockingIOError:
                                break
                    elif events & (select.EPOLLERR | select.EPOLLHUP):
                        # the device or namespace went away: stop watching it, keep the rest
                        ep.unregister(fd)
                        print(f"ipip: fd {fd} closed by the kernel (events {events:#x})", file=sys.stderr)
                    else:
                        try:
                            handlers[fd]()
                        except OSError as exc:
                            if exc.errno not in (errno.EBADFD, errno.EIO, errno.ENODEV, errno.EBADF):
                                raise
                            ep.unregister(fd)
                            print(f"ipip: fd {fd} unusable: {exc}", file=sys.stderr)
                if self._dump:
                    self._dump = False
                    self.dump_stats()
                if self.config.parent_pid and os.getppid() != self.config.parent_pid:
                    break  # orphaned: the lab that owned us is gone
        finally:
            ep.close()
            signal.set_wakeup_fd(-1)
            os.close(wake_r)
            os.close(wake_w)
            self.dump_stats()


def main(argv: list[str] | None = None) -> int:
    """``python -m netiso.backends.lab.ipip [CONFIG_JSON_PATH | -]`` (default: stdin)."""
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] != "-":
        with open(args[0]) as fh:
            data = json.load(fh)
    else:
        data = json.load(sys.stdin)
    forwarder = Forwarder(ForwarderConfig.from_dict(data))
    try:
        forwarder.open()
        forwarder.run(ready=sys.stdout)
    finally:
        forwarder.close()
    return 0


# --------------------------------------------------------------------------- client helpers


class ForwarderError(RuntimeError):
    """The forwarder did not come up; the message carries its stderr."""


@dataclass
class PendingForwarder:
    """A forwarder process spawned but not yet known to be ready (see :func:`spawn_forwarder`)."""

    proc: subprocess.Popen[bytes]
    log: IO[bytes]

    @property
    def pid(self) -> int:
        return self.proc.pid


def spawn_forwarder(config: ForwarderConfig | Mapping[str, Any], *, log_path: str | None = None) -> PendingForwarder:
    """Start the forwarder process and hand it its config; :func:`wait_forwarder` waits for ``ready``.

    Split so that the lab can load its rules while the forwarder's interpreter starts (its
    sockets and TUN fds are independent of the rules).
    """
    cfg = config if isinstance(config, ForwarderConfig) else ForwarderConfig.from_dict(config)
    data = cfg.to_dict()
    data["parent_pid"] = data.get("parent_pid") or os.getpid()
    log: IO[bytes] = open(log_path, "w+b") if log_path else tempfile.TemporaryFile()  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "netiso.backends.lab.ipip", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log,
    )
    assert proc.stdin is not None
    try:
        proc.stdin.write(json.dumps(data).encode())
        proc.stdin.close()
    except OSError:
        pass  # it exited already: wait_forwarder reports why
    return PendingForwarder(proc, log)


def wait_forwarder(pending: PendingForwarder, timeout: float = 10.0) -> subprocess.Popen[bytes]:
    """Wait until every fd of a spawned forwarder is open (``ready``); stop it and raise if not."""
    proc, log = pending.proc, pending.log
    assert proc.stdout is not None
    line = b""
    try:
        if select.select([proc.stdout], [], [], timeout)[0]:
            line = proc.stdout.readline()
    except OSError:
        line = b""
    if line.strip() == READY_LINE.encode():
        log.close()
        return proc
    stop_forwarder(proc)
    log.seek(0)
    tail = log.read()[-2000:].decode(errors="replace")
    log.close()
    raise ForwarderError(f"ipip forwarder not ready after {timeout}s (exit {proc.returncode}): {tail}")


def start_forwarder(
    config: ForwarderConfig | Mapping[str, Any],
    *,
    timeout: float = 10.0,
    log_path: str | None = None,
) -> subprocess.Popen[bytes]:
    """Start the forwarder, wait until every fd is open (``ready``), return the process.

    The config goes on stdin (no temp file to clean up); ``parent_pid`` is set to this process
    so an aborted run does not leave a forwarder behind. stderr goes to ``log_path`` (or an
    anonymous temp file) and is quoted in the :class:`ForwarderError` if start-up fails.
    """
    return wait_forwarder(spawn_forwarder(config, log_path=log_path), timeout)


def stop_forwarder(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> int:
    """Stop by PID: SIGTERM (counters get dumped), wait, SIGKILL if it does not exit."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()
    return proc.returncode


def request_stats(proc: subprocess.Popen[bytes], stats_path: str, timeout: float = 5.0) -> dict[str, Any]:
    """Ask a running forwarder for its counters (SIGUSR1) and return the fresh dump."""

    def read() -> dict[str, Any] | None:
        try:
            with open(stats_path) as fh:
                return json.load(fh)
        except (OSError, ValueError):
            return None

    before = read()
    seen = before["dumps"] if before and before.get("pid") == proc.pid else 0
    proc.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = read()
        if now and now.get("pid") == proc.pid and now["dumps"] > seen:
            return now
        time.sleep(0.02)
    raise TimeoutError(f"no stats from ipip forwarder {proc.pid} in {stats_path}")


if __name__ == "__main__":
    sys.exit(main())
