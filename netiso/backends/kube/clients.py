"""The realization's external client hosts: their addresses, their echo servers, stopping them.

Why a room of its own: a ``--client`` host is not a cluster object. netiso reaches it only
through the user's command prefix (probe_running.run_client), so everything it does there -
asking its address, starting ``agnhost netexec`` for egress flows that reach it, killing those
servers at ``down`` - is a shell script sent through that prefix, and anything that goes wrong
makes the client *unusable* (its flows are reported skipped with the reason), never the run fatal.

What it mirrors: the upstream e2e's agnhost netexec servers (kubernetes/kubernetes
test/images/agnhost/netexec), run on the client host instead of in a pod. Knowingly different:
the client host's processes are not owned by any run label; netiso remembers the PIDs it
started and kills exactly those at ``down``.

A mixin of ``KubeRealization``: it reads ``planned``, ``backend``, ``node_map``, ``clients``,
``unusable_clients`` and ``client_servers`` from it.
"""

from __future__ import annotations

import logging
import shlex
import time
from collections.abc import Sequence
from typing import Any

from netiso.backends.kube.preflight import clients_of
from netiso.backends.kube.probe_running import (
    ClientCommandError,
    client_address_script,
    parse_client_address,
    run_client,
)
from netiso.model.symbols import parse_endpoint
from netiso.oracle.predict import Prediction

log = logging.getLogger("netiso.kube")

CLIENT_TIMEOUT_S = 30.0


class ClientHosts:
    """Client-host side of a realization (see the module docstring)."""

    planned: Any
    backend: Any
    node_map: dict[str, str]
    clients: dict[str, str]
    unusable_clients: dict[str, str]
    client_servers: dict[str, list[str]]

    def client_addresses(self) -> dict[str, str]:
        """Each mapped client's own address, asked through its command (``ip -4 route get <node IP>``)."""
        wanted = clients_of(self.planned)
        if not wanted:
            return {}
        findings = self.backend.findings
        first = self.node_map[next(iter(self.planned.nodes))]
        node_ip = findings.nodes[first].internal_ip if findings and first in findings.nodes else None
        out: dict[str, str] = {}
        for client in wanted:
            if client in self.unusable_clients or client not in self.clients:
                continue
            try:
                stdout, _err, _rc = run_client(self.clients[client], client_address_script(node_ip or "127.0.0.1"),
                                               CLIENT_TIMEOUT_S, name=client)
                out[client] = parse_client_address(stdout)
            except (ClientCommandError, ValueError) as exc:
                self.unusable_clients[client] = f"client:{client}: cannot tell its address ({exc})"
        return out

    def serve(self, preds: Sequence[Prediction]) -> None:
        """Workload pods already serve (netexec); clients that egress flows reach get ``agnhost netexec``."""
        ports: dict[str, set[tuple[int, str]]] = {}
        for p in preds:
            if p.target.dst_kind == "client":
                name = str(parse_endpoint(p.flow.dst).name)
                ports.setdefault(name, set()).add((p.target.dst_port, p.target.protocol))
        for client, wanted in ports.items():
            if client in self.unusable_clients:
                continue
            if client not in self.clients:
                self.unusable_clients[client] = f"client:{client} has no --client mapping"
                continue
            self._serve_client(client, sorted(wanted))

    def _serve_client(self, client: str, ports: list[tuple[int, str]]) -> None:
        """One ``agnhost netexec`` per port number on the client (HTTP on TCP, ``clientip``/``hostname`` on UDP).

        netexec always listens on its HTTP port, so a UDP-only port also opens TCP on the same
        number there (separate port spaces; only the client host is affected).
        """
        lines = ["A=$(command -v /agnhost || command -v agnhost) || { echo NO-AGNHOST; exit 0; }"]
        by_number: dict[int, set[str]] = {}
        for port, proto in ports:
            by_number.setdefault(port, set()).add(proto)
        for port, protos in sorted(by_number.items()):
            udp = port if "UDP" in protos else -1
            lines.append(f'nohup "$A" netexec --http-port={port} --udp-port={udp} >/dev/null 2>&1 &')
            lines.append("echo PID $!")
        try:
            out, _err, _rc = run_client(self.clients[client], "\n".join(lines) + "\n", CLIENT_TIMEOUT_S, name=client)
        except ClientCommandError as exc:
            self.unusable_clients[client] = f"client:{client} cannot serve: {exc}"
            return
        if "NO-AGNHOST" in out:
            self.unusable_clients[client] = (f"client:{client} has no agnhost (/agnhost or agnhost on PATH) to answer "
                                             "egress flows; run the client from registry.k8s.io/e2e-test-images/agnhost")
            return
        self.client_servers[client] = [w.split()[1] for w in out.splitlines() if w.startswith("PID ") and len(w.split()) == 2]
        time.sleep(0.5)  # netexec binds within milliseconds; the probes retry anyway

    def stop_client_servers(self) -> None:
        """Kill the echo servers :meth:`serve` started on client hosts (a failure is a warning: down goes on)."""
        for client, pids in self.client_servers.items():
            if pids:
                try:
                    run_client(self.clients[client], f"kill {' '.join(shlex.quote(p) for p in pids)} 2>/dev/null; true\n",
                               CLIENT_TIMEOUT_S, name=client)
                except ClientCommandError as exc:
                    log.warning("stopping echo servers on client:%s: %s", client, exc)
