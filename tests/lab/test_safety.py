"""Lab safety: a real ``netiso check`` leaves the host exactly as it found it.

The lab's promise (design.md, scenarios.md exit code 2: "nothing left behind") is only worth
something if it is checked from the *outside*, the way an administrator would notice a leak:
the root namespace's firewall, routes, links, addresses, forwarding sysctls and ipsets; the
list of named namespaces; /run/netiso/runs; and the process table. These tests therefore run
the real command line in a subprocess and inspect the host before, during and after.

Processes are attributed to the run without guessing by name (other engineers' labs may run
nginx or probe agents at the same time): the ``netiso`` subprocess gets its own session, and a
watcher thread records every process of that session and every descendant it sees, plus the
run prefixes whose state file names that subprocess as owner. "Left behind" means: one of
those (pid, start time) pairs still lives, or any process mentions one of those prefixes.

A crash is simulated with SIGKILL of the ``netiso`` process alone (not its group), which
leaves nginx and the namespaces behind on purpose; the janitor (``netiso clean``, or the
``clean()`` at the start of the next ``netiso check``) must then remove them.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from netiso.backends.lab.netns import RUN_FILES_DIR, STATE_DIR, list_namespaces, process_alive
from netiso.backends.lab.runs import clean

pytestmark = pytest.mark.lab

ROOT_SYSCTLS = (
    "net/ipv4/ip_forward",
    "net/ipv4/conf/all/forwarding",
    "net/ipv4/conf/default/forwarding",
    "net/ipv4/conf/all/rp_filter",
    "net/ipv4/conf/default/rp_filter",
    "net/ipv4/conf/all/proxy_arp",
)
KEPT_FILE = Path("/run/netiso/kept-lab.json")
RUN_TIMEOUT_S = 120.0


# --------------------------------------------------------------------------- scenarios


def scenario_yaml(name: str, encapsulation: str, *, ingress: bool = False, slow: bool = False) -> str:
    """A small scenario: an isolated project, a NodePort, pod/client flows in both directions.

    ``ingress`` adds an nginx controller (NodePort, Cluster) in front of shop/web; ``slow``
    adds an ingress flow into a project that does not admit the controller (nginx retries,
    then 504 after ~3 s): a window in which a SIGKILL surely lands mid-run.
    """
    lines = [
        f"name: {name}",
        "cluster:",
        f"  encapsulation: {encapsulation}",
        "  clients: [alice, bob]",
        "workspaces:",
        "  - name: ws-a",
        "    projects:",
        "      - name: shop",
        "        isolation: true",
        "        whitelist:",
        "          - {direction: ingress, peer: {cidr: client:alice}}",
    ]
    if ingress:
        lines += ["          - {direction: ingress, peer: {project: kubesphere-controls-system}}"]
    if slow:
        lines += ["      - name: vault", "        isolation: true"]
    if ingress:
        lines += ["projects:", "  - name: kubesphere-controls-system"]
    lines += ["workloads:", "  - {name: web, project: shop, nodes: [worker]}"]
    if slow:
        lines += ["  - {name: safe, project: vault, nodes: [worker2]}"]
    lines += ["services:", "  - {name: web, project: shop, type: NodePort}"]
    if slow:
        lines += ["  - {name: safe, project: vault}"]
    if ingress:
        ctl = "{project: kubesphere-controls-system, node: worker2, exposure: NodePort, externalTrafficPolicy: Cluster}"
        lines += ["ingresses:", "  - name: web", "    project: shop", "    host: web.example", "    service: web",
                  f"    controller: {ctl}"]
        if slow:
            lines += ["  - name: safe", "    project: vault", "    host: safe.example", "    service: safe",
                      f"    controller: {ctl}"]
    lines += [
        "flows:",
        "  - {from: client:alice, to: pod:shop/web}",
        "  - {from: client:bob, to: pod:shop/web}",
        "  - {from: client:alice, to: 'nodeport:shop/web@worker'}",
        "  - {from: pod:shop/web, to: client:bob}",
    ]
    if ingress:
        lines += ["  - {from: client:alice, to: ingress:shop/web}"]
    if slow:
        lines += ["  - {from: client:alice, to: ingress:vault/safe}"]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- host snapshot


def _out(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=30).stdout


def _iptables(tool: str) -> str:
    """The root firewall without what changes by itself: comments (dates) and counters."""
    text = _out([tool])
    kept = [re.sub(r"\[\d+:\d+\]", "[-]", line) for line in text.splitlines() if not line.startswith("#")]
    return "\n".join(kept)


def _routes() -> list[str]:
    """Routes of every table, without ``expires`` (IPv6 RA routes count down by themselves)."""
    out = []
    for family in ("-4", "-6"):
        for r in json.loads(_out(["ip", family, "-j", "route", "show", "table", "all"]) or "[]"):
            r.pop("expires", None)
            out.append(json.dumps(r, sort_keys=True))
    return sorted(out)


def _addresses() -> list[str]:
    """(interface, family, address/prefix) triples; lifetimes left out, they tick."""
    out = []
    for link in json.loads(_out(["ip", "-j", "addr"]) or "[]"):
        for a in link.get("addr_info", []):
            out.append(f"{link['ifname']} {a.get('family')} {a.get('local')}/{a.get('prefixlen')}")
    return sorted(out)


def root_snapshot() -> dict[str, object]:
    """Everything of the host's root netns a lab must never change."""
    snap: dict[str, object] = {
        "iptables-save": _iptables("iptables-save"),
        "ip route (all tables)": _routes(),
        "ip link names": sorted(link["ifname"] for link in json.loads(_out(["ip", "-j", "link"]) or "[]")),
        "ip addr": _addresses(),
        "ipset list -n": sorted(_out(["ipset", "list", "-n"]).split()),
    }
    for key in ROOT_SYSCTLS:
        snap[key] = Path("/proc/sys", key).read_text().strip()
    return snap


