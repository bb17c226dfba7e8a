"""The kind backend's janitor: client containers a run killed hard (SIGKILL, OOM, a cancelled CI job) left.

A run removes its client containers itself (``ClientContainers.stop``: at close, on failure, on
Ctrl-C); only a run that could not run any code at its end leaves them. Such containers outlive the
process in the Docker daemon, so ownership is written *on them*, at ``docker run``, the way the
lab's run registry writes it in a state file (``lab/runs.py``: owner PID + its start time):

* ``netiso.io/run=<run>`` (every container of a run, as before) and the owner labels of
  :class:`Owner`: ``netiso.io/owner-pid``, ``netiso.io/owner-start-time`` (field 22 of
  ``/proc/<pid>/stat``, ``processes.proc_start_time``), ``netiso.io/owner-boot-id``
  (``/proc/sys/kernel/random/boot_id``) and ``netiso.io/owner-pid-ns`` (``/proc/self/ns/pid``);
* the janitor lists ``docker ps -a --filter label=netiso.io/run`` with those labels
  (``--format '{{.Names}}\\t{{.Label "..."}}...'``, the ps template kind itself uses to list its
  clusters' nodes: kubernetes-sigs/kind ``pkg/cluster/internal/providers/docker/provider.go``
  ``ListClusters``; ``.Label`` is documented in the docker CLI's ``ps --format`` reference) and removes
  with one ``docker rm -f`` exactly the containers :func:`judge` calls leftovers.

The rule (:func:`judge`), safe side first: a container is a leftover only when netiso can *know*
its owner is gone: it carries all owner labels and its name is ``netiso-<run>-...``; it was made
under this host's boot id *and* from this PID namespace (so its PID means the same process here);
and that PID is gone, a zombie, or now a process with another start time (PID reused).

* **Another boot id: left alone, with a line saying so.** After a reboot the owner is certainly
  gone, but a container made by a process on *another host* that shares this Docker daemon
  (``DOCKER_HOST`` pointing at a remote or shared daemon, a socket forwarded over SSH) carries
  that host's boot id too, and its owner may be alive right now. The boot id cannot tell the two
  apart, and removing a live run's client mid-probe turns its verdicts into timeouts, so netiso
  never guesses: the line names the command (``docker rm -f NAME``) for the user who knows the
  daemon is theirs.
* **Another PID namespace: left alone** for the same reason: CI jobs that run in containers with
  ``/var/run/docker.sock`` mounted share the host's kernel (same boot id) but not its PIDs, so a
  PID read from a label means nothing in our ``/proc``.
* **A PID whose ``/proc`` entry we may not read** (``hidepid=``, another user's process) but which
  exists (``kill(pid, 0)`` answers EPERM): treated as alive, since its start time cannot be checked.
* **No owner labels** (a container of a netiso that did not write them yet, or anything else that
  merely carries ``netiso.io/run``): left alone, with a line; containers without ``netiso.io/run``
  (kind's own nodes, anything else) are never even listed.

kind *clusters* are not this janitor's: their names carry their config hash and ``--keep-cluster``
keeps them on purpose for the next run, which reuses a cluster by name. A run killed while
``kind create cluster`` was running may leave a half-created cluster (kind removes its nodes when
*it* fails, not when it is killed): ``kind get clusters`` lists it as ``netiso-...``, and
``kind delete cluster --name <name>`` removes it; nothing here can tell it from a kept cluster
another run is using, so nothing here deletes it.

Knowingly different from the lab's janitor: no state file (the daemon keeps the record, so
there is no birth race: the labels exist from the container's first moment), and the boot id and
PID namespace, which the lab's state files under ``/run`` never needed (``/run`` is per boot and
per host).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from netiso.backends.base import BackendUnavailable
from netiso.backends.kind.tools import ToolError, Tools
from netiso.backends.processes import proc_start_time, proc_stat

RUN_LABEL = "netiso.io/run"  # the kube backend's run label (kube/naming.py RUN_LABEL), on every client container
OWNER_PID = "netiso.io/owner-pid"
OWNER_START = "netiso.io/owner-start-time"
OWNER_BOOT = "netiso.io/owner-boot-id"
OWNER_PID_NS = "netiso.io/owner-pid-ns"
OWNER_LABELS = (OWNER_PID, OWNER_START, OWNER_BOOT, OWNER_PID_NS)
BOOT_ID_FILE = Path("/proc/sys/kernel/random/boot_id")

# what --dry-run prints in place of the values only a running process has
PLANNED_OWNER: dict[str, str] = {OWNER_PID: "PID", OWNER_START: "START_TIME", OWNER_BOOT: "BOOT_ID",
                                 OWNER_PID_NS: "PID_NS"}


def boot_id() -> str:
    """This kernel's boot id: changes at every boot, the same in every container on this kernel."""
    return BOOT_ID_FILE.read_text().strip()


