"""Running probe batches: the exec argv, external client commands, client addresses, retries.

Companion of ``probing.py`` (which writes the batch script and reads its output). Kept free of
the kubernetes client: the runtime helper calls :func:`exec_command` for the exec API, and
:func:`run_client` runs a script on an external client host through the user's command
prefix (``--client alice='docker exec -i c1'``, ``--client bob='ssh bob@host'``).

How a prefix becomes an argv (:func:`client_argv`), kept deliberately simple:

* a prefix containing the token ``{}`` gets that token replaced by ONE argument, the command
  as a string for a remote shell (``sh -c '<script>'``, quoted once more);
* a prefix whose program is ``ssh`` (any path) is treated as if ``{}`` ended it, because
  ssh joins its argv with spaces and hands the result to the remote login shell: passing
  ``sh -c SCRIPT`` as separate words would split the script there;
* any other prefix (``docker exec -i c1``, ``kubectl exec -i pod --``, ``nsenter -t 1 -n``)
  gets ``sh -c SCRIPT`` appended as separate arguments, executed without any shell.

The remote login shell of an ``ssh``-style prefix must be POSIX (sh, bash, zsh, ash): it
parses the single-quoted string once.

Retries (:func:`retry_until_consistent`) mirror the netpol e2e's "probe until the truth table
settles" (test/e2e/network/netpol/probe.go retries a connectivity check a few times) with one
difference: a flow that never settles is not silently taken from its last sample but reported
``inconsistent`` with the distribution of its outcomes, so it shows as a mismatch.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import shlex
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace

from tenacity import RetryError, Retrying, retry_if_result, stop_after_attempt, stop_after_delay, wait_fixed

from netiso.backends.kube.probing import ClusterProbe, ClusterProbeResult, has_result_line

PLACEHOLDER = "{}"


class ClientCommandError(Exception):
    """An external client's command could not run the batch: the message names the client."""


def exec_command(script: str) -> list[str]:
    """The argv for the Kubernetes exec API (no shell in between: the API passes argv as is).

    >>> exec_command("echo hi")
    ['sh', '-c', 'echo hi']
    """
    return ["sh", "-c", script]


def _is_ssh(argv: Sequence[str]) -> bool:
    return bool(argv) and os.path.basename(argv[0]) == "ssh"


def client_argv(prefix: str, script: str) -> list[str]:
    """``shlex.split(prefix)`` + the script, quoted once more for ssh-style prefixes.

    >>> client_argv("docker exec -i c1", "echo hi")
    ['docker', 'exec', '-i', 'c1', 'sh', '-c', 'echo hi']
    >>> client_argv("ssh bob@host", "echo hi")
    ['ssh', 'bob@host', "sh -c 'echo hi'"]
    """
    words = shlex.split(prefix)
    if not words:
        raise ValueError("empty client command")
    remote = shlex.join(exec_command(script))
    if PLACEHOLDER in words:
        return [remote if w == PLACEHOLDER else w for w in words]
    if _is_ssh(words):
        return [*words, remote]
    return [*words, *exec_command(script)]


def run_client(prefix: str, script: str, timeout: float, *, name: str | None = None) -> tuple[str, str, int]:
    """Run ``script`` through a client prefix; ``(stdout, stderr, returncode)``.

    The command runs in its own process group and the whole group is killed at ``timeout``
    seconds (an ``ssh`` that hangs on a dead host must not hang netiso). A missing program or
    a timeout raises :class:`ClientCommandError` naming the ``--client`` mapping.
    """
    label = f"--client {name}={prefix}" if name else f"client command {prefix!r}"
    argv = client_argv(prefix, script)
    try:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
        )
    except FileNotFoundError as exc:
        raise ClientCommandError(f"{label}: command {argv[0]!r} not found") from exc
    except PermissionError as exc:
        raise ClientCommandError(f"{label}: command {argv[0]!r} is not executable") from exc
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        _kill_group(proc)
        proc.communicate()
        raise ClientCommandError(f"{label}: no answer within {timeout:g} s (killed)") from exc
    return out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), proc.returncode


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # the group run_client created for this command only


# ----------------------------------------------------------------------------- a batch's end

def stderr_tail(err: str) -> str:
    """The last line of a command's stderr (at most 200 characters), or ``no stderr``.

    >>> stderr_tail("warning\\nsh: curl: not found\\n"), stderr_tail("")
    ('sh: curl: not found', 'no stderr')
    """
    return err.strip().splitlines()[-1][:200] if err.strip() else "no stderr"


def exec_batch_failure(source: str, err: str, rc: int | None, budget: float) -> str | None:
    """Why an exec'd batch's output must not be used (every probe is then an error with it); None: parse it.

    The exit Status on the exec stream's channel 3 decides: no Status within the budget = the batch
    did not finish (its partial output is not trusted); a non-zero code = the shell failed (the
    script itself always ends ``echo NETISO-END``, exit 0).
    """
    if rc is None:
        return f"probe batch from {source} did not finish within {budget:g} s (exec timed out; its partial output was not used)"
    if rc != 0:
        return f"probe batch from {source} failed: exit code {rc} ({stderr_tail(err)})"
    return None


