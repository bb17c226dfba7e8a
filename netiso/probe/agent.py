"""The probe agent: one long-running process that serves echo endpoints and fires probes.

Run as ``python -m netiso.probe.agent``; it is driven over stdin/stdout with JSON lines, one
request object per line, one response per line carrying the same ``id``::

    {"id": 1, "op": "serve", "netns": "run-p-demo-web", "port": 8080, "protocol": "TCP",
     "hostname": "web", "bind": "0.0.0.0"}                       -> {"id": 1, "ok": true}
    {"id": 2, "op": "probe", "probes": [{"id": "f1", "netns": ..., "dst_ip": ..., ...}]}
                                                                 -> {"id": 2, "ok": true, "results": [...]}
    {"id": 3, "op": "unserve", "netns": ..., "port": 8080, "protocol": "TCP"}
    {"id": 4, "op": "release", "netns": ...}   (close its servers, helper thread and trace monitor)
    {"id": 6, "op": "trace_start", "namespaces": {"nx..-n-worker": "worker", ...}, "dscp": 45,
     "upstream_dscp": 46}
                                                                 -> {"id": 6, "ok": true, "traced": [netns...]}
    {"id": 7, "op": "trace_stop", "namespaces": [...] | null}  -> {"id": 7, "ok": true, "stopped": [netns...]}
    {"id": 5, "op": "ping"} / {"op": "stats"} / {"op": "quit"}

Why a separate process: the suite's own process stays free of namespace threads and asyncio,
a crash or hang in the datapath cannot take pytest down, and stopping the agent (by PID) frees
every socket that pins a lab namespace. Requests are handled concurrently, so ``ping`` and
``stats`` answer during a long probe batch. Errors are answered as ``{"ok": false, "error"}``;
the agent exits on ``quit`` or when stdin closes (its parent went away).

Tracing (``trace_start``): the agent reads the kernel's trace events of each node namespace
(the caller loads the TRACE rules first); probes with ``"trace": true`` are then matched to
their packets, settled early when a rule drops them, and answered with ``path``/``decided_by``
(:mod:`netiso.probe.tracer`). Stop tracing a namespace (or release it) before deleting it.

``ProbeAgent`` is the synchronous client the backends use.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from typing import IO, Any

from netiso.probe.echo import EchoServer, EchoStats, make_listener, start_echo
from netiso.probe.engine import DEFAULT_GLOBAL_LIMIT, DEFAULT_PER_DESTINATION, ProbeEngine
from netiso.probe.health import start_health
from netiso.probe.netns import NetnsThreads
from netiso.probe.results import ProbeRequest, ProbeResult
from netiso.probe.tracer import Tracer

PIPE_SIZE = 1 << 20  # the agent's answer pipe (fs.pipe-max-size's default)
PROFILE_ENV = "NETISO_AGENT_PROFILE"  # a directory: the agent writes agent-<pid>.prof there (cProfile)

ServerKey = tuple[str | None, int, str, str]


class AgentError(RuntimeError):
    """The agent answered a request with an error, or stopped answering."""


def rss_kb() -> int:
    """Resident set size of this process in KiB (from ``/proc/self/status``)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Agent:
    """The request handlers; one instance per process, all state lives in one event loop."""

    def __init__(self, out: IO[bytes], per_destination: int, global_limit: int) -> None:
        self.out = out
        self.threads = NetnsThreads()
        self.engine = ProbeEngine(self.threads, per_destination=per_destination, global_limit=global_limit)
        self.tracer = Tracer(self.threads)
        self.engine.tracer = self.tracer
        self.echo_stats = EchoStats()
        self.servers: dict[ServerKey, EchoServer] = {}
        self.started = time.monotonic()
        self.requests = 0
        self.errors = 0
        self.stopping = asyncio.Event()
        self.tasks: set[asyncio.Task[None]] = set()

    def write(self, message: dict[str, Any]) -> None:
        self.out.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")
        self.out.flush()

    def dispatch(self, line: bytes) -> None:
        """Handle one request line in its own task, so slow requests do not block others."""
        task = asyncio.get_running_loop().create_task(self._handle(line))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _handle(self, line: bytes) -> None:
        rid: Any = None
        self.requests += 1
        try:
            msg = json.loads(line)
            if not isinstance(msg, dict):
                raise ValueError("request must be a JSON object")
            rid = msg.get("id")
            op = msg.get("op")
            handler = getattr(self, f"op_{op}", None) if isinstance(op, str) else None
            if handler is None:
                raise ValueError(f"unknown op {op!r}")
            args = {k: v for k, v in msg.items() if k not in ("id", "op")}
            reply = await handler(**args)
            self.write({"id": rid, "ok": True, **reply})
        except Exception as exc:
            self.errors += 1
            self.write({"id": rid, "ok": False, "error": f"{type(exc).__name__}: {exc}"})

    async def op_ping(self) -> dict[str, Any]:
        return {"pid": os.getpid()}

    async def op_serve(
        self,
        netns: str | None,
        port: int,
        protocol: str = "TCP",
        hostname: str = "",
        bind: str = "0.0.0.0",
        health: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """An echo server, or with ``health`` ({namespace, name, localEndpoints}) kube-proxy's health
        answer for a Service (netiso.probe.health)."""
        protocol = protocol.upper()
        if protocol not in ("TCP", "UDP"):
            raise ValueError(f"unsupported protocol {protocol!r}")
        if health is not None:
            hostname = f"kube-proxy health {health['namespace']}/{health['name']}"
        key: ServerKey = (netns, int(port), protocol, bind)
        existing = self.servers.get(key)
        if existing is not None:
            if existing.hostname != hostname:
                raise ValueError(f"already serving {key} as {existing.hostname!r}")
            return {"already": True}
        sock = await self.threads.arun_in(netns, make_listener, protocol, bind, int(port))
        if health is not None:
            server = await start_health(sock, netns=netns, namespace=str(health["namespace"]),
                                        name=str(health["name"]), local_endpoints=int(health["localEndpoints"]))
        else:
            server = await start_echo(sock, netns=netns, protocol=protocol, hostname=hostname, stats=self.echo_stats)
        self.servers[key] = server
        return {}

    async def op_unserve(self, netns: str | None, port: int, protocol: str = "TCP", bind: str = "0.0.0.0") -> dict[str, Any]:
        server = self.servers.pop((netns, int(port), protocol.upper(), bind), None)
        if server is None:
            raise ValueError(f"not serving {netns}:{port}/{protocol}")
        server.close()
        return {}

    async def op_release(self, netns: str) -> dict[str, Any]:
        """Close everything that pins ``netns`` (its servers and its helper thread)."""
        closed = 0
        for key in [k for k in self.servers if k[0] == netns]:
            self.servers.pop(key).close()
            closed += 1
        await self.tracer.stop([netns])  # a monitor inside would keep the namespace alive
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.threads.release, netns)
        return {"closed": closed}

    async def op_trace_start(self, namespaces: dict[str, str], dscp: int | None = None,
                             upstream_dscp: int | None = None) -> dict[str, Any]:
        """Trace the node namespaces (netns -> node name)."""
        return {"traced": await self.tracer.start(namespaces, dscp if dscp is not None else self.tracer.dscp,
                                                  upstream_dscp=upstream_dscp)}

    async def op_trace_stop(self, namespaces: list[str] | None = None) -> dict[str, Any]:
        return {"stopped": await self.tracer.stop(namespaces)}

    async def op_probe(self, probes: list[dict[str, Any]]) -> dict[str, Any]:
        reqs = [ProbeRequest.from_dict(p) for p in probes]
        results = await self.engine.run_probes(reqs)
        return {"results": [r.to_dict() for r in results]}

    async def op_stats(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "rss_kb": rss_kb(),
            "uptime_s": round(time.monotonic() - self.started, 3),
            "servers": len(self.servers),
            "namespaces": len(self.threads.namespaces()),
            "threads": threading.active_count(),
            "requests": self.requests,
            "errors": self.errors,
            "http_requests": self.echo_stats.http_requests,
            "udp_datagrams": self.echo_stats.udp_datagrams,
            "probes": dict(self.engine.counts),
            "traced": {n: m.events for n, m in self.tracer.monitors.items()},
        }

    async def op_quit(self) -> dict[str, Any]:
        self.stopping.set()
        return {}

    async def aclose(self) -> None:
        await self.tracer.stop()
        self.close()

    def close(self) -> None:
        for server in self.servers.values():
            server.close()
        self.servers.clear()
        self.engine.close()
        self.threads.close()