def pid_namespace() -> str:
    """This process's PID namespace (``pid:[4026531836]``): PIDs mean the same process only inside it."""
    return os.readlink("/proc/self/ns/pid")


@dataclass(frozen=True)
class Owner:
    """The process that started a run's containers, as written on them (labels) and read back."""

    pid: int
    start_time: int
    boot_id: str
    pid_ns: str

    @classmethod
    def this_process(cls) -> Owner:
        pid = os.getpid()
        start = proc_start_time(pid)
        assert start is not None  # our own /proc entry
        return cls(pid, start, boot_id(), pid_namespace())

    def labels(self) -> dict[str, str]:
        return {OWNER_PID: str(self.pid), OWNER_START: str(self.start_time), OWNER_BOOT: self.boot_id,
                OWNER_PID_NS: self.pid_ns}

    @classmethod
    def from_labels(cls, labels: Mapping[str, str]) -> Owner | None:
        """The owner a container's labels name; None when any label is missing or unreadable.

        >>> Owner.from_labels({OWNER_PID: "7", OWNER_START: "99", OWNER_BOOT: "b", OWNER_PID_NS: "pid:[1]"})
        Owner(pid=7, start_time=99, boot_id='b', pid_ns='pid:[1]')
        >>> Owner.from_labels({OWNER_PID: "7"}) is None
        True
        """
        try:
            owner = cls(int(labels[OWNER_PID]), int(labels[OWNER_START]), labels[OWNER_BOOT], labels[OWNER_PID_NS])
        except (KeyError, ValueError):
            return None
        return owner if owner.pid > 0 and owner.boot_id and owner.pid_ns else None


def owner_labels() -> dict[str, str]:
    """The owner labels of this process, for ``docker run --label`` (``cluster.ClientContainers``)."""
    return Owner.this_process().labels()


def owner_alive(pid: int, start_time: int) -> bool:
    """True unless ``pid`` is gone, a zombie, or another process (other start time).

    A PID whose ``/proc`` entry cannot be read but which exists (``kill(pid, 0)`` answers EPERM:
    another user's process under ``hidepid=``) counts as alive: its start time cannot be checked.
    """
    stat = proc_stat(pid)
    if stat is not None:
        return stat[1] == start_time and stat[0] not in ("Z", "X")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return False  # it exists for kill() yet has no /proc entry we can read: it died in between


LEFTOVER, LIVE, UNJUDGED = "leftover", "live", "unjudged"


