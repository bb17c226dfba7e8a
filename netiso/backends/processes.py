"""Process identity from /proc: a PID together with its start time names one process for good.

Every backend ends the processes it started by PID (never by name), and a PID alone can be reused
by an unrelated process after ours exited; the start time (field 22 of /proc/<pid>/stat) tells
them apart. Shared by the lab's run registry and the lab keeper, so it lives outside any backend.
"""

from __future__ import annotations

from pathlib import Path


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, start time) of a process from /proc/<pid>/stat, None if it does not exist."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # comm (field 2) may contain spaces and parentheses: split after the last ")".
    rest = data[data.rindex(")") + 2 :].split()
    return rest[0], int(rest[19])


def proc_start_time(pid: int) -> int | None:
    """Start time of ``pid`` (field 22 of /proc/<pid>/stat), None if the pid does not exist.

    >>> import os
    >>> proc_start_time(os.getpid()) is not None
    True
    """
    stat = proc_stat(pid)
    return stat[1] if stat else None


def process_alive(pid: int, start_time: int) -> bool:
    """True when ``pid`` still is the very process started at ``start_time`` and not a zombie."""
    stat = proc_stat(pid)
    return stat is not None and stat[1] == start_time and stat[0] not in ("Z", "X")
