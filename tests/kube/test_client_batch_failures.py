"""A probe batch run through a ``--client`` command that fails is a failed batch, never trusted output.

Stand-in client commands (Python scripts run as the ``--client`` prefix, not real hosts) play the
two ways an external client fails in practice: the command in front of the script dies after part
of the output arrived (ssh's exit 255 "Connection ... closed"), and a command that exits 0 without
running the script at all (a wrapper that swallowed it). Each answers the address script first,
like a healthy client, so the realization is built and only the probe batch fails. The cluster
side is the emulated API server; the client command is a real subprocess.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from netiso.oracle.predict import predict_all
from tests.kube.conftest import NODEPORT, topo_of
from tests.support.kubeapi import seed_cluster

REPO = Path(__file__).resolve().parents[2]


def failing_client(tmp_path: Path, *, batch: str, exit_code: int, stderr: str) -> str:
    """A client prefix that answers the address script, then answers probe batches with ``batch``
    (``"allowed"``: a result line per probe, all HTTP 200; ``""``: nothing), ``stderr`` and ``exit_code``."""
    script = tmp_path / "failing_client.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(REPO)!r})
        from tests.kube.replay import batch_answer
        body = sys.argv[-1]
        if "ip -4 route get" in body:
            print("route: 172.18.0.2 dev eth0 src 203.0.113.9 uid 0 ")
            sys.exit(0)
        if {batch!r} == "allowed":
            sys.stdout.write(batch_answer(body, lambda p: ("tcp-200", "203.0.113.9", "web-worker")))
        sys.stderr.write({stderr!r})
        sys.exit({exit_code})
    """))
    return f"{sys.executable} {script}"


@pytest.mark.parametrize(("batch", "exit_code", "stderr", "detail"), [
    ("allowed", 255, "Connection to bob-host closed by remote host.\n",
     "failed: the client command exited 255 (Connection to bob-host closed by remote host.)"),
    ("", 0, "Welcome to bob-host\n",
     "failed: the client command printed no probe results (Welcome to bob-host)"),
], ids=["exit-255-after-results", "exit-0-without-results"])
def test_emulated_api_a_failing_client_command_fails_its_batch_with_its_stderr(
        fake_cluster, kube_backend, tmp_path: Path, batch: str, exit_code: int, stderr: str, detail: str) -> None:
    seed_cluster(fake_cluster)
    prefix = failing_client(tmp_path, batch=batch, exit_code=exit_code, stderr=stderr)
    real = kube_backend(clients={"alice": prefix}).realize(topo_of(NODEPORT))
    try:
        preds = predict_all(real.topo)
        alice = [i for i, p in enumerate(preds) if p.flow.src == "client:alice"]
        assert alice, "the scenario must have flows from client:alice"
        obs = real.probe(preds)
        for i in alice:
            assert obs[i].verdict == "error", (preds[i].flow, obs[i])
            assert f"probe batch from client:alice {detail}" in (obs[i].detail or ""), obs[i].detail
    finally:
        real.down()
