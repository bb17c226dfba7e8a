"""Run registry and janitor of the embedded lab.

Everything the lab creates belongs to a *run* identified by a prefix (``nx`` + 6 hex chars):
every network namespace is named ``<prefix>-...`` and every process the run starts is written
to a state file ``/run/netiso/runs/<prefix>.json`` *before* it can leak. That order is what
makes the janitor safe: a namespace whose prefix has no state file can only be the leftover of
a run whose state directory was wiped, never a run being born (its state file comes first).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import shlex
import shutil
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from netiso.backends.lab.netns import (
    PREFIX_RE,
    RUN_FILES_DIR,
    RUN_NS_RE,
    STATE_DIR,
    PidRecord,
    _delete_namespaces,
    _terminate,
    ip_batch,
    list_namespaces,
    proc_start_time,
    process_alive,
    run,
    wrap_argv,
    write_sysctls,
)

log = logging.getLogger("netiso.lab")


# --------------------------------------------------------------------------- run registry


@dataclass
class TeardownReport:
    """What one teardown removed: for ``netiso clean`` to print and tests to check."""

    prefix: str
    killed: list[PidRecord] = field(default_factory=list)
    stale: list[PidRecord] = field(default_factory=list)  # already gone or pid reused: not signalled
    namespaces: list[str] = field(default_factory=list)
    failed_namespaces: list[str] = field(default_factory=list)
    state_file_removed: bool = False
    reason: str = ""

    def lines(self) -> list[str]:
        head = f"run {self.prefix}" + (f" ({self.reason})" if self.reason else "")
        out = [head]
        out += [f"  killed pid {r.pid} ({r.what})" for r in self.killed]
        out += [f"  pid {r.pid} ({r.what}) already gone" for r in self.stale]
        out += [f"  deleted netns {n}" for n in self.namespaces]
        out += [f"  FAILED to delete netns {n}" for n in self.failed_namespaces]
        if self.state_file_removed:
            out.append("  removed state file")
        return out


def _teardown(
    prefix: str,
    pids: Sequence[PidRecord],
    state_file: Path | None,
    *,
    popens: Mapping[int, subprocess.Popen[Any]] | None = None,
    replay: list[str] | None = None,
    reason: str = "",
) -> TeardownReport:
    """Kill the run's processes, delete its namespaces, then forget it (state file last).

    The state file goes last so that a teardown interrupted half-way is finished by the
    janitor on the next ``netiso clean``.
    """
    report = TeardownReport(prefix=prefix, reason=reason)
    report.killed, report.stale = _terminate(pids, popens or {})
    mine = [n for n in list_namespaces() if n.startswith(prefix + "-")]
    report.namespaces, report.failed_namespaces = _delete_namespaces(mine, replay)
    workdir = RUN_FILES_DIR / prefix  # nginx configs and logs of the run
    if PREFIX_RE.match(prefix) and workdir.is_dir():
        shutil.rmtree(workdir, ignore_errors=True)
    if state_file is not None and not report.failed_namespaces:
        try:
            state_file.unlink()
            report.state_file_removed = True
        except FileNotFoundError:
            pass
    return report


class Run:
    """One lab run: its prefix, state file, replay log and the processes it started.

    Create with :meth:`create` (writes the state file before anything else exists), end with
    :meth:`down` (also the context-manager exit).
    """

    def __init__(self, prefix: str, state_dir: Path, owner_pid: int, owner_start: int, created: float):
        self.prefix = prefix
        self.state_dir = state_dir
        self.owner_pid = owner_pid
        self.owner_start = owner_start
        self.created = created
        self.pids: list[PidRecord] = []
        self.replay: list[str] = []
        self._popens: dict[int, subprocess.Popen[Any]] = {}
        self._lock = threading.Lock()
        self.closed = False

    # ---- lifecycle

    @classmethod
    def create(cls, prefix: str | None = None, *, state_dir: Path = STATE_DIR) -> Run:
        """Claim a prefix (random ``nx`` + 6 hex unless given) by writing its state file.

        The claim is atomic (hard link of a complete temporary file), so two runs can never
        share a prefix and the janitor never sees a half-written state file.
        """
        state_dir = Path(state_dir)
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o755)
        pid = os.getpid()
        start = proc_start_time(pid)
        assert start is not None
        for _ in range(16):
            candidate = prefix or "nx" + secrets.token_hex(3)
            if not PREFIX_RE.match(candidate):
                raise ValueError(f"run prefix {candidate!r} must match {PREFIX_RE.pattern}")
            taken = any(n.startswith(candidate + "-") for n in list_namespaces())
            run_ = cls(candidate, state_dir, pid, start, time.time())
            if not taken and run_._claim():
                log.debug("# run %s: state file %s", candidate, run_.state_file)
                return run_
            if prefix:
                raise ValueError(f"run prefix {prefix!r} is in use (state file or namespaces exist)")
        raise RuntimeError("could not find a free run prefix")

    @property
    def state_file(self) -> Path:
        return self.state_dir / f"{self.prefix}.json"

    def _state(self) -> dict[str, Any]:
        return {
            "prefix": self.prefix,
            "owner": {"pid": self.owner_pid, "start_time": self.owner_start},
            "created": self.created,
            "pids": [asdict(p) for p in self.pids],
        }

    def _write_tmp(self) -> Path:
        tmp = self.state_dir / f".{self.prefix}.{os.getpid()}.{threading.get_ident()}.tmp"
        tmp.write_text(json.dumps(self._state(), indent=1))
        return tmp

    def _claim(self) -> bool:
        tmp = self._write_tmp()
        try:
            os.link(tmp, self.state_file)
            return True
        except FileExistsError:
            return False
        finally:
            tmp.unlink()

    def _save(self) -> None:
        os.replace(self._write_tmp(), self.state_file)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    def down(self) -> TeardownReport:
        """Kill registered processes, delete ``<prefix>-*`` namespaces, remove the state file."""
        with self._lock:
            report = _teardown(
                self.prefix, list(self.pids), self.state_file, popens=self._popens, replay=self.replay
            )
            for proc in self._popens.values():
                if proc.poll() is None:
                    proc.wait(timeout=2)
            self.closed = True
            return report

    # ---- naming

    def ns(self, suffix: str) -> str:
        """Namespace name of this run: ``<prefix>-<suffix>``."""
        return f"{self.prefix}-{suffix}"

    def namespaces(self) -> list[str]:
        """This run's namespaces as they exist now (listing /run/netns)."""
        return [n for n in list_namespaces() if n.startswith(self.prefix + "-")]

    def _own(self, name: str) -> str:
        if not name.startswith(self.prefix + "-"):
            raise ValueError(f"namespace {name!r} does not belong to run {self.prefix}")
        return name

    # ---- commands (logged to the replay log)

    def run(
        self, argv: Sequence[str], *, netns: str | None = None, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return run(argv, netns=netns, input=input, check=check, replay=self.replay)

    def ip_batch(self, netns: str | None, lines: Sequence[str], *, tool: str = "ip") -> None:
        ip_batch(netns, lines, tool=tool, replay=self.replay)

    def write_sysctls(
        self, netns: str | Mapping[str, Mapping[str, str]], values: Mapping[str, str] | None = None
    ) -> None:
        names = [netns] if isinstance(netns, str) else list(netns)
        for n in names:
            self._own(n)
        write_sysctls(netns, values, replay=self.replay)

    def add_namespaces(self, names: Sequence[str]) -> None:
        """Create namespaces in one process (``ip -batch`` of ``netns add`` lines)."""
        for n in names:
            self._own(n)
        ip_batch(None, [f"netns add {n}" for n in names], replay=self.replay)

    # ---- processes

    def register_pid(self, pid: int, what: str) -> PidRecord:
        """Record a process this run started, so that down() and the janitor can end it."""
        start = proc_start_time(pid)
        if start is None:
            raise ProcessLookupError(f"pid {pid} ({what}) does not exist")
        rec = PidRecord(pid, start, what)
        with self._lock:
            if self.closed:  # a late registration must not resurrect the state file
                raise RuntimeError(f"run {self.prefix} is down; pid {pid} ({what}) was not registered")
            self.pids.append(rec)
            self._save()
        return rec

    def start(
        self, argv: Sequence[str], *, what: str, netns: str | None = None, **popen_kwargs: Any
    ) -> subprocess.Popen[Any]:
        """Start a long-running process (inside ``netns``) and register it.

        ``nsenter --net`` execs the program in place, so the pid is the program's own pid.
        """
        if self.closed:
            raise RuntimeError(f"run {self.prefix} is down")
        full = wrap_argv(argv, netns)
        line = shlex.join(full) + " &"
        log.debug("%s", line)
        self.replay.append(line)
        popen_kwargs.setdefault("stdin", subprocess.DEVNULL)
        proc = subprocess.Popen(full, **popen_kwargs)
        self._popens[proc.pid] = proc
        with contextlib.suppress(ProcessLookupError):  # exited already: nothing to clean up
            self.register_pid(proc.pid, what)
        return proc

    def replay_script(self) -> str:
        """The replay log as a bash script."""
        return "#!/bin/bash\nset -e\n" + "\n".join(self.replay) + "\n"


# --------------------------------------------------------------------------- janitor


@dataclass
class CleanReport:
    """Result of :func:`clean`."""

    runs: list[TeardownReport] = field(default_factory=list)
    orphan_namespaces: list[str] = field(default_factory=list)
    live: list[str] = field(default_factory=list)  # prefixes of live runs, left alone
    problems: list[str] = field(default_factory=list)

    @property
    def removed_anything(self) -> bool:
        return bool(self.runs or self.orphan_namespaces)

    def lines(self) -> list[str]:
        out: list[str] = []
        for r in self.runs:
            out += r.lines()
        out += [f"deleted orphan netns {n} (no state file)" for n in self.orphan_namespaces]
        out += [f"left live run {p} alone" for p in self.live]
        out += [f"problem: {p}" for p in self.problems]
        return out or ["nothing to clean"]


def _load_state(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def clean(
    only_dead: bool = True, *, state_dir: Path = STATE_DIR, orphan_re: re.Pattern[str] = RUN_NS_RE
) -> CleanReport:
    """Tear down runs whose owner died (all runs if ``only_dead`` is False) and orphans.

    A run's owner is dead when its pid is gone, is a zombie, or now belongs to a process with
    another start time. Orphans are namespaces matching ``orphan_re`` (group 1 = prefix;
    default: exactly ``^nx[0-9a-f]{6}-``) whose prefix has no state file and no live run.
    The namespace list is taken *before* the state files are read: a run created meanwhile
    has its state file on disk before its first namespace, so it is never mistaken for one.
    """
    report = CleanReport()
    names_before = list_namespaces()
    state_dir = Path(state_dir)
    claimed: set[str] = set()
    files = sorted(state_dir.glob("*.json")) if state_dir.is_dir() else []
    for path in files:
        prefix = path.stem
        if not PREFIX_RE.match(prefix):
            report.problems.append(f"ignored {path}: not a run state file name")
            continue
        claimed.add(prefix)
        state = _load_state(path)
        pids: list[PidRecord] = []
        if state is None or state.get("prefix") != prefix:
            reason = "unreadable state file"
            report.problems.append(f"{path}: unreadable or inconsistent, treated as dead")
        else:
            owner = state.get("owner") or {}
            alive = process_alive(int(owner.get("pid", 0)), int(owner.get("start_time", -1)))
            if alive and only_dead:
                report.live.append(prefix)
                continue
            reason = "owner alive, forced" if alive else f"owner pid {owner.get('pid')} is gone"
            try:
                pids = [PidRecord(int(p["pid"]), int(p["start_time"]), str(p.get("what", ""))) for p in state["pids"]]
            except (KeyError, TypeError, ValueError):
                report.problems.append(f"{path}: bad pid list, no process killed")
        report.runs.append(_teardown(prefix, pids, path, reason=reason))
    orphans = []
    for name in names_before:
        m = orphan_re.match(name)
        if not m:
            continue
        prefix = m.group(1)
        if prefix in claimed or (state_dir / f"{prefix}.json").exists():
            continue
        orphans.append(name)
    deleted, failed = _delete_namespaces(orphans)
    report.orphan_namespaces = deleted
    report.problems += [f"failed to delete orphan netns {n}" for n in failed]
    if state_dir.is_dir():  # temporary files of a crash between write and claim/replace
        for tmp in state_dir.glob(".*.tmp"):
            with contextlib.suppress(OSError):
                if time.time() - tmp.stat().st_mtime > 60:
                    tmp.unlink()
    return report


def new_prefix() -> str:
    """A fresh random prefix ``nx`` + 6 hex chars (not claimed: use :meth:`Run.create`)."""
    return "nx" + secrets.token_hex(3)
