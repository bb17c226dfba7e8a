"""Clean-up decisions against the emulated API server: what the janitor collects and what it never touches.

Runs are recorded in the cluster itself (run label + Lease), so these tests seed namespaces,
Leases and cluster-scoped objects as an earlier netiso process would have left them, then
check which ones the janitor deletes. ``now`` is passed explicitly: no test waits for a Lease
to expire.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from netiso.backends.base import BackendUnavailable
from netiso.backends.kube.cleanup import janitor, lease_state, parse_time
from netiso.backends.kube.client import Kube
from netiso.backends.kube.manifests import micro_time
from netiso.backends.kube.naming import RunNames
from tests.kube.conftest import NODEPORT, RUN, topo_of
from tests.support.kubeapi import seed_cluster

LATER = datetime.now(UTC) + timedelta(hours=1)  # "now" for the janitor: everything seeded is an hour old
POLL = 0.01  # the janitor's poll while namespaces terminate (the emulator counts reads, not seconds)


def leave_run(cluster, run: str, *, renewed: datetime | None, projects: tuple[str, ...] = ("shop",)) -> None:
    """What a netiso run leaves in a cluster: labelled namespaces, its Lease (if any), a ClusterRole."""
    labels = {"netiso.io/run": run, "app.kubernetes.io/managed-by": "netiso"}
    for ns in (f"{run}-netiso", *(f"{run}-{p}" for p in projects)):
        cluster.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": labels}})
    if renewed is not None:
        cluster.add({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                     "metadata": {"name": "netiso-run", "namespace": f"{run}-netiso", "labels": labels},
                     "spec": {"holderIdentity": f"netiso@host/{run}", "leaseDurationSeconds": 300,
                              "renewTime": micro_time(renewed)}})
    cluster.add({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                 "metadata": {"name": f"netiso-{run}-ingress-nginx", "labels": labels}, "rules": []})


def namespaces(cluster) -> set[str]:
    return {n["metadata"]["name"] for n in cluster.list("v1", "Namespace")}


def test_emulated_api_janitor_collects_an_expired_lease_run_and_keeps_a_live_one(fake_cluster) -> None:
    seed_cluster(fake_cluster)
    leave_run(fake_cluster, "nx111111", renewed=LATER - timedelta(minutes=30))  # expired 25 min before LATER
    leave_run(fake_cluster, "nx222222", renewed=LATER - timedelta(seconds=20))  # alive at LATER
    lines = janitor(Kube.connect(str(fake_cluster.kubeconfig)), now=LATER, poll_s=POLL)
    left = namespaces(fake_cluster)
    assert not {"nx111111-netiso", "nx111111-shop"} & left
    assert {"nx222222-netiso", "nx222222-shop"} <= left
    assert fake_cluster.get("rbac.authorization.k8s.io/v1", "ClusterRole", "netiso-nx111111-ingress-nginx") is None
    assert fake_cluster.get("rbac.authorization.k8s.io/v1", "ClusterRole", "netiso-nx222222-ingress-nginx") is not None
    assert any(line.startswith("run nx111111: finished (Lease of netiso@host/nx111111 expired") for line in lines)
    assert any(line.startswith("run nx222222: kept (Lease of netiso@host/nx222222 renewed 20 s ago") for line in lines)
    assert "  deleted namespace nx111111-shop" in lines


def test_emulated_api_janitor_never_deletes_a_namespace_without_the_run_label(fake_cluster) -> None:
    seed_cluster(fake_cluster)
    leave_run(fake_cluster, "nx333333", renewed=None)  # finished: no Lease, an hour old
    fake_cluster.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "nx333333-billing"}})
    fake_cluster.add({"apiVersion": "v1", "kind": "Namespace",
                      "metadata": {"name": "other-tool", "labels": {"netiso.io/run": "not-a-run-id"}}})
    janitor(Kube.connect(str(fake_cluster.kubeconfig)), now=LATER, poll_s=POLL)
    left = namespaces(fake_cluster)
    assert "nx333333-shop" not in left and "nx333333-netiso" not in left
    assert {"nx333333-billing", "other-tool", "kube-system", "default"} <= left


def test_emulated_api_janitor_leaves_a_run_being_born_without_a_lease_yet(fake_cluster) -> None:
    seed_cluster(fake_cluster)
    leave_run(fake_cluster, "nx444444", renewed=None)
    lines = janitor(Kube.connect(str(fake_cluster.kubeconfig)), poll_s=POLL)  # now: the run was created a moment ago
    assert "nx444444-shop" in namespaces(fake_cluster)
    assert any("run nx444444: kept (no Lease yet" in line for line in lines)


def test_emulated_api_janitor_keeps_the_runs_of_this_process(fake_cluster) -> None:
    seed_cluster(fake_cluster)
    leave_run(fake_cluster, "nx555555", renewed=None)
    janitor(Kube.connect(str(fake_cluster.kubeconfig)), now=LATER, keep=frozenset({"nx555555"}), poll_s=POLL)
    assert "nx555555-shop" in namespaces(fake_cluster)


def test_emulated_api_backend_clean_returns_one_line_per_decision(fake_cluster, kube_backend) -> None:
    seed_cluster(fake_cluster)
    leave_run(fake_cluster, "nx666666", renewed=datetime.now(UTC) - timedelta(hours=2))
    lines = kube_backend().clean()
    assert lines[0].startswith("run nx666666: finished (Lease of netiso@host/nx666666 expired")
    assert "nx666666-shop" not in namespaces(fake_cluster)


def test_emulated_api_a_realized_run_is_alive_for_the_janitor_until_down(fake_cluster, kube_backend) -> None:
    seed_cluster(fake_cluster)
    real = kube_backend().realize(topo_of(NODEPORT))
    kube = Kube.connect(str(fake_cluster.kubeconfig))
    alive, why = lease_state(kube, RunNames(RUN), datetime.now(UTC))
    assert alive, why
    lines = janitor(kube, poll_s=POLL)  # another netiso process starting now
    assert f"{RUN}-shop" in namespaces(fake_cluster)
    assert any(line.startswith(f"run {RUN}: kept (Lease of netiso@") for line in lines)
    real.down()
    assert f"{RUN}-shop" not in namespaces(fake_cluster)


def test_parse_time_reads_kubernetes_time_and_microtime() -> None:
    assert parse_time("2026-01-02T03:04:05Z") == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert parse_time("2026-01-02T03:04:05.000006Z") == datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    assert parse_time("yesterday") is None and parse_time(None) is None


def test_emulated_api_realize_runs_the_janitor_first(fake_cluster, kube_backend) -> None:
    seed_cluster(fake_cluster)
    leave_run(fake_cluster, "nx888888", renewed=datetime.now(UTC) - timedelta(hours=3))
    lines: list[str] = []
    real = kube_backend(progress=lines.append).realize(topo_of(NODEPORT))
    assert "nx888888-shop" not in namespaces(fake_cluster)
    assert any(line.startswith("janitor: run nx888888: finished") for line in lines)
    first_janitor = next(i for i, line in enumerate(lines) if line.startswith("janitor:"))
    first_apply = next(i for i, line in enumerate(lines) if "applying run" in line)
    assert first_janitor < first_apply
    real.down()


def test_emulated_api_janitor_waits_until_the_namespaces_are_gone_not_only_terminating(fake_cluster) -> None:
    """A deleted namespace stays Terminating for a while (here: 4 reads); the janitor is done when it is gone."""
    seed_cluster(fake_cluster)
    fake_cluster.set_namespace_linger(4)
    leave_run(fake_cluster, "nx777777", renewed=None)
    lines = janitor(Kube.connect(str(fake_cluster.kubeconfig)), now=LATER, poll_s=POLL)
    assert not any(line.strip().startswith("still terminating") for line in lines), lines
    assert not {"nx777777-netiso", "nx777777-shop"} & namespaces(fake_cluster)
    namespace_lists = [r for r in fake_cluster.requests if r.method == "GET" and r.path == "/api/v1/namespaces"]
    assert len(namespace_lists) >= 4  # it polled


def test_emulated_api_a_namespace_already_terminating_answers_409_and_is_waited_for_not_fatal(fake_cluster,
                                                                                           kube_backend) -> None:
    """An earlier clean-up was interrupted after its DELETE: the namespace is Terminating, and a second
    DELETE answers 409 Conflict with the apiserver's message; the janitor (and ``netiso clean``) waits
    for it like any other namespace of the run instead of failing (exit 2)."""
    seed_cluster(fake_cluster)
    fake_cluster.set_namespace_linger(5)
    leave_run(fake_cluster, "nx999999", renewed=datetime.now(UTC) - timedelta(hours=2))
    kube = Kube.connect(str(fake_cluster.kubeconfig))
    assert kube.delete("v1", "Namespace", "nx999999-shop")  # the interrupted clean-up
    lines = kube_backend().clean()
    conflicts = [r for r in fake_cluster.requests if r.method == "DELETE" and r.path.endswith("/nx999999-shop")
                 and r.status == 409]
    assert len(conflicts) == 1
    assert "  namespace nx999999-shop is already being deleted (Terminating)" in lines
    assert not {"nx999999-netiso", "nx999999-shop"} & namespaces(fake_cluster)


def test_emulated_api_a_second_namespace_delete_gets_the_apiservers_409_status(fake_cluster) -> None:
    """The emulator's side of the test above: the Status a real apiserver sends (storage.go NewConflict)."""
    seed_cluster(fake_cluster)
    fake_cluster.set_namespace_linger(5)
    fake_cluster.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "doomed"}})
    kube = Kube.connect(str(fake_cluster.kubeconfig))
    kube.delete("v1", "Namespace", "doomed")
    with pytest.raises(Exception) as info:
        kube.delete("v1", "Namespace", "doomed")
    assert getattr(info.value, "status", None) == 409 and getattr(info.value, "reason", None) == "Conflict"
    assert info.value.message == ('Operation cannot be fulfilled on namespaces "doomed": The system is ensuring all '
                                  "content is removed from this namespace.  Upon completion, this namespace will "
                                  "automatically be purged by the system.")
    assert not isinstance(info.value, BackendUnavailable)
    ns = kube.get("v1", "Namespace", "doomed")
    assert ns["status"]["phase"] == "Terminating" and ns["metadata"]["deletionTimestamp"]