def client_batch_failure(source: str, out: str, err: str, rc: int) -> str | None:
    """The same for a batch run through a ``--client`` command; None: parse it.

    The batch script exits 0, so a non-zero code is the command in front of it failing (ssh's
    255 for a lost connection, docker's 125-127 for a missing container or shell), and any result
    line it printed before is not trusted. A command that exits 0 without a single result line
    ran something else than the script (a wrapper that swallowed it, ``--client c='true'``):
    also a failed batch, never a table of "no result line" errors that hides why.
    """
    if rc != 0:
        return f"probe batch from {source} failed: the client command exited {rc} ({stderr_tail(err)})"
    if not has_result_line(out):
        return f"probe batch from {source} failed: the client command printed no probe results ({stderr_tail(err)})"
    return None


# ----------------------------------------------------------------------------- client address

def client_address_script(node_ip: str) -> str:
    """A script printing how the client host reaches ``node_ip`` (its source) and ``hostname -i``.

    >>> "ip -4 route get 198.18.0.2" in client_address_script("198.18.0.2")
    True
    """
    addr = ipaddress.IPv4Address(node_ip)
    return (
        f'echo "route: $(ip -4 route get {addr} 2>&1 | tr \'\\n\' \' \')"\n'
        'echo "hostname-i: $(hostname -i 2>&1 | tr \'\\n\' \' \')"\n'
    )


_SRC = re.compile(r"\bsrc (\d{1,3}(?:\.\d{1,3}){3})\b")


def parse_client_address(out: str) -> str:
    """The client's own IPv4 address from :func:`client_address_script`'s output.

    ``ip route get``'s ``src`` wins; else the first non-loopback IPv4 of ``hostname -i``.

    >>> parse_client_address("route: 198.18.0.2 dev eth0 src 198.18.0.9 uid 0 \\nhostname-i: 10.0.0.1 ")
    '198.18.0.9'
    >>> parse_client_address("route: sh: ip: not found \\nhostname-i: 127.0.1.1 203.0.113.7 ")
    '203.0.113.7'
    """
    for line in out.splitlines():
        if line.startswith("route:"):
            match = _SRC.search(line)
            if match:
                return str(ipaddress.IPv4Address(match.group(1)))
    for line in out.splitlines():
        if line.startswith("hostname-i:"):
            for word in line.split(":", 1)[1].split():
                try:
                    addr = ipaddress.ip_address(word)
                except ValueError:
                    continue
                if addr.version == 4 and not addr.is_loopback:
                    return str(addr)
    raise ValueError(f"cannot tell the client's address from: {out.strip()[:200]!r}")


# ----------------------------------------------------------------------------- retries

RunBatch = Callable[[list[ClusterProbe]], list[ClusterProbeResult]]
MIN_SAMPLES = 2  # agreeing rounds a flow needs; never one


def retry_until_consistent(
    run_batch: RunBatch,
    probes: Sequence[ClusterProbe],
    *,
    samples: int = 2,
    max_rounds: int = 6,
    deadline_s: float = 120.0,
    wait_s: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> list[ClusterProbeResult]:
    """Probe every flow until its last ``samples`` verdicts agree; one result per probe, in order.

    Each round re-probes only the flows not yet settled (policies take time to program). A flow
    still unsettled after ``max_rounds`` rounds or ``deadline_s`` seconds gets the majority
    verdict (ties: the most recent of the tied verdicts), ``inconsistent=True`` and the
    distribution of its outcomes in ``detail`` and ``distribution`` — never a silent pass.

    ``samples`` is at least two whatever the caller asks: the first round alone never settles
    a flow (it runs right after the policy settle barrier, realization.settle_policies, and one
    sample cannot tell a programmed policy from one still on its way).
    """
    history: dict[str, list[ClusterProbeResult]] = {p.id: [] for p in probes}
    if len(history) != len(probes):
        raise ValueError("probe ids must be unique within a batch")
    need = max(MIN_SAMPLES, samples)

    def settled(probe_id: str) -> bool:
        seen = history[probe_id]
        return len(seen) >= need and len({r.verdict for r in seen[-need:]}) == 1

    def one_round() -> list[ClusterProbe]:
        todo = [p for p in probes if not settled(p.id)]
        if todo:
            results = run_batch(todo)
            by_id = {r.id: r for r in results}
            for probe in todo:
                missing = ClusterProbeResult(probe.id, "error", detail="no result for this probe")
                history[probe.id].append(by_id.get(probe.id) or missing)
        return [p for p in probes if not settled(p.id)]

    retrying = Retrying(
        stop=stop_after_attempt(max(1, max_rounds)) | stop_after_delay(deadline_s),
        wait=wait_fixed(wait_s),
        retry=retry_if_result(bool),
        sleep=sleep,
    )
    with contextlib.suppress(RetryError):  # unsettled flows are reported below
        retrying(one_round)
    return [_final(p.id, history[p.id], settled(p.id)) for p in probes]


def _final(probe_id: str, seen: list[ClusterProbeResult], is_settled: bool) -> ClusterProbeResult:
    if not seen:
        return ClusterProbeResult(probe_id, "error", detail="never probed (deadline reached first)")
    if is_settled:
        return seen[-1]
    counts = Counter(r.verdict for r in seen)
    top = max(counts.values())
    tied = {v for v, n in counts.items() if n == top}
    winner = next(r for r in reversed(seen) if r.verdict in tied)
    distribution = dict(sorted(counts.items()))
    if len(counts) == 1:  # agreeing, but fewer samples than asked for: not confirmed
        note = f"unconfirmed: {len(seen)} sample(s) before the round or time limit: {distribution}"
    else:
        note = f"inconsistent over {len(seen)} samples: {distribution}"
    return replace(winner, inconsistent=True, distribution=distribution, detail="; ".join(x for x in (note, winner.detail) if x))
