"""A lost SYN is not a drop: the engine retries a timeout no rule decided (issue 16), on a real datapath.

In ``srv`` (a probe lab namespace, never the host) an iptables rule drops exactly the first SYN that
reaches one port (``statistic --mode nth --every 2 --packet 0``: SYN 0 dropped, SYN 1 passes), the way
a SYN is lost under load. The probe's timeout (0.4 s) is shorter than the kernel's first SYN
retransmission (1 s), so only a retry with a fresh socket can get through: with ``retries=1`` the
verdict is ``allowed`` after two tries, without it ``dropped``. A port that drops every SYN stays
``dropped`` after its tries; a REJECT (a decided outcome) is never retried.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from netiso.probe.agent import ProbeAgent
from netiso.probe.engine import ProbeEngine
from netiso.probe.results import ProbeRequest, ProbeResult

from .conftest import ProbeLab, nsexec

pytestmark = pytest.mark.lab

LOSE_FIRST, LOSE_FIRST_NO_RETRY, ALWAYS_DROP, REJECT = 8096, 8097, 8098, 8099


@pytest.fixture(scope="module")
def servers(probe_lab: ProbeLab) -> Iterator[ProbeAgent]:
    for port in (LOSE_FIRST, LOSE_FIRST_NO_RETRY):
        nsexec(probe_lab.srv, "iptables", "-w", "-A", "INPUT", "-p", "tcp", "--dport", str(port), "--syn",
               "-m", "statistic", "--mode", "nth", "--every", "2", "--packet", "0", "-j", "DROP")
    nsexec(probe_lab.srv, "iptables", "-w", "-A", "INPUT", "-p", "tcp", "--dport", str(ALWAYS_DROP), "-j", "DROP")
    nsexec(probe_lab.srv, "iptables", "-w", "-A", "INPUT", "-p", "tcp", "--dport", str(REJECT), "-j", "REJECT",
           "--reject-with", "tcp-reset")
    with ProbeAgent() as agent:
        for port in (LOSE_FIRST, LOSE_FIRST_NO_RETRY, ALWAYS_DROP, REJECT):
            agent.serve(probe_lab.srv, port, "TCP", hostname="srv-pod")
        yield agent
        agent.release(probe_lab.srv)


def probe(lab: ProbeLab, port: int, retries: int) -> ProbeResult:
    async def main() -> ProbeResult:
        engine = ProbeEngine()
        try:
            req = ProbeRequest("p", lab.cli, lab.srv_ip, port, timeout=0.4, retries=retries)
            return (await engine.run_probes([req]))[0]
        finally:
            engine.close()

    return asyncio.run(main())


def test_a_lost_syn_is_retried_and_the_verdict_says_it_took_two_tries(probe_lab: ProbeLab,
                                                                       servers: ProbeAgent) -> None:
    res = probe(probe_lab, LOSE_FIRST, retries=1)
    assert (res.verdict, res.tries, res.hostname) == ("allowed", 2, "srv-pod"), res


def test_without_retries_the_same_loss_is_a_false_drop(probe_lab: ProbeLab, servers: ProbeAgent) -> None:
    res = probe(probe_lab, LOSE_FIRST_NO_RETRY, retries=0)
    assert (res.verdict, res.tries) == ("dropped", 1) and "no answer to SYN" in res.detail, res


def test_a_real_drop_stays_dropped_after_every_try(probe_lab: ProbeLab, servers: ProbeAgent) -> None:
    res = probe(probe_lab, ALWAYS_DROP, retries=2)
    assert (res.verdict, res.tries) == ("dropped", 3) and "no answer to SYN" in res.detail, res
    assert res.ms >= 3 * 400 * 0.95  # ms counts every try


def test_a_decided_outcome_is_never_retried(probe_lab: ProbeLab, servers: ProbeAgent) -> None:
    res = probe(probe_lab, REJECT, retries=2)
    assert (res.verdict, res.tries) == ("refused", 1), res
