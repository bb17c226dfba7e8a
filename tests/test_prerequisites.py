"""A host that cannot run the lab gets exit 2, one actionable message, and nothing created.

Scenarios.md promises exit code 2 for "the backend cannot start" with a message that says how
to fix it. These tests take the real command line (``python -m netiso.cli check``) and remove
one prerequisite at a time the way it goes missing on real machines:

* a tool is not installed: PATH is reduced to a directory of symlinks to every executable of
  the normal PATH except that tool (``iptables-restore``; ``nginx`` for a scenario with an
  ingress, which additionally needs nginx's fixed fallback path hidden: netiso looks in
  /usr/sbin even when PATH lacks it, so a private *mount* namespace of the child bind-mounts
  /dev/null, which is not executable, over it; the host's mounts are not touched);
* not root: ``setpriv`` to user nobody.

"Nothing created" is checked against the host: no state file owned by the command's pid and no
new run namespace (generated prefixes ``nx`` + 6 hex) that another live run does not claim.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from netiso.backends.lab.ingress import NGINX_CANDIDATES
from netiso.backends.lab.netns import RUN_NS_RE, STATE_DIR, list_namespaces

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (to remove exactly one prerequisite at a time)")

SCENARIO = """\
name: prereq-plain
cluster: {encapsulation: vxlan, clients: [alice]}
workloads:
  - {name: web, project: shop, nodes: [worker]}
projects:
  - name: shop
flows:
  - {from: client:alice, to: pod:shop/web}
"""

INGRESS_SCENARIO = """\
name: prereq-ingress
cluster: {encapsulation: vxlan, clients: [alice]}
projects:
  - name: shop
  - name: kubesphere-controls-system
workloads:
  - {name: web, project: shop, nodes: [worker]}
services:
  - {name: web, project: shop}
ingresses:
  - name: web
    project: shop
    host: web.example
    service: web
    controller: {project: kubesphere-controls-system, node: worker2, exposure: NodePort}
flows:
  - {from: client:alice, to: ingress:shop/web}
