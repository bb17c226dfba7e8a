"""The probe engine and agent on a real datapath: three namespaces joined by veth pairs.

``srv`` runs echo servers (in a ProbeAgent subprocess); probes come from ``cli`` and ``cli2``.
iptables rules inside ``srv`` (never in the host) turn chosen ports into DROP / REJECT so that
every verdict is produced by the kernel, not simulated.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence

import pytest

from netiso.probe.agent import AgentError, ProbeAgent
from netiso.probe.engine import ProbeEngine
from netiso.probe.results import ProbeRequest, ProbeResult

from .conftest import ProbeLab, nsexec

pytestmark = pytest.mark.lab

HTTP, UDP = 8080, 8081
TCP_DROP, UDP_DROP = 8090, 8091
TCP_REJECT_ICMP, TCP_REJECT_RST = 8092, 8093
TCP_SNAT = 8095
SNAT_IP = "198.18.0.9"
BACKEND = 8180
CLOSED = 9999


@pytest.fixture(scope="module")
def agent(probe_lab: ProbeLab) -> Iterator[ProbeAgent]:
    lab = probe_lab
    rules = [
        ["-A", "INPUT", "-p", "tcp", "--dport", str(TCP_DROP), "-j", "DROP"],
        ["-A", "INPUT", "-p", "udp", "--dport", str(UDP_DROP), "-j", "DROP"],
        ["-A", "INPUT", "-p", "tcp", "--dport", str(TCP_REJECT_ICMP), "-j", "REJECT",
         "--reject-with", "icmp-host-unreachable"],
        ["-A", "INPUT", "-p", "tcp", "--dport", str(TCP_REJECT_RST), "-j", "REJECT", "--reject-with", "tcp-reset"],
    ]  # fmt: skip
    for rule in rules:
        nsexec(lab.srv, "iptables", "-w", *rule)
    # The client hides behind a second address for one port: the server must report that one.
    nsexec(lab.cli, "ip", "addr", "add", f"{SNAT_IP}/24", "dev", "eth0")
    nsexec(lab.cli, "iptables", "-w", "-t", "nat", "-A", "POSTROUTING", "-p", "tcp", "--dport", str(TCP_SNAT),
           "-j", "SNAT", "--to-source", SNAT_IP)  # fmt: skip
    with ProbeAgent() as probe_agent:
        for port in (HTTP, TCP_DROP, TCP_REJECT_ICMP, TCP_REJECT_RST, TCP_SNAT):
            probe_agent.serve(lab.srv, port, "TCP", hostname="srv-pod")
        for port in (UDP, UDP_DROP):
            probe_agent.serve(lab.srv, port, "UDP", hostname="srv-pod")
        yield probe_agent
        probe_agent.release(lab.srv)


def run(reqs: Sequence[ProbeRequest], **engine_args: int) -> list[ProbeResult]:
    """Probe in-process with a fresh engine (the servers live in the agent process)."""

    async def main() -> list[ProbeResult]:
        engine = ProbeEngine(**engine_args)
        try:
            return await engine.run_probes(reqs)
        finally:
            engine.close()

    return asyncio.run(main())


def one(lab: ProbeLab, port: int, protocol: str = "TCP", timeout: float = 0.5, **kw: str) -> ProbeResult:
    return run([ProbeRequest("p", lab.cli, lab.srv_ip, port, protocol, timeout=timeout, **kw)])[0]


def test_tcp_allowed_reports_what_the_server_saw(probe_lab: ProbeLab, agent: ProbeAgent) -> None:
    res = one(probe_lab, HTTP)
    assert (res.verdict, res.status, res.detail) == ("allowed", 200, "")
    assert (res.client_ip, res.hostname) == (probe_lab.cli_ip, "srv-pod")
    assert res.client_port is not None and res.client_port >= 1024
    assert res.forwarded_for is None and res.real_ip is None


def test_client_ip_is_the_post_nat_source(probe_lab: ProbeLab, agent: ProbeAgent) -> None:
    res = one(probe_lab, TCP_SNAT)
    assert (res.verdict, res.client_ip) == ("allowed", SNAT_IP)


@pytest.mark.parametrize(("path", "field", "expected"), [("/clientip", "client_ip", "198.18.0.2"),
                                                         ("/hostname", "hostname", "srv-pod")])  # fmt: skip
def test_agnhost_paths_are_parsed_too(probe_lab: ProbeLab, agent: ProbeAgent, path: str, field: str,
                                      expected: str) -> None:  # fmt: skip
    res = one(probe_lab, HTTP, path=path)
    assert res.verdict == "allowed" and getattr(res, field) == expected


def test_tcp_closed_port_is_refused_fast(probe_lab: ProbeLab, agent: ProbeAgent) -> None:
    res = one(probe_lab, CLOSED, timeout=2.0)
    assert (res.verdict, res.detail) == ("refused", "ECONNREFUSED")
    assert res.ms < 1000


@pytest.mark.parametrize(("port", "detail"), [(TCP_REJECT_ICMP, "EHOSTUNREACH"), (TCP_REJECT_RST, "ECONNREFUSED")])
def test_tcp_reject_is_refused(probe_lab: ProbeLab, agent: ProbeAgent, port: int, detail: str) -> None:
    res = one(probe_lab, port, timeout=2.0)
    assert (res.verdict, res.detail) == ("refused", detail)
    assert res.ms < 1000


def test_tcp_drop_is_dropped_after_the_timeout(probe_lab: ProbeLab, agent: ProbeAgent) -> None:
    res = one(probe_lab, TCP_DROP, timeout=0.4)
    assert res.verdict == "dropped" and "no answer to SYN" in res.detail
    assert 380 <= res.ms < 1000


def test_udp_allowed_refused_dropped(probe_lab: ProbeLab, agent: ProbeAgent) -> None:
    lab = probe_lab
    allowed, refused, dropped = run(
        [
            ProbeRequest("a", lab.cli, lab.srv_ip, UDP, "UDP", timeout=1.0),
            ProbeRequest("r", lab.cli, lab.srv_ip, CLOSED, "UDP", timeout=1.0),
            ProbeRequest("d", lab.cli, lab.srv_ip, UDP_DROP, "UDP", timeout=0.4),
        ]
    )
    assert (allowed.verdict, allowed.client_ip, allowed.hostname) == ("allowed", lab.cli_ip, "srv-pod")
    assert (refused.verdict, refused.detail) == ("refused", "ECONNREFUSED") and refused.ms < 500
    assert dropped.verdict == "dropped" and dropped.ms >= 380


def test_many_udp_refusals_all_come_back_when_icmp_is_not_rate_limited(probe_lab: ProbeLab, agent: ProbeAgent) -> None:
    """The fixture sets icmp_ratemask=0 in the namespaces; without it only ~6 would be refused."""
    lab = probe_lab
    results = run([ProbeRequest(str(i), lab.cli, lab.srv_ip, CLOSED, "UDP", timeout=0.5) for i in range(100)])
    assert Counter(r.verdict for r in results) == {"refused": 100}


def test_per_destination_cap_serialises_probes(probe_lab: ProbeLab, agent: ProbeAgent) -> None:
    lab = probe_lab
    reqs = [ProbeRequest(str(i), lab.cli, lab.srv_ip, TCP_DROP, timeout=0.3) for i in range(13)]
    start = time.monotonic()
    results = run(reqs, per_destination=4)
    capped = time.monotonic() - start
    start = time.monotonic()
    run(reqs)
    uncapped = time.monotonic() - start
    assert {r.verdict for r in results} == {"dropped"}
    # one warm-up probe alone, then 12 probes 4 at a time: 4 rounds of 0.3 s; uncapped: 2 rounds
    assert capped >= 1.15
    assert uncapped < 1.1


def test_global_cap_limits_probes_across_destinations(probe_lab: ProbeLab, agent: ProbeAgent) -> None:
    lab = probe_lab
    reqs = [ProbeRequest(f"a{i}", lab.cli, lab.srv_ip, TCP_DROP, timeout=0.3) for i in range(5)]
    reqs += [ProbeRequest(f"b{i}", lab.cli2, lab.srv_ip2, TCP_DROP, timeout=0.3) for i in range(5)]
    start = time.monotonic()
    results = run(reqs, global_limit=2)
    elapsed = time.monotonic() - start
    assert len(results) == 10 and {r.verdict for r in results} == {"dropped"}
    assert elapsed >= 1.45  # 10 probes, 2 at a time, 0.3 s each


def test_many_concurrent_probes_from_two_sources_via_the_agent(probe_lab: ProbeLab, agent: ProbeAgent) -> None:
    lab = probe_lab
    reqs = [ProbeRequest(f"c{i}", lab.cli, lab.srv_ip, HTTP) for i in range(400)]
    reqs += [ProbeRequest(f"d{i}", lab.cli2, lab.srv_ip2, HTTP) for i in range(400)]
    reqs += [ProbeRequest(f"u{i}", lab.cli2, lab.srv_ip2, UDP, "UDP") for i in range(200)]
    results = agent.probe(reqs)
    assert [r.id for r in results] == [r.id for r in reqs]
    assert Counter(r.verdict for r in results) == {"allowed": 1000}
    assert {r.client_ip for r in results if r.id[0] == "c"} == {lab.cli_ip}
    assert {r.client_ip for r in results if r.id[0] in "du"} == {lab.cli2_ip}
    assert len({r.client_port for r in results if r.id[0] == "c"}) == 400  # 400 distinct connections


def test_agent_reports_errors_without_dying_and_stats(probe_lab: ProbeLab, agent: ProbeAgent) -> None:
    with pytest.raises(AgentError, match="No such file"):
        agent.serve(f"{probe_lab.srv}-missing", 8080, hostname="x")
    with pytest.raises(AgentError, match="already serving"):
        agent.serve(probe_lab.srv, HTTP, hostname="someone-else")
    with pytest.raises(AgentError, match="unknown field"):
        agent.request("probe", probes=[{"id": "x", "netns": None, "dst_ip": "198.18.0.1", "dst_port": 1, "typo": 1}])
    assert agent.proc is not None and agent.proc.stdin is not None
    agent.proc.stdin.write(b"{not json\n[1, 2]\n")  # answered with id null, skipped by the client
    agent.proc.stdin.flush()
    assert agent.ping()["pid"] == agent.pid
    before = agent.stats()
    agent.probe([ProbeRequest("s", probe_lab.cli, probe_lab.srv_ip, HTTP)])
    after = agent.stats()
    assert after["probes"]["allowed"] == before["probes"].get("allowed", 0) + 1
    assert after["http_requests"] == before["http_requests"] + 1
    assert 0 < after["rss_kb"] < 200_000


def test_agent_release_and_stop_end_exactly_what_it_holds(probe_lab: ProbeLab) -> None:
    second = ProbeAgent().start()
    pid = second.pid
    assert pid is not None
    try:
        second.serve(probe_lab.cli2, 7000, hostname="temp")
        second.serve(probe_lab.cli2, 7000, "UDP", hostname="temp")
        assert (second.stats()["servers"], second.stats()["namespaces"]) == (2, 1)
        second.release(probe_lab.cli2)  # nothing pins the namespace any more
        assert (second.stats()["servers"], second.stats()["namespaces"]) == (0, 0)
    finally:
        assert second.stop() == 0
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_agent_exits_when_its_parent_closes_stdin() -> None:
    orphan = ProbeAgent().start()
    assert orphan.proc is not None and orphan.proc.stdin is not None
    proc = orphan.proc
    try:
        proc.stdin.close()
        assert proc.wait(timeout=10) == 0
    finally:
        orphan.stop()


NGINX_CONF = """
daemon off;
master_process off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen {ip}:8088;
        location / {{
            proxy_pass http://127.0.0.1:{http}; proxy_set_header Host $host;
            proxy_set_header X-Real-IP $remote_addr; proxy_set_header X-Forwarded-For $remote_addr;
        }}
        location /v11/ {{
            proxy_http_version 1.1; proxy_set_header Connection "";
            proxy_pass http://127.0.0.1:{http}/; proxy_set_header X-Real-IP $remote_addr;
        }}
        location /closed/ {{ proxy_pass http://127.0.0.1:{closed}/; }}
    }}
}}
"""


@pytest.fixture
def nginx(probe_lab: ProbeLab, agent: ProbeAgent) -> Iterator[int]:
    if not os.path.exists("/usr/sbin/nginx"):
        pytest.skip("needs nginx")
    # the backend listens on loopback only: reachable through nginx, not from the clients
    agent.serve(probe_lab.srv, BACKEND, "TCP", hostname="backend-pod", bind="127.0.0.1")
    with tempfile.TemporaryDirectory(prefix="nxh2-nginx-") as tmp:
        conf = os.path.join(tmp, "nginx.conf")
        with open(conf, "w") as fh:
            fh.write(NGINX_CONF.format(tmp=tmp, ip=probe_lab.srv_ip, http=BACKEND, closed=CLOSED))
        proc = subprocess.Popen(["ip", "netns", "exec", probe_lab.srv, "/usr/sbin/nginx", "-c", conf],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            deadline = time.monotonic() + 10
            while one(probe_lab, 8088, timeout=0.5).verdict != "allowed":
                if proc.poll() is not None:
                    with open(os.path.join(tmp, "error.log")) as log:
                        pytest.fail(f"nginx exited: {log.read()}")
                assert time.monotonic() < deadline, "nginx did not start"
                time.sleep(0.1)
            yield 8088
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
            agent.unserve(probe_lab.srv, BACKEND, "TCP", bind="127.0.0.1")


def test_behind_nginx_the_server_sees_the_proxy_and_headers_carry_the_client(probe_lab: ProbeLab, nginx: int) -> None:
    lab = probe_lab
    v10, v11, closed = run(
        [
            ProbeRequest("v10", lab.cli, lab.srv_ip, nginx, host="web.example"),
            ProbeRequest("v11", lab.cli, lab.srv_ip, nginx, path="/v11/netiso"),
            ProbeRequest("closed", lab.cli, lab.srv_ip, nginx, path="/closed/netiso"),
        ]
    )
    assert (v10.verdict, v10.client_ip, v10.hostname) == ("allowed", "127.0.0.1", "backend-pod")
    assert (v10.forwarded_for, v10.real_ip) == (lab.cli_ip, lab.cli_ip)
    assert (v11.verdict, v11.real_ip, v11.forwarded_for) == ("allowed", lab.cli_ip, None), v11
    assert (closed.verdict, closed.status, closed.detail) == ("refused", 502, "HTTP 502")
    direct = one(lab, BACKEND)  # bound to 127.0.0.1 only
    assert direct.verdict == "refused"