def _stdin_reader(loop: asyncio.AbstractEventLoop, agent: Agent, fd: int) -> None:
    """Line reader in a thread, on the raw fd.

    Raw ``os.read`` rather than ``sys.stdin``: a daemon thread blocked inside a buffered
    reader holds its lock and makes interpreter shutdown abort.
    """
    buf = b""
    while True:
        try:
            chunk = os.read(fd, 1 << 20)
        except OSError:
            chunk = b""
        if not chunk:
            break
        buf += chunk
        if b"\n" not in chunk:
            continue
        *lines, buf = buf.split(b"\n")
        for line in lines:
            if line.strip():
                loop.call_soon_threadsafe(agent.dispatch, line)
    if buf.strip():
        loop.call_soon_threadsafe(agent.dispatch, buf)
    loop.call_soon_threadsafe(agent.stopping.set)


async def _amain(per_destination: int, global_limit: int) -> None:
    # Keep the protocol channel private: anything printed by accident goes to stderr.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    agent = Agent(out, per_destination, global_limit)
    loop = asyncio.get_running_loop()
    threading.Thread(target=_stdin_reader, args=(loop, agent, sys.stdin.fileno()), daemon=True).start()
    try:
        await agent.stopping.wait()
        if agent.tasks:
            await asyncio.wait(agent.tasks, timeout=5)
    finally:
        await agent.aclose()
        out.flush()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m netiso.probe.agent", description=__doc__.split("\n")[0])
    parser.add_argument("--per-destination", type=int, default=DEFAULT_PER_DESTINATION)
    parser.add_argument("--global-limit", type=int, default=DEFAULT_GLOBAL_LIMIT)
    args = parser.parse_args(argv)
    threading.stack_size(512 * 1024)  # namespace threads only run tiny socket() calls
    profile_dir = os.environ.get(PROFILE_ENV)
    if not profile_dir:
        asyncio.run(_amain(args.per_destination, args.global_limit))
        # Every answer is written and flushed; skip the interpreter's teardown, which frees the
        # run's objects one by one (about a second after a 10,000-probe run, paid by the user)
        sys.stderr.flush()
        os._exit(0)
    import cProfile  # a developer's tool (bench/): where the agent's single core goes

    with cProfile.Profile() as prof:
        asyncio.run(_amain(args.per_destination, args.global_limit))
    prof.dump_stats(os.path.join(profile_dir, f"agent-{os.getpid()}.prof"))


