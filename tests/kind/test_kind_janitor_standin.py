"""The kind janitor (``KindBackend.clean``, ``netiso/backends/kind/leftovers.py``) against the stand-in docker.

The stand-in docker records the labels of ``docker run`` and answers ``ps -a --filter label=KEY
--format`` and ``rm -f A B`` as the CLI does (tests/kind/standins/docker). The owners are real
processes: a crashed run is a real child process that starts its client containers through
``ClientContainers`` and is then killed with SIGKILL (so no ``stop()`` runs), and the live run is
this test process. What these tests prove is which containers netiso decides to remove and the
commands it runs; not a real Docker daemon's listing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from netiso.backends.base import BackendOptions, BackendUnavailable
from netiso.backends.kind.backend import KindBackend
from netiso.backends.kind.cluster import ClientContainers
from netiso.backends.kind.leftovers import OWNER_LABELS, PLANNED_OWNER, Owner, clean_clients
from netiso.backends.kind.plan import write_kind_plans
from netiso.backends.kind.tools import Result, Tools
from netiso.model.addressing import resolve
from netiso.model.loader import loads

ROOT = Path(__file__).resolve().parents[2]
AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.63.0"
CRASHED, LIVE = "nx0dead0", "nx0a11fe"

# a run in a child process: start alice and her unrouted twin, say so, then wait to be killed
CHILD = """
import json, sys, time
from netiso.backends.kind.cluster import ClientContainers
from netiso.backends.kind.tools import Tools
clients = ClientContainers(sys.argv[1], sys.argv[2], Tools(env=json.loads(sys.argv[3])))
clients.start(["alice"])
clients.start(["alice"], routed=False)
print("started", flush=True)
time.sleep(120)
"""


def crashed_run(standins, run: str = CRASHED) -> int:
    """A run killed hard after starting its containers (SIGKILL: no stop(), no finally); returns its pid."""
    proc = subprocess.Popen([sys.executable, "-c", CHILD, run, AGNHOST, json.dumps(standins.env)],
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "started"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    return proc.pid


def docker(standins, *argv: str) -> Result:
    return Tools(env=standins.env).run(["docker", *argv])


def labelled_run(standins, name: str, labels: dict[str, str]) -> None:
    """A container started by hand with exactly ``labels`` (no netiso code in between)."""
    docker(standins, "run", "-d", "--network", "kind", "--name", name,
           *(a for k, v in labels.items() for a in ("--label", f"{k}={v}")), AGNHOST)


def backend(standins) -> KindBackend:
    return KindBackend(BackendOptions(), tools=Tools(env=standins.env), run_id=LIVE)


def test_janitor_removes_a_killed_runs_clients_and_twins_and_keeps_the_live_runs_standin(standins) -> None:
    dead_pid = crashed_run(standins)
    live = ClientContainers(LIVE, AGNHOST, Tools(env=standins.env))
    live.start(["alice", "bob"])
    dead = {f"netiso-{CRASHED}-alice", f"netiso-{CRASHED}-alice_unrouted"}
    world = standins.world()["containers"]
    assert dead <= set(world)
    assert world[f"netiso-{CRASHED}-alice_unrouted"]["labels"]["netiso.io/owner-pid"] == str(dead_pid)

    lines = backend(standins).clean()

    assert set(standins.world()["containers"]) == {f"netiso-{LIVE}-alice", f"netiso-{LIVE}-bob"}
    removed = [line for line in lines if line.startswith("removed container")]
    assert sorted(line.split()[2] for line in removed) == sorted(dead)
    assert all(f"owner pid {dead_pid} is gone" in line for line in removed)
    assert f"left run {LIVE} alone: owner pid {os.getpid()} is alive" in lines
    rms = [a for a in standins.calls("docker") if a[:2] == ["rm", "-f"]]
    assert len(rms) == 1 and sorted(rms[0][2:]) == sorted(dead), "exactly the leftovers, in one docker rm -f"
    live.stop()


def test_janitor_removes_a_container_whose_owner_pid_was_reused_by_another_process_standin(standins) -> None:
    me = Owner.this_process()
    reused = Owner(me.pid, me.start_time + 1, me.boot_id, me.pid_ns)  # our pid, another process's start time
    labelled_run(standins, f"netiso-{CRASHED}-carol", {"netiso.io/run": CRASHED, **reused.labels()})
    lines = backend(standins).clean()
    assert lines == [f"removed container netiso-{CRASHED}-carol (run leftover: owner pid {me.pid} is gone)"]
    assert standins.world()["containers"] == {}


def test_janitor_leaves_another_boot_ids_and_another_pid_namespaces_containers_alone_standin(standins) -> None:
    dead_pid = crashed_run(standins, run="nx0b0071")  # its owner is gone either way
    me = Owner.this_process()
    other_boot = Owner(dead_pid, 1, "00000000-0000-4000-8000-000000000000", me.pid_ns)
    other_ns = Owner(dead_pid, 1, me.boot_id, "pid:[4026599999]")
    labelled_run(standins, f"netiso-{CRASHED}-dave", {"netiso.io/run": CRASHED, **other_boot.labels()})
    labelled_run(standins, f"netiso-{CRASHED}-erin", {"netiso.io/run": CRASHED, **other_ns.labels()})

    lines = backend(standins).clean()

    assert set(standins.world()["containers"]) == {f"netiso-{CRASHED}-dave", f"netiso-{CRASHED}-erin"}
    assert any(line.startswith(f"left container netiso-{CRASHED}-dave alone: made under boot id 00000000-")
               and f"docker rm -f netiso-{CRASHED}-dave" in line for line in lines), lines
    assert any(line.startswith(f"left container netiso-{CRASHED}-erin alone: made from PID namespace pid:[4026599999]")
               for line in lines), lines
    assert sum(line.startswith("removed container") for line in lines) == 2  # the real crashed run's pair


def test_janitor_never_touches_containers_without_netisos_labels_standin(standins) -> None:
    dead_pid = crashed_run(standins)
    dead_owner = {"netiso.io/owner-pid": str(dead_pid), "netiso.io/owner-start-time": "1",
                  "netiso.io/owner-boot-id": Owner.this_process().boot_id, "netiso.io/owner-pid-ns": Owner.this_process().pid_ns}
    labelled_run(standins, "netiso-vxlan-metallb-0a1b2c3d-worker", {"io.x-k8s.kind.cluster": "netiso-vxlan-metallb-0a1b2c3d"})
    labelled_run(standins, "someone-elses", dead_owner)  # owner labels without the run label: not listed
    labelled_run(standins, f"netiso-{CRASHED}-old", {"netiso.io/run": CRASHED})  # a run label, no owner labels
    labelled_run(standins, "not-netiso-named", {"netiso.io/run": CRASHED, **dead_owner})  # not netiso-<run>-...

    lines = backend(standins).clean()

    assert set(standins.world()["containers"]) == {"netiso-vxlan-metallb-0a1b2c3d-worker", "someone-elses",
                                                   f"netiso-{CRASHED}-old", "not-netiso-named"}
    assert any(line.startswith(f"left container netiso-{CRASHED}-old alone: no owner labels") for line in lines)
    assert any(line.startswith("left container not-netiso-named alone: not named netiso-<run>-") for line in lines)
    ps = next(a for a in standins.calls("docker") if a[0] == "ps")
    assert ps[:4] == ["ps", "-a", "--filter", "label=netiso.io/run"]


def test_janitor_lists_stopped_containers_too_standin(standins) -> None:
    crashed_run(standins)
    state = json.loads(standins.state.read_text())
    for c in state["containers"].values():
        c["state"] = "exited"  # the daemon restarted: the killed run's containers exist, stopped
    standins.state.write_text(json.dumps(state))
    backend(standins).clean()
    assert standins.world()["containers"] == {}


def test_janitor_counts_a_container_removed_meanwhile_as_gone_not_as_an_error_standin(standins) -> None:
    crashed_run(standins)
    racer = f"netiso-{CRASHED}-alice"

    class OtherJanitorFirst(Tools):  # another janitor removes one container between our ps and our rm
        def run(self, argv, **kw):  # type: ignore[no-untyped-def,override]
            if list(argv[:3]) == ["docker", "rm", "-f"]:
                Tools(env=standins.env).run(["docker", "rm", "-f", racer])
            return super().run(argv, **kw)

    lines = clean_clients(OtherJanitorFirst(env=standins.env))
    assert f"container {racer} was already gone" in lines
    assert any(line.startswith(f"removed container netiso-{CRASHED}-alice_unrouted") for line in lines)
    assert standins.world()["containers"] == {}


def test_janitor_docker_failures_are_one_clear_backend_unavailable_standin(standins) -> None:
    crashed_run(standins)
    standins.fail("rm-stuck")
    with pytest.raises(BackendUnavailable, match=r"kind janitor: docker could not remove netiso-nx0dead0-alice.*"
                                                 r"could not kill"):
        backend(standins).clean()
    standins.fail("daemon-down")
    with pytest.raises(BackendUnavailable, match=r"(?s)kind janitor: docker could not list .*Cannot connect to the Docker"):
        backend(standins).clean()


def netiso_cli(args: list[str], standins, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "netiso.cli", *args], capture_output=True, text=True,
                          env={**standins.env, "PYTHONPATH": str(ROOT)}, cwd=cwd, check=False)


def test_netiso_clean_backend_kind_prints_each_removed_container_and_exits_0_standin(standins, tmp_path) -> None:
    crashed_run(standins)
    proc = netiso_cli(["clean", "--backend", "kind"], standins, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert sorted(line.split()[2] for line in proc.stdout.splitlines() if line.startswith("removed container")) == [
        f"netiso-{CRASHED}-alice", f"netiso-{CRASHED}-alice_unrouted"]
    assert standins.world()["containers"] == {}


def test_netiso_clean_backend_kind_with_the_daemon_down_exits_2_without_traceback_standin(standins, tmp_path) -> None:
    standins.fail("daemon-down")
    proc = netiso_cli(["clean", "--backend", "kind"], standins, tmp_path)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "kind janitor" in proc.stderr and "Cannot connect to the Docker daemon" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_kind_dry_run_shows_the_owner_labels_on_every_client_and_twin_docker_run(tmp_path) -> None:
    text = (ROOT / "scenarios" / "client-pod-routes.yaml").read_text()  # clientsRouteToPods: false -> twins
    write_kind_plans([resolve(loads(text)[0])], tmp_path, BackendOptions(), run_id=LIVE)
    plan = (tmp_path / "kind-direct-metallb" / "plan.txt").read_text()
    runs = [line for line in plan.splitlines() if "docker run -d" in line]
    assert any("_unrouted" in r for r in runs) and any("_unrouted" not in r for r in runs)
    for r in runs:
        assert f"--label netiso.io/run={LIVE}" in r
        for key in OWNER_LABELS:
            assert f"--label {key}={PLANNED_OWNER[key]}" in r, r
    janitor = next(line for line in plan.splitlines() if "docker ps -a --filter label=netiso.io/run" in line)
    assert plan.index(janitor) < plan.index(runs[0])
