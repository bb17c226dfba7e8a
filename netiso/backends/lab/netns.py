"""Command runner of the embedded lab: commands, namespaces, sysctls and processes.

The run registry and the janitor that build on it live in :mod:`netiso.backends.lab.runs`.

Everything the lab creates belongs to a *run* identified by a prefix (``nx`` + 6 hex chars):
every network namespace is named ``<prefix>-...`` and every process the run starts is written
to a state file ``/run/netiso/runs/<prefix>.json`` *before* it can leak. That order is what
makes the janitor safe: a namespace whose prefix has no state file can only be the leftover of
a run whose state directory was wiped, never a run being born (its state file comes first).

Commands are spawned as few times as possible (``ip -batch`` per namespace, sysctls written
from a thread that entered the namespace instead of one ``sysctl`` process per key), because a
lab with a dozen namespaces must come up in well under three seconds on a 2-core machine. Each
command is also appended to the run's *replay log*: shell lines that rebuild the lab by hand,
which is what one wants when a datapath misbehaves.

Safety: nothing here ever acts on the host's root network namespace. Sysctls are written only
after the writing thread has *verified* (by inode) that it sits in the target namespace and
that this namespace is not the host's; only ``net/...`` keys are accepted (everything else under
/proc/sys is global to the host).
"""

from __future__ import annotations

import ctypes
import logging
import os
import re
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from netiso.backends.processes import proc_start_time as proc_start_time  # re-exported for the lab modules
from netiso.backends.processes import process_alive

log = logging.getLogger("netiso.lab")

STATE_DIR = Path("/run/netiso/runs")
RUN_FILES_DIR = Path("/run/netiso")  # <prefix>/ holds a run's files (nginx work directories)
NETNS_DIR = Path("/run/netns")
#: Prefixes a Run accepts: generated ones are hex; experiments may pin e.g. ``nxh3a001``.
PREFIX_RE = re.compile(r"^nx[0-9a-z]{6}$")
#: Namespaces the janitor may remove without a state file: exactly a generated (hex) prefix.
RUN_NS_RE = re.compile(r"^(nx[0-9a-f]{6})-")
#: Tools that take the namespace as an option themselves (no nsenter needed).
NETNS_OPTION = {"ip": "-n", "bridge": "-netns"}
DEFAULT_TOOLS = ("ip", "iptables-restore", "iptables-save", "ipset", "nsenter")
#: Debian package of each tool, for the "how to fix it" message of LabUnavailable.
TOOL_PACKAGES = {
    "ip": "iproute2",
    "bridge": "iproute2",
    "iptables": "iptables",
    "iptables-restore": "iptables",
    "iptables-save": "iptables",
    "ipset": "ipset",
    "nsenter": "util-linux",
    "tcpdump": "tcpdump",
    "conntrack": "conntrack",
    "nginx": "nginx-light",
}
CLONE_NEWNET = 0x40000000
TERM_GRACE_S = 1.0

T = TypeVar("T")
_libc = ctypes.CDLL(None, use_errno=True)


class LabUnavailable(RuntimeError):
    """The host cannot run the lab; the message says exactly how to fix it."""


class LabCommandError(RuntimeError):
    """A lab command failed; carries the command line, the namespace and stderr."""

    def __init__(self, argv: Sequence[str], netns: str | None, returncode: int | None, stderr: str):
        self.argv = list(argv)
        self.netns = netns
        self.returncode = returncode
        self.stderr = stderr.strip()
        where = f" in netns {netns}" if netns else ""
        super().__init__(f"command failed{where} (exit {returncode}): {shlex.join(self.argv)}\n{self.stderr}")


# --------------------------------------------------------------------------- root guard


def require_root_and_tools(tools: Iterable[str] = DEFAULT_TOOLS) -> None:
    """Raise :class:`LabUnavailable` unless we are root and every tool is on PATH.

    >>> require_root_and_tools(tools=()) if os.geteuid() == 0 else None
    """
    if os.geteuid() != 0:
        raise LabUnavailable("the lab needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN): run as root, e.g. `sudo netiso ...`")
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        packages = list(dict.fromkeys(TOOL_PACKAGES.get(t, t) for t in missing))
        raise LabUnavailable(
            f"{', '.join(missing)} not found: run `apt-get install -y {' '.join(packages)}`"
        )
    if not Path("/proc/thread-self/ns/net").exists():
        raise LabUnavailable("/proc/thread-self/ns/net is missing: the lab needs Linux >= 3.17 with /proc mounted")


# --------------------------------------------------------------------------- processes


@dataclass(frozen=True)
class PidRecord:
    """A process a run started; ``start_time`` (clock ticks since boot) guards against pid reuse."""

    pid: int
    start_time: int
    what: str


