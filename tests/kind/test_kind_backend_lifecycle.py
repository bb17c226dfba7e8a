"""KindBackend's lifecycle against stand-in ``kind``/``docker`` executables and a stand-in kube backend.

The kube backend (the part that speaks the Kubernetes API) and the add-on installer are
replaced through the backend's own seams (``kube_factory``, ``installer``) by small recording
classes; ``kind`` and ``docker`` are the stand-in executables on PATH. So these tests prove the
orchestration: which cluster per group, reuse, what the kube backend is handed, log export on
failure, deletion at close and on Ctrl-C, ``--keep-cluster``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from netiso.backends.base import Backend, BackendOptions, BackendUnavailable, Realization
from netiso.backends.kind.backend import KindBackend
from netiso.backends.kind.tools import Tools
from netiso.model.addressing import load_topologies
from netiso.model.types import Topology

TOPOS = load_topologies(["scenarios"])


def topo(enc: str, lb: str) -> Topology:
    return next(t for t in TOPOS if t.encapsulation == enc and t.load_balancer == lb)


class RecordingRealization(Realization):
    def __init__(self, topo: Topology, log: list[str]) -> None:
        self.topo, self.timings, self.log = topo, {}, log

    def serve(self, preds: Sequence[object]) -> None:
        pass

    def probe(self, preds: Sequence[object]) -> list:
        return []

    def down(self) -> None:
        self.log.append(f"down {self.topo.name}")


class StandInKube(Backend):
    """Records what the kind backend hands the kube backend (options, preflight, realize)."""

    made: list[StandInKube] = []

    def __init__(self, options: BackendOptions, fail_realize: bool = False) -> None:
        self.options, self.fail_realize, self.log = options, fail_realize, []
        StandInKube.made.append(self)

    def preflight(self, topos: Sequence[Topology]) -> None:
        self.log.append("preflight " + ",".join(t.name for t in topos))

    def realize(self, topo: Topology) -> Realization:
        if self.fail_realize:
            raise RuntimeError("pods of shop/web not ready after 120s")
        self.log.append(f"realize {topo.name}")
        return RecordingRealization(topo, self.log)

    def close(self) -> None:
        self.log.append("close")


@pytest.fixture(autouse=True)
def _fresh_kube_list() -> None:
    StandInKube.made = []


def backend(standins, tmp_path: Path, *, keep: bool = False, installer=None, fail_realize: bool = False,
            progress: list[str] | None = None) -> KindBackend:
    installs: list[str] = []

    def record_install(cluster, plan, hash8, say) -> None:
        installs.append(f"{cluster.name} {plan.encapsulation}/{plan.load_balancer} {hash8}")

    kb = KindBackend(
        BackendOptions(keep_cluster=keep, progress=progress.append if progress is not None else None),
        kube_factory=lambda o: StandInKube(o, fail_realize),
        installer=installer or record_install,
        tools=Tools(env=standins.env),
        images=lambda registry: ["registry.k8s.io/e2e-test-images/agnhost:2.63.0"],
        workdir=tmp_path / "work",
        logs_dir=tmp_path / "reports" / "kind-logs",
        run_id="nx0a1b2c",
    )
    kb.installs = installs  # type: ignore[attr-defined]
    return kb


def created(standins) -> list[str]:
    return [a[a.index("--name") + 1] for a in standins.calls("kind") if a[:2] == ["create", "cluster"]]


def test_standin_one_cluster_per_group_and_the_kube_backend_gets_its_kubeconfig_context_nodes_and_clients(
    standins, tmp_path
) -> None:
    a, b = topo("vxlan", "metallb"), topo("direct", "openelb")
    kb = backend(standins, tmp_path)
    kb.preflight([a, b])
    with kb.realize(a):
        pass
    with kb.realize(b):
        pass
    names = created(standins)
    assert len(names) == 2 and names[0].startswith("netiso-vxlan-metallb-") and names[1].startswith("netiso-direct-openelb-")
    kube = StandInKube.made[0]
    assert kube.options.kubeconfig == str(tmp_path / "work" / f"{names[0]}.kubeconfig")
    assert Path(kube.options.kubeconfig).exists()
    assert kube.options.context == f"kind-{names[0]}"
    assert kube.options.node_map == {
        "control-plane": f"{names[0]}-control-plane", "worker": f"{names[0]}-worker", "worker2": f"{names[0]}-worker2"
    }
    assert kube.options.clients == {c: f"docker exec -i netiso-nx0a1b2c-{c}" for c in a.clients}
    assert kube.log[:2] == [f"preflight {a.name}", f"realize {a.name}"]
    assert kb.installs == [f"{names[0]} vxlan/metallb {names[0].rsplit('-', 1)[1]}",  # type: ignore[attr-defined]
                           f"{names[1]} direct/openelb {names[1].rsplit('-', 1)[1]}"]
    record = json.loads((tmp_path / "reports" / f"kind-images-{names[0]}.json").read_text())
    assert "quay.io/calico/node:v3.32.1@sha256:7f874b3f" in " ".join(record["images"]) and record["cluster"] == names[0]
    kb.close()
    assert standins.world()["clusters"] == {} and standins.world()["containers"] == {}


def test_standin_an_exhausted_group_is_deleted_when_the_next_group_starts(standins, tmp_path) -> None:
    a, b = topo("vxlan", "metallb"), topo("direct", "metallb")
    kb = backend(standins, tmp_path)
    kb.preflight([a, b])
    kb.realize(a).down()
    first = created(standins)[0]
    kb.realize(b).down()
    deletes = [x for x in standins.calls("kind") if x[:2] == ["delete", "cluster"]]
    assert deletes == [["delete", "cluster", "--name", first]]
    assert StandInKube.made[0].log[-1] == "close"
    kb.close()


def test_standin_keep_cluster_keeps_it_and_the_next_run_reuses_it_without_creating(standins, tmp_path) -> None:
    a = topo("vxlan", "metallb")
    first = backend(standins, tmp_path, keep=True)
    first.preflight([a])
    first.realize(a).down()
    first.close()
    name = created(standins)[0]
    assert list(standins.world()["clusters"]) == [name]
    assert standins.world()["containers"] == {}, "clients are removed even when the cluster is kept"
    second = backend(standins, tmp_path / "again", keep=True)
    second.preflight([a])
    second.realize(a).down()
    second.close()
    assert created(standins) == [name], "same config hash: reused, not created again"
    loads = [x for x in standins.calls("kind") if x[:2] == ["load", "docker-image"]]
    assert loads and all(x[-1] == name for x in loads)
    assert len(loads) == len({tuple(x) for x in loads}), "a reused cluster is not loaded again"


def test_standin_failed_realize_exports_logs_before_the_cluster_is_deleted(standins, tmp_path) -> None:
    a = topo("vxlan", "metallb")
    kb = backend(standins, tmp_path, fail_realize=True)
    kb.preflight([a])
    with pytest.raises(RuntimeError, match="not ready"):
        kb.realize(a)
    name = created(standins)[0]
    assert (tmp_path / "reports" / "kind-logs" / name / f"{name}-control-plane" / "kubelet.log").exists()
    kb.close()
    kind_calls = [" ".join(x[:2]) for x in standins.calls("kind")]
    assert kind_calls.index("export logs") < kind_calls.index("delete cluster")


def test_standin_failed_install_exports_logs_deletes_the_cluster_and_is_backend_unavailable_only_for_tool_errors(
    standins, tmp_path
) -> None:
    def broken(cluster, plan, hash8, say) -> None:
        raise RuntimeError("daemonset kube-system/calico-node: every scheduled pod ready: not ready after 300s")

    a = topo("ipip", "metallb")
    kb = backend(standins, tmp_path, installer=broken)
    kb.preflight([a])
    with pytest.raises(RuntimeError, match="calico-node"):
        kb.realize(a)
    name = created(standins)[0]
    assert (tmp_path / "reports" / "kind-logs" / name).is_dir()
    assert standins.world()["clusters"] == {}, "deleted right away, not at close"
    assert StandInKube.made == []


def test_standin_ctrl_c_during_install_deletes_the_cluster_and_removes_clients(standins, tmp_path) -> None:
    def interrupted(cluster, plan, hash8, say) -> None:
        raise KeyboardInterrupt

    a = topo("vxlan", "metallb")
    kb = backend(standins, tmp_path, installer=interrupted)
    kb.preflight([a])
    with pytest.raises(KeyboardInterrupt):
        kb.realize(a)
    assert standins.world()["clusters"] == {}
    assert not (tmp_path / "reports" / "kind-logs").exists(), "Ctrl-C is not a failure: no log export"
    assert [x[:2] for x in standins.calls("kind")][-1] == ["delete", "cluster"]


def test_standin_ctrl_c_with_keep_cluster_keeps_it(standins, tmp_path) -> None:
    def interrupted(cluster, plan, hash8, say) -> None:
        raise KeyboardInterrupt

    a = topo("vxlan", "metallb")
    kb = backend(standins, tmp_path, keep=True, installer=interrupted)
    kb.preflight([a])
    with pytest.raises(KeyboardInterrupt):
        kb.realize(a)
    assert len(standins.world()["clusters"]) == 1


def test_standin_kind_create_failure_is_backend_unavailable_quoting_kind(standins, tmp_path) -> None:
    standins.fail("create")
    a = topo("vxlan", "metallb")
    kb = backend(standins, tmp_path)
    kb.preflight([a])
    with pytest.raises(BackendUnavailable, match="failed to init node with kubeadm"):
        kb.realize(a)
    assert standins.world()["clusters"] == {}


def test_standin_progress_lines_name_cluster_creation_installs_and_elapsed_time(standins, tmp_path) -> None:
    lines: list[str] = []
    a = topo("vxlan", "metallb")
    kb = backend(standins, tmp_path, progress=lines)
    kb.preflight([a])
    kb.realize(a).down()
    kb.close()
    text = "\n".join(lines)
    assert "kind: creating cluster netiso-vxlan-metallb-" in text
    assert "install: add-ons of netiso-vxlan-metallb-" in text
    assert "kind: deleting cluster" in text
    assert any(line.endswith("s") and ": done in " in line for line in lines)


def test_missing_docker_fails_preflight_with_the_hint_and_runs_nothing(standins_without, tmp_path) -> None:
    s = standins_without("docker")
    kb = backend(s, tmp_path)
    with pytest.raises(BackendUnavailable, match="Docker is not installed"):
        kb.preflight([topo("vxlan", "metallb")])
    assert s.calls() == []


def test_dry_run_plan_runs_no_tool_at_all(standins_without, tmp_path) -> None:
    s = standins_without("kind", "docker")
    kb = backend(s, tmp_path)
    written = kb.plan([topo("vxlan", "metallb")], tmp_path / "plan")
    assert written and s.calls() == []
    assert sorted(p.name for p in (tmp_path / "plan").iterdir()) == [
        f"kind-{e}-{lb}" for e in ("direct", "ipip", "vxlan") for lb in ("metallb", "openelb")
    ]


def test_standin_a_probe_that_raises_exports_logs(standins, tmp_path) -> None:
    class FailingProbe(RecordingRealization):
        def probe(self, preds: Sequence[object]) -> list:
            raise RuntimeError("exec into pod shop/web-worker failed: 500")

    class Kube(StandInKube):
        def realize(self, topo: Topology) -> Realization:
            return FailingProbe(topo, self.log)

    a = topo("vxlan", "metallb")
    kb = backend(standins, tmp_path)
    kb.kube_factory = Kube
    kb.preflight([a])
    with kb.realize(a) as r, pytest.raises(RuntimeError, match="exec into pod"):
        r.probe([])
    name = created(standins)[0]
    assert (tmp_path / "reports" / "kind-logs" / name).is_dir()
    kb.close()
    assert standins.world()["clusters"] == {}