def assert_root_unchanged(before: dict[str, object]) -> None:
    after = root_snapshot()
    changed = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
    assert not changed, f"the root namespace changed: {changed}"


# --------------------------------------------------------------------------- process tracking


def _stat(pid: int) -> tuple[int, int, int] | None:
    """(ppid, session, start time) of ``pid`` from /proc/<pid>/stat."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = data[data.rindex(")") + 2 :].split()
    return int(rest[1]), int(rest[3]), int(rest[19])


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _state(path: Path) -> dict[str, object] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def states_owned_by(pid: int) -> dict[str, dict[str, object]]:
    """prefix -> state of every run whose state file names ``pid`` as owner."""
    out = {}
    for path in sorted(STATE_DIR.glob("*.json")) if STATE_DIR.is_dir() else []:
        st = _state(path)
        if st and int((st.get("owner") or {}).get("pid", 0)) == pid:  # type: ignore[union-attr]
            out[path.stem] = st
    return out


@dataclass
class Watched:
    """What a watcher saw of one ``netiso`` subprocess and everything it started."""

    pid: int
    prefixes: set[str] = field(default_factory=set)
    recorded: dict[tuple[int, int], str] = field(default_factory=dict)  # (pid, start) -> what (state file)
    seen: dict[tuple[int, int], str] = field(default_factory=dict)  # (pid, start) -> cmdline (session/descendants)


class Watcher(threading.Thread):
    """Polls /run/netiso/runs and /proc while the subprocess runs (every ``interval`` s)."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.w = Watched(pid)
        self.interval = interval
        self.stop_event = threading.Event()

    def poll(self) -> None:
        for prefix, st in states_owned_by(self.w.pid).items():
            self.w.prefixes.add(prefix)
            for rec in st.get("pids", []):  # type: ignore[union-attr]
                self.w.recorded[(int(rec["pid"]), int(rec["start_time"]))] = str(rec.get("what", ""))
        family = {self.w.pid}
        stats = {pid: s for pid in _pids() if (s := _stat(pid)) is not None}
        known = {pid for pid, _ in self.w.seen}
        for pid, (_ppid, sid, _start) in stats.items():
            if sid == self.w.pid:
                family.add(pid)
        changed = True
        while changed:  # descendants that left the session (setsid) are still ours
            changed = False
            for pid, (ppid, _sid, _start) in stats.items():
                if pid not in family and (ppid in family or pid in known):
                    family.add(pid)
                    changed = True
        for pid in family - {self.w.pid}:
            if pid in stats:
                self.w.seen.setdefault((pid, stats[pid][2]), _cmdline(pid))

    def run(self) -> None:
        while not self.stop_event.is_set():
            self.poll()
            self.stop_event.wait(self.interval)

    def finish(self) -> Watched:
        self.stop_event.set()
        self.join(timeout=5)
        return self.w


def survivors(w: Watched) -> list[str]:
    """Processes of the watched run that still live, or that mention one of its prefixes."""
    out = [f"pid {pid} ({what}) from the state file" for (pid, start), what in w.recorded.items()
           if process_alive(pid, start)]
    out += [f"pid {pid}: {cmd}" for (pid, start), cmd in w.seen.items()
            if process_alive(pid, start) and (pid, start) not in w.recorded]
    if w.prefixes:
        pattern = re.compile("|".join(re.escape(p) for p in w.prefixes))
        out += [f"pid {pid} mentions the prefix: {cmd}" for pid in _pids() if pattern.search(cmd := _cmdline(pid))]
    return out