def _wait_gone(
    records: Sequence[PidRecord], popens: Mapping[int, subprocess.Popen[Any]], grace: float
) -> list[PidRecord]:
    """Wait up to ``grace`` seconds; return the records still alive."""
    deadline = time.monotonic() + grace
    while True:
        for rec in records:
            if rec.pid in popens:
                popens[rec.pid].poll()  # reap our own children so they do not stay zombies
        alive = [r for r in records if process_alive(r.pid, r.start_time)]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.01)


def _signal(rec: PidRecord, sig: signal.Signals) -> bool:
    """Signal ``rec`` only if it still is the process we started (pid reuse guard)."""
    if not process_alive(rec.pid, rec.start_time):
        return False
    try:
        os.kill(rec.pid, sig)
    except ProcessLookupError:
        return False
    log.debug("kill -%s %d  # %s", sig.name[3:], rec.pid, rec.what)
    return True


def _terminate(
    records: Sequence[PidRecord], popens: Mapping[int, subprocess.Popen[Any]]
) -> tuple[list[PidRecord], list[PidRecord]]:
    """SIGTERM, a short grace, then SIGKILL; only pids whose start time still matches.

    Returns (signalled, stale): stale records were already gone or their pid was reused.
    """
    signalled = [r for r in records if _signal(r, signal.SIGTERM)]
    stale = [r for r in records if r not in signalled]
    stubborn = _wait_gone(signalled, popens, TERM_GRACE_S)
    for rec in stubborn:
        _signal(rec, signal.SIGKILL)
    _wait_gone(stubborn, popens, TERM_GRACE_S)
    return signalled, stale


# --------------------------------------------------------------------------- entering namespaces


def _protected_netns_inodes() -> set[tuple[int, int]]:
    """(dev, inode) of the host's root netns and of this process: never a sysctl target."""
    out = set()
    for path in ("/proc/1/ns/net", "/proc/self/ns/net"):
        try:
            st = os.stat(path)
            out.add((st.st_dev, st.st_ino))
        except OSError:
            pass
    return out


def _enter_netns(name: str) -> None:
    """Move the *calling thread* into netns ``name`` and verify it landed there.

    Refuses a handle that points to the host's root namespace: the one safety net that makes
    it impossible for a writer to change host sysctls by a mistaken name.
    """
    if "/" in name or name in ("", ".", ".."):
        raise LabCommandError(["setns", name], name, None, "invalid namespace name")
    path = NETNS_DIR / name
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise LabCommandError(["setns", str(path)], name, None, "no such network namespace") from None
    try:
        target = os.fstat(fd)
        target_id = (target.st_dev, target.st_ino)
        if target_id in _protected_netns_inodes():
            raise LabCommandError(["setns", str(path)], name, None, "refusing: this is the host's netns")
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise LabCommandError(["setns", str(path)], name, None, os.strerror(err))
    finally:
        os.close(fd)
    now = os.stat("/proc/thread-self/ns/net")
    if (now.st_dev, now.st_ino) != target_id:
        raise LabCommandError(["setns", str(path)], name, None, "thread did not land in the namespace")


