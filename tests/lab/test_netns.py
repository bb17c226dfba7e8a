"""The lab's command runner, sysctl writer, run registry and janitor (netiso.backends.lab.netns).

Lab tests create namespaces named ``nxh3....-*`` (this suite's experiment prefix) and keep
their state files in a temporary directory, so the janitor under test never sees anybody
else's runs.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from netiso.backends.lab import netns as lab_netns
from netiso.backends.lab import runs as lab_runs
from netiso.backends.lab.netns import (
    RUN_NS_RE,
    LabCommandError,
    LabUnavailable,
    call_in,
    list_namespaces,
    proc_start_time,
    process_alive,
    read_sysctls,
    require_root_and_tools,
    wrap_argv,
    write_sysctls,
)
from netiso.backends.lab.runs import Run, clean

needs_lab = [
    pytest.mark.lab,
    pytest.mark.skipif(
        os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("nsenter") is None,
        reason="needs root, iproute2 and nsenter",
    ),
]


def only(*prefixes: str) -> re.Pattern[str]:
    """An orphan pattern for exactly these prefixes (the real one is RUN_NS_RE).

    Keeps the janitor under test away from namespaces of any other lab session running at
    the same time, including another run of this very suite.
    """
    return re.compile(rf"^({'|'.join(map(re.escape, prefixes))})-")


def fresh_prefix() -> str:
    return "nxh3" + secrets.token_hex(2)


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "runs"


@pytest.fixture
def run(state_dir: Path) -> Iterator[Run]:
    r = Run.create(fresh_prefix(), state_dir=state_dir)
    try:
        yield r
    finally:
        if not r.closed:
            r.down()


def _kill_if_ours(pid: int, start: int | None) -> None:
    if start is not None and process_alive(pid, start):
        os.kill(pid, signal.SIGKILL)


# --------------------------------------------------------------------------- no root needed


def test_wrap_argv_uses_ip_netns_option_and_nsenter_for_other_tools() -> None:
    assert wrap_argv(["ip", "-batch", "-"], "nxh3aaaa-n-a") == ["ip", "-n", "nxh3aaaa-n-a", "-batch", "-"]
    assert wrap_argv(["bridge", "fdb"], "nxh3aaaa-n-a") == ["bridge", "-netns", "nxh3aaaa-n-a", "fdb"]
    assert wrap_argv(["iptables-restore"], "x")[:2] == ["nsenter", "--net=/run/netns/x"]
    assert wrap_argv(["ip", "link"], None) == ["ip", "link"]


@pytest.mark.parametrize("key", ["kernel/hostname", "net/../kernel/hostname", "/net/ipv4/ip_forward", "net//x"])
def test_sysctl_writer_refuses_keys_outside_per_namespace_net(key: str) -> None:
    with pytest.raises(ValueError, match="only per-namespace net"):
        write_sysctls("nxh3aaaa-nonexistent", {key: "1"})


@pytest.mark.parametrize(
    ("name", "swept"),
    [
        ("nx3fa91c-sw", True),
        ("nx3fa91c-p-demo-web-worker", True),
        ("nx3fa91-sw", False),  # 5 hex chars
        ("nx3fa91cc-sw", False),  # 7 hex chars
        ("nxh3ab12-sw", False),  # experiment prefix: only cleaned through its state file
        ("nx3FA91C-sw", False),
        ("nx3fa91c", False),
        ("cni-3fa91c-sw", False),
    ],
)
def test_orphan_regex_matches_exactly_generated_run_prefixes(name: str, swept: bool) -> None:
    assert bool(RUN_NS_RE.match(name)) is swept


def test_run_rejects_bad_prefix(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must match"):
        Run.create("nx-bad!", state_dir=tmp_path)
    assert not list(tmp_path.glob("*.json"))


def test_root_guard_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lab_netns.os, "geteuid", lambda: 1000)
    with pytest.raises(LabUnavailable, match=r"needs root .*run as root"):
        require_root_and_tools()
    monkeypatch.setattr(lab_netns.os, "geteuid", lambda: 0)
    monkeypatch.setattr(lab_netns.shutil, "which", lambda t: None if t in ("iptables-restore", "ipset") else "/x")
    with pytest.raises(LabUnavailable) as err:
        require_root_and_tools()
    assert str(err.value) == "iptables-restore, ipset not found: run `apt-get install -y iptables ipset`"


# --------------------------------------------------------------------------- runner


class TestRunner:
    pytestmark = needs_lab

    def test_every_command_goes_to_replay_log_and_logger(self, run: Run, caplog: pytest.LogCaptureFixture) -> None:
        ns = run.ns("a")
        with caplog.at_level(logging.DEBUG, logger="netiso.lab"):
            run.add_namespaces([ns])
            run.ip_batch(ns, ["link set lo up"])
            out = run.run(["ip", "-br", "link", "show", "lo"], netns=ns).stdout
        assert "UP" in out or "UNKNOWN" in out
        assert run.replay == [
            f"ip -batch - <<'EOF'\nnetns add {ns}\nEOF",
            f"ip -n {ns} -batch - <<'EOF'\nlink set lo up\nEOF",
            f"ip -n {ns} -br link show lo",
        ]
        logged = [r.getMessage() for r in caplog.records if r.name == "netiso.lab"]
        for line in run.replay:
            assert line in logged

    def test_failure_names_command_namespace_stderr_and_failing_batch_line(self, run: Run) -> None:
        ns = run.ns("a")
        run.add_namespaces([ns])
        with pytest.raises(LabCommandError) as err:
            run.ip_batch(ns, ["link set lo up", "link add x0 type no-such-kind", "link set lo down"])
        msg = str(err.value)
        assert f"in netns {ns}" in msg
        assert "failing batch line 2: link add x0 type no-such-kind" in msg
        assert err.value.netns == ns and err.value.returncode not in (0, None)
        # ip stops at the first error: line 3 never ran
        assert "UP" in run.run(["ip", "link", "show", "lo"], netns=ns).stdout

    def test_one_batch_creates_many_namespaces(self, run: Run) -> None:
        names = [run.ns(f"n{i}") for i in range(12)]
        run.add_namespaces(names)
        assert sorted(names) == run.namespaces()
        assert len(run.replay) == 1  # one ip process, not twelve

    def test_sysctls_land_in_the_namespace_and_never_in_root(self, run: Run) -> None:
        keys = ["net/ipv4/ip_forward", "net/ipv4/conf/all/rp_filter"]
        root_before = {k: Path("/proc/sys", k).read_text().strip() for k in keys}
        # write the opposite of the root's values, so a leak into root would show
        want = {
            "net/ipv4/ip_forward": "0" if root_before["net/ipv4/ip_forward"] == "1" else "1",
            "net/ipv4/conf/all/rp_filter": "2" if root_before["net/ipv4/conf/all/rp_filter"] != "2" else "1",
        }
        a, b = run.ns("a"), run.ns("b")
        run.add_namespaces([a, b])
        run.write_sysctls({a: want, b: {"net/ipv4/conf/all/rp_filter": want["net/ipv4/conf/all/rp_filter"]}})
        for key, value in want.items():
            seen = run.run(["cat", f"/proc/sys/{key}"], netns=a).stdout.strip()  # via nsenter, not our thread
            assert seen == value, key
        assert read_sysctls(b, keys)["net/ipv4/conf/all/rp_filter"] == want["net/ipv4/conf/all/rp_filter"]
        assert {k: Path("/proc/sys", k).read_text().strip() for k in keys} == root_before

    def test_sysctl_writer_refuses_a_handle_that_is_a_protected_namespace(
        self, run: Run, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        ns = run.ns("a")
        run.add_namespaces([ns])
        before = read_sysctls(ns, ["net/ipv4/ip_forward"])["net/ipv4/ip_forward"]
        st = os.stat(f"/run/netns/{ns}")
        # Pretend this namespace is the host's: the writer must refuse before writing anything.
        monkeypatch.setattr(lab_netns, "_protected_netns_inodes", lambda: {(st.st_dev, st.st_ino)})
        with pytest.raises(LabCommandError, match="refusing"):
            write_sysctls(ns, {"net/ipv4/ip_forward": "0" if before == "1" else "1"})
        monkeypatch.undo()
        assert read_sysctls(ns, ["net/ipv4/ip_forward"])["net/ipv4/ip_forward"] == before

    def test_missing_namespace_is_an_error_not_a_write_elsewhere(self) -> None:
        with pytest.raises(LabCommandError, match="no such network namespace"):
            write_sysctls("nxh3ffff-never-created", {"net/ipv4/ip_forward": "1"})

    def test_sockets_made_by_call_in_live_in_that_namespace(self, run: Run) -> None:
        a, b = run.ns("a"), run.ns("b")
        run.add_namespaces([a, b])
        for ns in (a, b):
            run.ip_batch(ns, ["link set lo up"])
        srv = call_in(a, socket.create_server, ("127.0.0.1", 0))
        port = srv.getsockname()[1]
        try:
            conn = call_in(a, socket.create_connection, ("127.0.0.1", port), 2)
            conn.close()
            with pytest.raises(ConnectionRefusedError):
                call_in(b, socket.create_connection, ("127.0.0.1", port), 2)
        finally:
            srv.close()


# --------------------------------------------------------------------------- registry


class TestRegistry:
    pytestmark = needs_lab

    def test_state_file_exists_first_and_records_owner_and_pids(self, run: Run) -> None:
        state = lab_runs._load_state(run.state_file)
        assert state is not None
        assert state["prefix"] == run.prefix
        assert state["owner"] == {"pid": os.getpid(), "start_time": proc_start_time(os.getpid())}
        assert state["pids"] == []
        ns = run.ns("a")
        run.add_namespaces([ns])
        proc = run.start(["sleep", "30"], netns=ns, what="sleeper")
        state = lab_runs._load_state(run.state_file)
        assert state is not None
        assert state["pids"] == [{"pid": proc.pid, "start_time": proc_start_time(proc.pid), "what": "sleeper"}]
        # nsenter execs in place: the registered pid becomes the program, inside the namespace
        deadline = time.monotonic() + 2
        while Path(f"/proc/{proc.pid}/comm").read_text().strip() != "sleep" and time.monotonic() < deadline:
            time.sleep(0.005)
        assert os.readlink(f"/proc/{proc.pid}/ns/net") == _ns_link(ns)

    def test_prefix_cannot_be_claimed_twice(self, run: Run, state_dir: Path) -> None:
        with pytest.raises(ValueError, match="in use"):
            Run.create(run.prefix, state_dir=state_dir)

    def test_a_finished_run_accepts_no_more_processes(self, run: Run) -> None:
        run.down()
        with pytest.raises(RuntimeError, match="is down"):
            run.register_pid(os.getpid(), "late")
        assert not run.state_file.exists()

    def test_down_kills_processes_deletes_namespaces_and_forgets_the_run(self, run: Run) -> None:
        names = [run.ns("a"), run.ns("b")]
        run.add_namespaces(names)
        proc = run.start(["sleep", "30"], netns=names[0], what="sleeper")
        t0 = time.monotonic()
        report = run.down()
        elapsed = time.monotonic() - t0
        assert [r.pid for r in report.killed] == [proc.pid]
        assert proc.poll() is not None
        assert sorted(report.namespaces) == sorted(names)
        assert not [n for n in list_namespaces() if n.startswith(run.prefix)]
        assert report.state_file_removed and not run.state_file.exists()
        assert elapsed < 20  # the 30 s sleeper was killed, not waited for

    def test_down_never_signals_a_pid_whose_start_time_changed(self, run: Run) -> None:
        bystander = subprocess.Popen(["sleep", "30"])
        try:
            rec = run.register_pid(bystander.pid, "looks-reused")
            run.pids[0] = type(rec)(rec.pid, rec.start_time + 1, rec.what)  # as if the pid was reused
            report = run.down()
            assert report.killed == [] and [r.pid for r in report.stale] == [bystander.pid]
            assert bystander.poll() is None
        finally:
            bystander.kill()
            bystander.wait()


def _ns_link(name: str) -> str:
    st = os.stat(f"/run/netns/{name}")
    return f"net:[{st.st_ino}]"


# --------------------------------------------------------------------------- janitor

FAKE_OWNER = r"""
import sys, time
from pathlib import Path
from netiso.backends.lab.runs import Run
run = Run.create(sys.argv[1], state_dir=Path(sys.argv[2]))
run.add_namespaces([run.ns("sw"), run.ns("n-a")])
proc = run.start(["sleep", "120"], netns=run.ns("n-a"), what="fake forwarder")
print(proc.pid, flush=True)
time.sleep(120)
"""


class TestJanitor:
    pytestmark = needs_lab

    def test_dead_owners_run_is_removed_and_live_run_untouched(self, run: Run, state_dir: Path) -> None:
        # a live run: this test process owns it
        live_ns = run.ns("n-live")
        run.add_namespaces([live_ns])
        live_proc = run.start(["sleep", "60"], netns=live_ns, what="live sleeper")

        dead_prefix = fresh_prefix()
        owner = subprocess.Popen(
            [sys.executable, "-c", FAKE_OWNER, dead_prefix, str(state_dir)], stdout=subprocess.PIPE, text=True
        )
        child_pid, child_start = 0, None
        try:
            assert owner.stdout is not None
            child_pid = int(owner.stdout.readline())
            child_start = proc_start_time(child_pid)
            assert (state_dir / f"{dead_prefix}.json").exists()
            owner.send_signal(signal.SIGKILL)  # crash: no teardown ran
            owner.wait()
            assert process_alive(child_pid, child_start)  # the orphaned "forwarder" survived

            report = clean(state_dir=state_dir, orphan_re=only(dead_prefix, run.prefix))

            assert [r.prefix for r in report.runs] == [dead_prefix]
            dead = report.runs[0]
            assert [r.pid for r in dead.killed] == [child_pid]
            assert sorted(dead.namespaces) == [f"{dead_prefix}-n-a", f"{dead_prefix}-sw"]
            assert not process_alive(child_pid, child_start)
            assert not (state_dir / f"{dead_prefix}.json").exists()
            assert not [n for n in list_namespaces() if n.startswith(dead_prefix)]
            # the live run is reported and untouched
            assert report.live == [run.prefix]
            assert live_proc.poll() is None
            assert run.namespaces() == [live_ns] and run.state_file.exists()
            assert any("killed pid" in line for line in report.lines())
        finally:
            if owner.poll() is None:
                owner.kill()
                owner.wait()
            _kill_if_ours(child_pid, child_start)
            lab_netns._delete_namespaces([n for n in list_namespaces() if n.startswith(dead_prefix + "-")])

    def test_orphans_without_state_file_are_removed_only_on_exact_prefix(self, run: Run, state_dir: Path) -> None:
        orphan = fresh_prefix()
        not_ours = orphan[:-1] + "z"  # one character off: not hex, so the pattern must not match it
        claimed = run.ns("n-claimed")  # matches the pattern but a live run owns it
        names = [f"{orphan}-sw", f"{orphan}-n-a", f"{not_ours}-sw", f"{orphan}x-sw"]
        pattern = re.compile(rf"^({re.escape(orphan[:-1])}[0-9a-f]|{run.prefix})-")
        try:
            lab_netns.ip_batch(None, [f"netns add {n}" for n in names])
            run.add_namespaces([claimed])
            report = clean(state_dir=state_dir, orphan_re=pattern)
            assert sorted(report.orphan_namespaces) == sorted(names[:2])
            left = set(list_namespaces())
            assert {f"{not_ours}-sw", f"{orphan}x-sw", claimed} <= left
            assert report.runs == []
        finally:
            lab_netns._delete_namespaces([n for n in names if n in list_namespaces()])

    def test_forced_clean_also_removes_live_runs(self, run: Run, state_dir: Path) -> None:
        ns = run.ns("a")
        run.add_namespaces([ns])
        proc = run.start(["sleep", "60"], netns=ns, what="sleeper")
        report = clean(only_dead=False, state_dir=state_dir, orphan_re=only(run.prefix))
        assert [r.prefix for r in report.runs] == [run.prefix] and report.live == []
        assert proc.wait(timeout=2) is not None
        assert run.namespaces() == [] and not run.state_file.exists()
