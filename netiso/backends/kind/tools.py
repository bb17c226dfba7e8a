"""The ``kind`` and ``docker`` processes: run them, and turn their absence into one clear message.

Every call to either tool goes through :class:`Tools.run` (argv list, no shell), which records
the command line, so the stand-in executables of the tests see exactly what a user's real
``kind``/``docker`` would. The checks mirror what users hit:

* ``kind`` or ``docker`` not on ``PATH`` -> :class:`BackendUnavailable` with the install hint
  (exit 2);
* the Docker daemon not answering (``docker version`` exits 1 with the client's
  ``Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon
  running?``) -> its own message; the socket refusing us (``permission denied while trying to
  connect to the Docker daemon socket``) -> the group hint.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from netiso.backends.base import BackendUnavailable
from netiso.backends.kind.configs import KIND_VERSION

KIND_HINT = (
    f"kind is not installed (no `kind` on PATH): install kind {KIND_VERSION} "
    f"(https://kind.sigs.k8s.io/docs/user/quick-start/#installation, e.g. `go install sigs.k8s.io/kind@{KIND_VERSION}`), "
    "or run on the embedded lab (--backend lab)"
)
DOCKER_HINT = (
    "Docker is not installed (no `docker` on PATH): kind runs its nodes as Docker containers; install Docker Engine "
    "(https://docs.docker.com/engine/install/), or run on the embedded lab (--backend lab)"
)


@dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


class ToolError(Exception):
    """A ``kind``/``docker`` command failed; the message quotes the command and its stderr."""

    def __init__(self, result: Result, what: str = "") -> None:
        self.result = result
        tail = (result.stderr or result.stdout).strip().splitlines()[-6:]
        detail = "\n  ".join(tail) if tail else "(no output)"
        head = f"{what}: " if what else ""
        super().__init__(f"{head}`{' '.join(result.argv)}` exited {result.returncode}:\n  {detail}")


@dataclass
class Tools:
    """Runs ``kind``/``docker`` from ``PATH`` (``env`` overrides the environment for tests)."""

    env: dict[str, str] | None = None
    progress: Callable[[str], None] | None = None
    history: list[Result] = field(default_factory=list)

    def which(self, tool: str) -> str | None:
        path = (self.env or os.environ).get("PATH", os.defpath)
        return shutil.which(tool, path=path)

    def run(self, argv: Sequence[str], *, check: bool = True, input: str | None = None, what: str = "") -> Result:
        exe = self.which(argv[0])
        if exe is None:
            raise BackendUnavailable(KIND_HINT if argv[0] == "kind" else DOCKER_HINT)
        proc = subprocess.run(
            [exe, *argv[1:]],
            input=input,
            capture_output=True,
            text=True,
            env=self.env,
            check=False,
        )
        result = Result(tuple(argv), proc.returncode, proc.stdout, proc.stderr)
        self.history.append(result)
        if check and proc.returncode != 0:
            raise ToolError(result, what)
        return result

    def say(self, line: str) -> None:
        if self.progress is not None:
            self.progress(line)

    def timed(self, label: str, fn: Callable[[], object]) -> object:
        """Run ``fn`` between two progress lines; the second carries the elapsed time."""
        self.say(f"{label} ...")
        start = time.monotonic()
        out = fn()
        self.say(f"{label}: done in {time.monotonic() - start:.1f}s")
        return out

    def require(self) -> str:
        """Both tools present and the daemon answering; returns the server version.

        Raises :class:`BackendUnavailable` naming what is missing and how to get it.
        """
        if self.which("docker") is None:
            raise BackendUnavailable(DOCKER_HINT)
        if self.which("kind") is None:
            raise BackendUnavailable(KIND_HINT)
        res = self.run(["docker", "version", "--format", "{{.Server.Version}}"], check=False)
        if res.returncode != 0 or not res.stdout.strip():
            err = (res.stderr or res.stdout).strip()
            if "permission denied" in err.lower():
                raise BackendUnavailable(
                    "Docker refuses this user (permission denied on the daemon socket): add the user to the "
                    f"`docker` group (then log in again) or run as root. docker said: {err.splitlines()[-1]}"
                )
            last = err.splitlines()[-1] if err else "no answer"
            raise BackendUnavailable(
                "the Docker daemon is not running or not reachable: start it (e.g. `sudo systemctl start docker`) "
                f"or point DOCKER_HOST at it. docker said: {last}"
            )
        self.run(["kind", "version"], what="kind version")
        return res.stdout.strip()