def call_in(netns: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``fn`` in a fresh thread that entered ``netns``; return its result (or re-raise).

    Sockets created inside ``fn`` stay bound to that namespace for their whole life, so a probe
    engine can open sockets in many namespaces from one process without spawning anything.
    """
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            _enter_netns(netns)
            box["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name=f"netns:{netns}", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def _check_sysctl_key(key: str) -> Path:
    parts = key.split("/")
    if parts[0] != "net" or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"sysctl key {key!r}: only per-namespace net/... keys in slash form are allowed")
    return Path("/proc/sys", key)


def write_sysctls(
    netns: str | Mapping[str, Mapping[str, str]],
    values: Mapping[str, str] | None = None,
    *,
    replay: list[str] | None = None,
) -> None:
    """Write ``net/...`` sysctls inside namespaces, from one thread, without spawning.

    ``write_sysctls("nx1-n-a", {"net/ipv4/ip_forward": "1"})`` or, for many namespaces in one
    go, ``write_sysctls({"nx1-n-a": {...}, "nx1-n-b": {...}})``. Keys use slashes because
    interface names may contain dots (``vxlan.calico``). /proc/sys/net resolves to the netns of
    the *opening thread*, hence the dedicated thread that calls setns before each namespace.
    """
    plan: Mapping[str, Mapping[str, str]] = {netns: values or {}} if isinstance(netns, str) else netns
    for ns, kv in plan.items():
        for key, value in kv.items():
            _check_sysctl_key(key)
            line = f"nsenter --net={NETNS_DIR / ns} sysctl -qw {key}={value}"
            log.debug("%s", line)
            if replay is not None:
                replay.append(line)

    def writer() -> None:
        for ns, kv in plan.items():
            _enter_netns(ns)
            for key, value in kv.items():
                try:
                    _check_sysctl_key(key).write_text(str(value))
                except OSError as exc:
                    raise LabCommandError(["sysctl", "-w", f"{key}={value}"], ns, None, str(exc)) from None

    _run_in_thread(writer)


def read_sysctls(netns: str, keys: Iterable[str]) -> dict[str, str]:
    """Read ``net/...`` sysctls as seen inside ``netns`` (stripped text values)."""
    return call_in(netns, lambda: {k: _check_sysctl_key(k).read_text().strip() for k in keys})


def _run_in_thread(fn: Callable[[], None]) -> None:
    box: dict[str, BaseException] = {}

    def target() -> None:
        try:
            fn()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, name="netns-sysctl", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]


# --------------------------------------------------------------------------- commands


def wrap_argv(argv: Sequence[str], netns: str | None) -> list[str]:
    """The argv that runs ``argv`` inside ``netns``.

    >>> wrap_argv(["ip", "link"], "nx1-sw")
    ['ip', '-n', 'nx1-sw', 'link']
    >>> wrap_argv(["ipset", "list"], "nx1-sw")
    ['nsenter', '--net=/run/netns/nx1-sw', 'ipset', 'list']
    """
    argv = list(argv)
    if netns is None:
        return argv
    opt = NETNS_OPTION.get(argv[0])
    if opt:
        return [argv[0], opt, netns, *argv[1:]]
    return ["nsenter", f"--net={NETNS_DIR / netns}", *argv]


def replay_line(argv: Sequence[str], input: str | None = None) -> str:
    """A shell line (here-document for stdin) that repeats a command by hand."""
    line = shlex.join(argv)
    if input is None:
        return line
    return f"{line} <<'EOF'\n{input.rstrip(chr(10))}\nEOF"


def run(
    argv: Sequence[str],
    *,
    netns: str | None = None,
    input: str | None = None,
    check: bool = True,
    replay: list[str] | None = None,
    timeout: float = 60.0,
) -> subprocess.CompletedProcess[str]:
    """Run a command (inside ``netns`` if given), log it, raise :class:`LabCommandError` on failure."""
    full = wrap_argv(argv, netns)
    line = replay_line(full, input)
    log.debug("%s", line)
    if replay is not None:
        replay.append(line)
    try:
        proc = subprocess.run(full, input=input, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError as exc:
        raise LabCommandError(full, netns, None, f"{exc}; see require_root_and_tools()") from None
    except subprocess.TimeoutExpired:
        raise LabCommandError(full, netns, None, f"timed out after {timeout}s") from None
    if check and proc.returncode != 0:
        raise LabCommandError(full, netns, proc.returncode, _explain_batch_error(proc.stderr, input))
    return proc


_BATCH_FAIL_RE = re.compile(r"Command failed -:(\d+)")


def _explain_batch_error(stderr: str, input: str | None) -> str:
    """Add the failing line of a ``-batch -`` document, which ip/bridge only give by number."""
    m = _BATCH_FAIL_RE.search(stderr or "")
    if not m or input is None:
        return stderr
    lines = input.splitlines()
    n = int(m.group(1))
    if 1 <= n <= len(lines):
        return f"{stderr.strip()}\nfailing batch line {n}: {lines[n - 1]}"
    return stderr


def ip_batch(
    netns: str | None,
    lines: Sequence[str],
    *,
    tool: str = "ip",
    force: bool = False,
    check: bool = True,
    replay: list[str] | None = None,
) -> subprocess.CompletedProcess[str] | None:
    """Run many ``ip`` (or ``bridge``) commands in one process: ``ip -n NS -batch -``.

    ``netns=None`` runs in the caller's namespace, which is how namespaces themselves are
    added and deleted in bulk (``netns add X`` lines). ``force`` continues after errors.
    """
    if not lines:
        return None
    argv = [tool, *(["-force"] if force else []), "-batch", "-"]
    return run(argv, netns=netns, input="\n".join(lines) + "\n", check=check, replay=replay)


def list_namespaces() -> list[str]:
    """Names of all named network namespaces (entries of /run/netns)."""
    try:
        return sorted(p.name for p in NETNS_DIR.iterdir())
    except FileNotFoundError:
        return []


def _delete_namespaces(names: Sequence[str], replay: list[str] | None = None) -> tuple[list[str], list[str]]:
    """Delete namespaces in one ``ip -force -batch``; return (deleted, failed)."""
    if not names:
        return [], []
    ip_batch(None, [f"netns del {n}" for n in names], force=True, check=False, replay=replay)
    left = set(list_namespaces())
    return [n for n in names if n not in left], [n for n in names if n in left]