class ProbeAgent:
    """Synchronous client for an agent subprocess; ``stop()`` ends exactly the PID it started.

    >>> with ProbeAgent() as agent:  # doctest: +SKIP
    ...     agent.serve("lab-p-demo-web", 8080, hostname="web")
    ...     agent.probe([ProbeRequest("f1", "lab-c-ext", "100.64.1.2", 8080)])[0].verdict
    'allowed'
    """

    def __init__(
        self,
        *,
        python: str = sys.executable,
        stderr: int | IO[Any] | None = None,
        per_destination: int = DEFAULT_PER_DESTINATION,
        global_limit: int = DEFAULT_GLOBAL_LIMIT,
        request_timeout: float = 30.0,
    ) -> None:
        self.python = python
        self.stderr = stderr
        self.args = ["--per-destination", str(per_destination), "--global-limit", str(global_limit)]
        self.request_timeout = request_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.pid: int | None = None
        self._buf = b""
        self._next_id = 0
        self._lock = threading.Lock()

    def start(self) -> ProbeAgent:
        if self.proc is not None:
            raise AgentError("agent already started")
        self.proc = subprocess.Popen(
            [self.python, "-m", "netiso.probe.agent", *self.args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            close_fds=True,
        )
        self.pid = self.proc.pid
        with contextlib.suppress(OSError, AttributeError):  # fewer wake-ups for the answers of big batches
            fcntl.fcntl(self.proc.stdout.fileno(), fcntl.F_SETPIPE_SZ, PIPE_SIZE)  # type: ignore[union-attr]
        self.ping()
        return self

    def _readline(self, deadline: float) -> bytes:
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        # An answer of a large probe batch is tens of MB read in pipe-sized chunks: collect them
        # and look for the newline in each new chunk only (``buf += chunk`` and ``in buf`` over
        # the whole buffer were quadratic: the agent then sat blocked in its write for seconds).
        chunks = [self._buf]
        end = self._buf.find(b"\n")
        while end < 0:
            left = deadline - time.monotonic()
            if left <= 0:
                self._buf = b"".join(chunks)
                raise AgentError(f"agent pid {self.pid} did not answer in time")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    self._buf = b"".join(chunks)
                    raise AgentError(f"agent pid {self.pid} exited (rc={self.proc.poll()})")
                newline = chunk.find(b"\n")
                if newline >= 0:
                    end = sum(len(c) for c in chunks) + newline
                chunks.append(chunk)
        data = b"".join(chunks)
        self._buf = data[end + 1:]
        return data[:end]

    def request(self, op: str, timeout: float | None = None, **fields: Any) -> dict[str, Any]:
        """Send one request and wait for its answer; raises ``AgentError`` on an error answer."""
        if self.proc is None or self.proc.stdin is None:
            raise AgentError("agent not started")
        with self._lock:
            self._next_id += 1
            rid = self._next_id
            line = json.dumps({"id": rid, "op": op, **fields}, separators=(",", ":")).encode() + b"\n"
            try:
                self.proc.stdin.write(line)
                self.proc.stdin.flush()
            except BrokenPipeError as exc:
                raise AgentError(f"agent pid {self.pid} is gone") from exc
            deadline = time.monotonic() + (timeout if timeout is not None else self.request_timeout)
            while True:
                reply = json.loads(self._readline(deadline))
                if reply.get("id") == rid:
                    break  # answers to earlier, timed-out requests are skipped
        if not reply.get("ok"):
            raise AgentError(f"{op}: {reply.get('error')}")
        return reply

    def ping(self) -> dict[str, Any]:
        return self.request("ping", timeout=10.0)

    def serve(self, netns: str | None, port: int, protocol: str = "TCP", hostname: str = "", bind: str = "0.0.0.0",
              health: dict[str, Any] | None = None) -> None:
        """Serve echo endpoints on ``bind:port`` inside ``netns`` answering as ``hostname`` (with
        ``health``: kube-proxy's health answer for a Service instead, see ``op_serve``)."""
        fields: dict[str, Any] = {"health": health} if health is not None else {}
        self.request("serve", netns=netns, port=port, protocol=protocol, hostname=hostname, bind=bind, **fields)

    def unserve(self, netns: str | None, port: int, protocol: str = "TCP", bind: str = "0.0.0.0") -> None:
        self.request("unserve", netns=netns, port=port, protocol=protocol, bind=bind)

    def release(self, netns: str) -> None:
        """Drop every server and helper thread in ``netns`` (do it before deleting it)."""
        self.request("release", netns=netns)

    def probe(self, requests: Iterable[ProbeRequest]) -> list[ProbeResult]:
        reqs = list(requests)
        if not reqs:
            return []
        # Worst case: every probe times out, per_destination at a time, plus generous slack.
        budget = 30.0 + sum(r.timeout * (1 + r.retries) for r in reqs) / 32.0
        reply = self.request("probe", timeout=budget, probes=[r.to_dict() for r in reqs])
        return [ProbeResult.from_dict(d) for d in reply["results"]]

    def stats(self) -> dict[str, Any]:
        return self.request("stats")

    def trace_start(self, namespaces: dict[str, str], dscp: int | None = None, *,
                    upstream_dscp: int | None = None) -> list[str]:
        """Trace each node namespace (netns -> node name); probes with ``trace=True`` use it.

        ``upstream_dscp``: the mark of ingress controllers' upstream SYNs, whose drops settle the
        probes that pass through them (``ProbeRequest.upstreams``)."""
        fields: dict[str, Any] = {"namespaces": dict(namespaces)}
        if dscp is not None:
            fields["dscp"] = dscp
        if upstream_dscp is not None:
            fields["upstream_dscp"] = upstream_dscp
        return list(self.request("trace_start", timeout=15.0, **fields)["traced"])

    def trace_stop(self, namespaces: list[str] | None = None) -> list[str]:
        """Stop tracing ``namespaces`` (all if None); do it before the namespaces are deleted."""
        return list(self.request("trace_stop", namespaces=namespaces)["stopped"])

    def stop(self, grace: float = 3.0) -> int | None:
        """Ask the agent to quit; terminate, then kill, exactly the PID we started."""
        proc = self.proc
        if proc is None:
            return None
        try:
            if proc.poll() is None:
                with contextlib.suppress(AgentError, OSError, ValueError):
                    self.request("quit", timeout=grace)
                try:
                    proc.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    proc.terminate()
                    try:
                        proc.wait(timeout=grace)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait(timeout=grace)
        finally:
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
            self.proc = None
        return proc.returncode

    def __enter__(self) -> ProbeAgent:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    main()