def judge(name: str, labels: Mapping[str, str], here: Owner) -> tuple[str, str]:
    """(verdict, why) of one container listed by ``RUN_LABEL``; ``here`` is this process.

    Only :data:`LEFTOVER` is removed; :data:`UNJUDGED` is what netiso cannot know (see the module).

    >>> here = Owner(1, 1, "boot-a", "pid:[1]")
    >>> judge("netiso-nx0a1b2c-alice", {RUN_LABEL: "nx0a1b2c", OWNER_PID: "2", OWNER_START: "5",
    ...       OWNER_BOOT: "boot-b", OWNER_PID_NS: "pid:[1]"}, here)[0]
    'unjudged'
    """
    run = labels.get(RUN_LABEL, "")
    if not run or not name.startswith(f"netiso-{run}-"):
        return UNJUDGED, f"not named netiso-<run>-... for its {RUN_LABEL} label {run!r}"
    owner = Owner.from_labels(labels)
    if owner is None:
        return UNJUDGED, f"no owner labels ({', '.join(OWNER_LABELS)}): its owner cannot be judged"
    if owner.boot_id != here.boot_id:
        return UNJUDGED, (f"made under boot id {owner.boot_id}, this host's is {here.boot_id}: a reboot since, or "
                          "another host sharing this Docker daemon; if no run uses it: docker rm -f " + name)
    if owner.pid_ns != here.pid_ns:
        return UNJUDGED, (f"made from PID namespace {owner.pid_ns}, this process is in {here.pid_ns} (another "
                          "container sharing this Docker daemon); if no run uses it: docker rm -f " + name)
    if owner_alive(owner.pid, owner.start_time):
        return LIVE, f"owner pid {owner.pid} is alive"
    return LEFTOVER, f"owner pid {owner.pid} is gone"


def ps_argv() -> list[str]:
    """Every container carrying the run label, running or not, with its name and netiso's labels."""
    fields = ["{{.Names}}", *(f'{{{{.Label "{key}"}}}}' for key in (RUN_LABEL, *OWNER_LABELS))]
    return ["docker", "ps", "-a", "--filter", f"label={RUN_LABEL}", "--format", "\t".join(fields)]


def listed(stdout: str) -> list[tuple[str, dict[str, str]]]:
    """``(name, labels)`` per line of :func:`ps_argv`'s output; an empty label value is no label.

    A line that does not have exactly one field per column, or names several names, is skipped
    (never judged, never removed).
    """
    keys = (RUN_LABEL, *OWNER_LABELS)
    out: list[tuple[str, dict[str, str]]] = []
    for line in stdout.splitlines():
        cells = line.split("\t")
        if len(cells) != 1 + len(keys) or not cells[0] or "," in cells[0]:  # "a,b": a container with links
            continue
        out.append((cells[0], {k: v for k, v in zip(keys, cells[1:], strict=True) if v}))
    return out


def clean_clients(tools: Tools, here: Owner | None = None) -> list[str]:
    """Remove the client containers of runs whose owner is gone; one line per container removed or
    left alone for a reason the user may act on (live owners' containers pass without a line per
    container: one line per live run). A docker failure is :class:`BackendUnavailable` (exit 2)."""
    here = here or Owner.this_process()
    try:
        res = tools.run(ps_argv(), what="kind janitor: docker could not list netiso's client containers")
    except ToolError as exc:
        raise BackendUnavailable(str(exc)) from None
    lines: list[str] = []
    doomed: dict[str, str] = {}
    live: dict[str, str] = {}
    for name, labels in listed(res.stdout):
        verdict, why = judge(name, labels, here)
        if verdict == LEFTOVER:
            doomed[name] = why
        elif verdict == LIVE:
            live.setdefault(labels[RUN_LABEL], why)
        else:
            lines.append(f"left container {name} alone: {why}")
    lines += [f"left run {run} alone: {why}" for run, why in live.items()]
    if not doomed:
        return lines
    rm = tools.run(["docker", "rm", "-f", *doomed], check=False)
    missing = {line.rsplit("No such container: ", 1)[1].strip() for line in rm.stderr.splitlines()
               if "No such container: " in line}
    gone = {n for n in doomed if n in missing}  # removed meanwhile (another janitor)
    removed = [n for n in rm.stdout.split() if n in doomed]
    failed = [n for n in doomed if n not in removed and n not in gone]
    lines += [f"removed container {n} (run leftover: {doomed[n]})" for n in removed]
    lines += [f"container {n} was already gone" for n in sorted(gone)]
    if failed:
        detail = (rm.stderr or rm.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise BackendUnavailable(
            f"kind janitor: docker could not remove {', '.join(failed)} (`docker rm -f` exited {rm.returncode}: "
            f"{detail[0]}); remove them with docker rm -f once the daemon answers"
            + (f"; already removed: {', '.join(removed)}" if removed else "")
        )
    return lines
