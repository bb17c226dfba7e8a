"""Progress of a run for the person watching: scenarios realized, probes done/total, elapsed time.

A run of the bundled matrix takes tens of seconds on the lab and minutes on a cluster; silence
for that long reads as a hang. On a terminal one status line is rewritten in place; anywhere else
(CI logs, pipes, pytest's captured output) every milestone is a plain line of its own, so logs
stay readable and diffable. Written to stderr: stdout carries the result tables.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import IO


class Progress:
    """Counts scenarios and probes; ``say`` writes a milestone line.

    >>> import io
    >>> out = io.StringIO()
    >>> p = Progress(2, 10, stream=out, tty=False, clock=lambda: 0.0)
    >>> p.started("nodeport"); p.done("nodeport", flows=6, bad=0)
    >>> print(out.getvalue().strip().splitlines()[-1])
    [   0.0s] nodeport: 6 flows probed, 0 mismatched (scenarios 1/2, probes 6/10)
    """

    def __init__(self, scenarios: int, flows: int, *, stream: IO[str] | None = None, tty: bool | None = None,
                 backend: str = "lab", clock: Callable[[], float] = time.monotonic,
                 write: Callable[[str], None] | None = None) -> None:
        self.total_scenarios, self.total_flows = scenarios, flows
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.backend = backend
        self.clock = clock
        self.t0 = clock()
        self.done_scenarios = self.done_flows = 0
        self.running: list[str] = []
        self._write = write
        self._lock = threading.Lock()
        self._status_shown = False

    def _stamp(self) -> str:
        return f"[{self.clock() - self.t0:6.1f}s]"

    def say(self, text: str) -> None:
        """A milestone (cluster created, add-on ready, scenario done): always its own line."""
        with self._lock:
            line = f"{self._stamp()} {text}"
            if self._write is not None:
                self._write(line)
                return
            if self.tty and self._status_shown:
                self.stream.write("\r\033[K")
            self.stream.write(line + "\n")
            if self.tty:
                self._status()
            self.stream.flush()

    def _status(self) -> None:
        running = ", ".join(self.running[:3]) + (" ..." if len(self.running) > 3 else "")
        self.stream.write(f"\r\033[K{self._stamp()} {self.backend}: scenarios {self.done_scenarios}/{self.total_scenarios}, "
                          f"probes {self.done_flows}/{self.total_flows}" + (f" | running {running}" if running else ""))
        self._status_shown = True

    def started(self, name: str) -> None:
        with self._lock:
            self.running.append(name)
        if self.tty and self._write is None:
            with self._lock:
                self._status()
                self.stream.flush()

    def done(self, name: str, *, flows: int, bad: int, skipped: int = 0) -> None:
        with self._lock:
            if name in self.running:
                self.running.remove(name)
            self.done_scenarios += 1
            self.done_flows += flows
        extra = f", {skipped} skipped" if skipped else ""
        self.say(f"{name}: {flows} flows probed, {bad} mismatched{extra} (scenarios {self.done_scenarios}/"
                 f"{self.total_scenarios}, probes {self.done_flows}/{self.total_flows})")

    def close(self) -> None:
        if self.tty and self._status_shown and self._write is None:
            with self._lock:
                self.stream.write("\r\033[K")
                self.stream.flush()