"""


def reduced_path(directory: Path, without: set[str]) -> str:
    """Fill ``directory`` with symlinks to every executable on PATH except ``without``."""
    directory.mkdir(parents=True, exist_ok=True)
    for entry in os.environ.get("PATH", "").split(os.pathsep):
        if not entry or not os.path.isdir(entry):
            continue
        for name in sorted(os.listdir(entry)):
            target = os.path.join(entry, name)
            link = directory / name
            if name in without or link.exists() or link.is_symlink():
                continue
            if os.path.isfile(target) and os.access(target, os.X_OK):
                link.symlink_to(target)
    return str(directory)


def _owner(path: Path) -> int:
    try:
        return int(json.loads(path.read_text())["owner"]["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def _foreign_prefixes(pid: int) -> set[str]:
    """Prefixes of runs owned by some other process (other work on the host, left alone)."""
    if not STATE_DIR.is_dir():
        return set()
    return {p.stem for p in STATE_DIR.glob("*.json") if _owner(p) != pid}


def assert_nothing_created(pid: int, namespaces_before: set[str]) -> None:
    if STATE_DIR.is_dir():
        mine = [p for p in STATE_DIR.glob("*.json") if _owner(p) == pid]
        assert not mine, f"state files left by pid {pid}: {mine}"
    foreign = _foreign_prefixes(pid)
    new = [n for n in set(list_namespaces()) - namespaces_before
           if (m := RUN_NS_RE.match(n)) and m.group(1) not in foreign]
    assert not new, f"namespaces created: {new}"


def run_check(argv: list[str], scenario: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``argv + [-m netiso.cli check scenario]`` and check that it created nothing."""
    before = set(list_namespaces())
    proc = subprocess.Popen([*argv, sys.executable, "-m", "netiso.cli", "check", str(scenario)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                            cwd="/")
    out, err = proc.communicate(timeout=60)
    assert_nothing_created(proc.pid, before)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.fixture(scope="module")
def scenario_dir() -> Iterator[Path]:
    """World-readable scenario files (user nobody must be able to read them)."""
    d = Path(tempfile.mkdtemp(prefix="netiso-prereq-"))
    try:
        d.chmod(0o755)
        for name, text in (("plain.yaml", SCENARIO), ("ingress.yaml", INGRESS_SCENARIO)):
            (d / name).write_text(text)
            (d / name).chmod(0o644)
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_missing_iptables_restore_exits_2_with_install_command(tmp_path: Path, scenario_dir: Path) -> None:
    assert shutil.which("iptables-restore"), "precondition: the full PATH has iptables-restore"
    env = dict(os.environ, PATH=reduced_path(tmp_path / "bin", {"iptables-restore"}))
    res = run_check([], scenario_dir / "plain.yaml", env)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "iptables-restore" in res.stderr
    assert re.search(r"apt-get install -y \S*iptables", res.stderr), res.stderr
    assert "Traceback" not in res.stderr
    assert res.stderr.count("\n") == 1, f"expected one message line:\n{res.stderr}"


def test_reduced_path_alone_is_enough_to_run(tmp_path: Path, scenario_dir: Path) -> None:
    """Control: the symlink PATH does not break the tools themselves (else the tests above prove nothing).

    ``explain`` needs no tools, so the control is that every lab tool resolves through the
    reduced PATH and actually runs from it.
    """
    path = reduced_path(tmp_path / "bin", {"iptables-restore"})
    for tool in ("ip", "iptables-save", "ipset", "nsenter"):
        found = shutil.which(tool, path=path)
        assert found and found.startswith(path), tool
        subprocess.run([found, "--version" if tool != "ip" else "-V"], capture_output=True, check=True, timeout=10)
    assert shutil.which("iptables-restore", path=path) is None


def test_missing_nginx_exits_2_for_a_scenario_with_an_ingress(tmp_path: Path, scenario_dir: Path) -> None:
    unshare, mount = shutil.which("unshare"), shutil.which("mount")
    if not unshare or not mount:
        pytest.skip("needs unshare and mount (util-linux) to hide nginx in a private mount namespace")
    hidden = [c for c in NGINX_CANDIDATES if os.access(c, os.X_OK)]
    env = dict(os.environ, PATH=reduced_path(tmp_path / "bin", {"nginx"}))
    binds = " && ".join(f"{mount} --bind /dev/null {c}" for c in hidden) or "true"
    # --propagation private: the bind mounts exist only in the child's own mount namespace.
    wrapper = [unshare, "--mount", "--propagation", "private", "/bin/sh", "-c", f'{binds} && exec "$@"', "sh"]
    try:
        res = run_check(wrapper, scenario_dir / "ingress.yaml", env)
    finally:
        for c in hidden:
            assert os.access(c, os.X_OK), f"{c} is no longer executable on the host"
    assert res.returncode == 2, res.stdout + res.stderr
    assert "nginx" in res.stderr
    assert "apt-get install" in res.stderr and "nginx-light" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr

    # Control: inside the wrapper netiso really finds no nginx; outside it does.
    code = "from netiso.backends.lab.ingress import nginx_binary; print(nginx_binary())"
    inside = subprocess.run([*wrapper, sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30)
    assert inside.stdout.strip() == "None", inside.stdout + inside.stderr
    outside = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert outside.stdout.strip() not in ("", "None"), "nginx is not installed on this host"


def test_not_root_exits_2_saying_root_is_needed(scenario_dir: Path) -> None:
    setpriv = shutil.which("setpriv")
    if not setpriv:
        pytest.skip("setpriv (util-linux) is not installed")
    as_nobody = [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    probe = subprocess.run([*as_nobody, sys.executable, "-c", "import os, netiso; print(os.geteuid())"],
                           capture_output=True, text=True, timeout=30, cwd="/")
    if probe.returncode != 0:
        pytest.skip(f"user nobody cannot run this interpreter/package: {probe.stderr.strip()[-200:]}")
    assert probe.stdout.strip() != "0"
    res = run_check(as_nobody, scenario_dir / "plain.yaml", dict(os.environ))
    assert res.returncode == 2, res.stdout + res.stderr
    assert "root" in res.stderr and "Traceback" not in res.stderr, res.stderr
    assert "sudo" in res.stderr, res.stderr