def leftovers(w: Watched) -> list[str]:
    """Namespaces, state file, run files (nginx configs) and processes of the run still present."""
    problems = [f"netns {n}" for n in list_namespaces() if n.split("-", 1)[0] in w.prefixes]
    problems += [f"state file {STATE_DIR / p}.json" for p in w.prefixes if (STATE_DIR / f"{p}.json").exists()]
    problems += [f"run files {RUN_FILES_DIR / p}" for p in w.prefixes if (RUN_FILES_DIR / p).exists()]
    return problems + survivors(w)


def _kill_survivors(w: Watched) -> None:
    """Last-resort cleanup of a failed test: only processes this test's run started."""
    for (pid, start) in list(w.recorded) + list(w.seen):
        if process_alive(pid, start):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    clean()


def wait_for(predicate, timeout: float, what: str, interval: float = 0.02) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


# --------------------------------------------------------------------------- the command line


def netiso(*args: str, timeout: float = RUN_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    """Run ``netiso ARGS`` to completion.

    Output goes through temporary files, not pipes: ``lab up`` leaves a keeper behind that
    inherits stderr, and a pipe would then never reach end-of-file.
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.run([sys.executable, "-m", "netiso.cli", *args], stdout=out, stderr=err, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out.read(), err.read())


def start_netiso(*args: str) -> subprocess.Popen[str]:
    """``netiso ARGS`` in its own session, so that everything it starts can be attributed to it."""
    return subprocess.Popen([sys.executable, "-m", "netiso.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, start_new_session=True)


@pytest.fixture
def tracked() -> Iterator[list[Watched]]:
    """Runs watched by a test; whatever they left is removed even if the test failed."""
    runs: list[Watched] = []
    yield runs
    for w in runs:
        _kill_survivors(w)


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize(("encapsulation", "ingress"), [("direct", False), ("ipip", True), ("vxlan", False)])
def test_full_check_leaves_the_host_unchanged(
    encapsulation: str, ingress: bool, tmp_path: Path, tracked: list[Watched]
) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(scenario_yaml(f"safety-{encapsulation}", encapsulation, ingress=ingress))
    before = root_snapshot()
    proc = start_netiso("check", str(scenario), "--json", str(tmp_path / "out.json"))
    watcher = Watcher(proc.pid)
    watcher.start()
    try:
        out, err = proc.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        w = watcher.finish()
        tracked.append(w)
    assert proc.returncode in (0, 1), f"netiso check failed (rc {proc.returncode}):\n{out}\n{err}"
    doc = json.loads((tmp_path / "out.json").read_text())
    flows = doc["scenarios"][0]["flows"]
    assert {f["observed"]["verdict"] for f in flows} >= {"allowed", "dropped"}, "the datapath did not carry traffic"
    # The watcher must have seen the run, or "nothing left" would be vacuous.
    assert len(w.prefixes) == 1, f"no (or several) state files owned by pid {proc.pid}: {w.prefixes}"
    whats = " ".join(w.recorded.values())
    if encapsulation == "ipip":
        assert "ipip" in whats, f"the ipip forwarder was not registered: {w.recorded}"
    if ingress:
        assert "nginx" in whats, f"no nginx was registered: {w.recorded}"
    assert any("netiso.probe.agent" in cmd for cmd in w.seen.values()), "the probe agent was never seen"
    assert leftovers(w) == []
    assert_root_unchanged(before)


def _start_and_kill(tmp_path: Path, tracked: list[Watched]) -> tuple[Watched, str]:
    """Start a slow ipip+ingress check, SIGKILL only the netiso pid once the lab is up."""
    scenario = tmp_path / "slow.yaml"
    scenario.write_text(scenario_yaml("safety-kill", "ipip", ingress=True, slow=True))
    proc = start_netiso("check", str(scenario))
    watcher = Watcher(proc.pid)
    watcher.start()
    w = watcher.w
    tracked.append(w)
    try:
        wait_for(lambda: bool(w.prefixes), 30, f"a state file owned by pid {proc.pid}")
        (prefix,) = w.prefixes
        wait_for(lambda: any(n.startswith(prefix + "-") for n in list_namespaces()), 30, f"namespaces of {prefix}")

        def lab_is_up() -> bool:
            whats = " ".join(w.recorded.values())
            return "ipip" in whats and "nginx" in whats

        wait_for(lab_is_up, 30, "the forwarder and nginx in the state file")
        assert proc.poll() is None, "the run ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)  # not the group: the children are meant to be left behind
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        watcher.finish()
    assert proc.returncode == -signal.SIGKILL
    # Preconditions: the crash really left a run for the janitor.
    assert (STATE_DIR / f"{prefix}.json").exists()
    assert any(n.startswith(prefix + "-") for n in list_namespaces())
    assert any(process_alive(p, s) for p, s in w.recorded), "every child died with its parent: nothing to clean"
    return w, prefix


def test_netiso_clean_removes_a_sigkilled_run(tmp_path: Path, tracked: list[Watched]) -> None:
    w, prefix = _start_and_kill(tmp_path, tracked)
    res = netiso("clean")
    assert res.returncode == 0, res.stderr
    assert f"run {prefix}" in res.stdout, res.stdout
    # The probe agent is not in the state file: it exits when its stdin (the dead parent) closes.
    wait_for(lambda: not survivors(w), 10, "the run's processes to end", interval=0.1)
    assert leftovers(w) == []


def test_next_check_janitor_removes_a_sigkilled_run(tmp_path: Path, tracked: list[Watched]) -> None:
    w, prefix = _start_and_kill(tmp_path, tracked)
    quick = tmp_path / "quick.yaml"
    quick.write_text(scenario_yaml("safety-next", "direct"))
    proc = start_netiso("check", str(quick))
    watcher = Watcher(proc.pid)
    watcher.start()
    try:
        out, err = proc.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        tracked.append(watcher.finish())
    assert proc.returncode in (0, 1), f"rc {proc.returncode}:\n{out}\n{err}"
    assert not (STATE_DIR / f"{prefix}.json").exists(), "the janitor of the next run left the dead run's state"
    wait_for(lambda: not survivors(w), 10, "the dead run's processes to end", interval=0.1)
    assert leftovers(w) == []
    assert leftovers(tracked[-1]) == []


def _http_get(netns: str, ip: str, port: int) -> str:
    """One HTTP GET from inside ``netns`` (a lab client), returning the status line."""
    code = (f"import http.client as h; c = h.HTTPConnection('{ip}', {port}, timeout=3); "
            "c.request('GET', '/netiso'); print(c.getresponse().status)")
    res = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=30)
    return res.stdout.strip() or res.stderr.strip()


def test_clean_never_touches_a_live_kept_lab(tmp_path: Path) -> None:
    kept = _state(KEPT_FILE)
    if kept and process_alive(int(kept.get("keeper", 0)), int(kept.get("keeper_start") or -1)):  # type: ignore[arg-type]
        pytest.skip(f"someone else's kept lab is up ({kept.get('prefix')}); lab up would refuse")
    scenario = tmp_path / "kept.yaml"
    scenario.write_text(scenario_yaml("safety-kept", "vxlan"))
    up = netiso("lab", "up", str(scenario))
    info = _state(KEPT_FILE) or {}
    prefix = str(info.get("prefix", ""))
    keeper = (int(info.get("keeper", 0)), int(info.get("keeper_start") or -1))  # type: ignore[arg-type]
    try:
        assert up.returncode == 0, up.stderr
        assert prefix and process_alive(*keeper)
        namespaces = [n for n in list_namespaces() if n.startswith(prefix + "-")]
        assert namespaces
        ns = info["namespaces"]  # type: ignore[index]
        client_ns, pod = ns["client:alice"]["netns"], ns["pod:shop/web@worker"]  # type: ignore[index]
        assert _http_get(client_ns, pod["ip"], 8080) == "200"

        res = netiso("clean")
        assert res.returncode == 0, res.stderr
        assert f"left live run {prefix} alone" in res.stdout, res.stdout

        assert process_alive(*keeper)
        assert (STATE_DIR / f"{prefix}.json").exists()
        assert [n for n in list_namespaces() if n.startswith(prefix + "-")] == namespaces
        status = netiso("lab", "status")
        assert status.returncode == 0 and f"lab {prefix} is up" in status.stdout, status.stdout
        assert _http_get(client_ns, pod["ip"], 8080) == "200", "the kept lab stopped answering after clean"

        down = netiso("lab", "down")
        assert down.returncode == 0, down.stderr
        assert not process_alive(*keeper)
        assert not [n for n in list_namespaces() if n.startswith(prefix + "-")]
        assert not (STATE_DIR / f"{prefix}.json").exists()
        assert not KEPT_FILE.exists()
        assert "no kept lab" in netiso("lab", "status").stdout
    finally:
        late = _state(KEPT_FILE) or {}  # lab up may have failed after its keeper started
        if late.get("scenario") == "safety-kept":
            keeper = (int(late.get("keeper", 0)), int(late.get("keeper_start") or -1))  # type: ignore[arg-type]
        if process_alive(*keeper):
            os.kill(keeper[0], signal.SIGTERM)
            wait_for(lambda: not process_alive(*keeper), 15, "the keeper to stop", interval=0.1)
            KEPT_FILE.unlink(missing_ok=True)
        clean()
