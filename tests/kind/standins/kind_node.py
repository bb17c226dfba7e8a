#!/usr/bin/env python3
"""Stand-in kind *node* for ``docker exec <node> sh -c SCRIPT`` (tests only): a real ``sh`` runs the script.

What is real: the script netiso sends (``netiso.backends.kind.trace.node_script``) runs in the
machine's own ``sh`` with its own ``timeout``, ``head``, ``sleep``, ``kill`` and ``stdbuf``, and
its stdin is the ``docker exec -i`` stdin netiso closes. What stands in: ``iptables`` and
``xtables-monitor`` on the front of that script's ``PATH`` are this file (by the name it is
called as), so no real rule is ever touched:

* ``iptables -V`` prints what iptables 1.8.9 prints, ``iptables v1.8.9 (nf_tables)`` or
  ``iptables v1.8.9 (legacy)``, as the node's configuration says;
* ``iptables ... -t raw -I CHAIN 1 SPEC`` / ``-D CHAIN SPEC`` keep the raw table's rules in a file
  per node; ``-D`` of a rule that is not there fails like the real one ("Bad rule ...");
* ``xtables-monitor --trace`` prints a captured real monitor text (tests/lab/samples/trace/,
  recorded on the lab's nodes) and then waits to be ended, as the real one does.

The node's configuration is ``state["nodes"][<container>]`` in the stand-ins' state file:
``{"iptables": "nf_tables" | "legacy", "monitor": true | false, "trace": <sample path>}``; a node
of a cluster the stand-in ``kind`` created, without configuration, is an nf_tables node whose
monitor prints nothing. Every ``iptables`` call is logged as tool ``iptables@<container>``.
NETISO_STANDIN_FAIL word: ``exec-dies`` (the exec ends with 137 right after the script says
ready, killing the script and its monitor without their traps: a lost docker connection).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
from standin_state import fails

VERSION = "v1.8.9"


def _cluster_nodes(state: dict[str, Any]) -> set[str]:
    out = set()
    for name, cluster in state.get("clusters", {}).items():
        workers = cluster.get("workers", 2) if isinstance(cluster, dict) else 2
        out |= {f"{name}-control-plane"} | {f"{name}-worker{'' if i == 1 else i}" for i in range(1, workers + 1)}
    return out


def _descendants(root: int) -> list[int]:
    """PIDs below ``root`` (from /proc), so a simulated lost exec leaves no process of its own behind."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def run_script(state: dict[str, Any], args: list[str]) -> int:
    """``docker exec [-i] <container> sh -c SCRIPT`` on a node; the exit code of the exec."""
    container, command = args[0], args[1:]
    config = state.get("nodes", {}).get(container)
    if config is None and container in _cluster_nodes(state):
        config = {"iptables": "nf_tables", "monitor": True}
    if config is None:
        sys.stderr.write(f"Error response from daemon: No such container: {container}\n")
        return 1
    if command[:2] != ["sh", "-c"] or len(command) < 3:
        sys.stderr.write(f"stand-in kind node: only `sh -c SCRIPT` is answered, not {command!r}\n")
        return 126
    statedir = Path(os.environ.get("NETISO_STANDIN_STATE", tempfile.gettempdir())).parent
    tools = Path(tempfile.mkdtemp(prefix=f"node-{container}-", dir=statedir))
    (tools / "python3").symlink_to(sys.executable)
    for name in ("iptables", *(("xtables-monitor",) if config.get("monitor", True) else ())):
        (tools / name).symlink_to(os.path.realpath(__file__))
    env = {**os.environ, "PATH": f"{tools}:/usr/bin:/bin", "NETISO_NODE": container,
           "NETISO_NODE_IPTABLES": config.get("iptables", "nf_tables"), "NETISO_NODE_TRACE": config.get("trace", ""),
           "NETISO_NODE_RULES": str(statedir / f"node-{container}-raw.json")}
    if not fails("exec-dies"):
        return subprocess.run(["sh", "-c", command[2]], env=env, check=False).returncode
    proc = subprocess.Popen(["sh", "-c", command[2]], env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        if line.startswith("netiso-trace: ready"):
            for pid in [proc.pid, *_descendants(proc.pid)]:  # `timeout` runs in a process group of its own
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            break
    proc.wait()
    return 137


def _rules(path: Path) -> list[str]:
    return json.loads(path.read_text()) if path.exists() else []


def iptables(argv: list[str]) -> int:
    node = os.environ["NETISO_NODE"]
    log = os.environ.get("NETISO_STANDIN_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"tool": f"iptables@{node}", "argv": argv}) + "\n")
    if argv == ["-V"]:
        print(f"iptables {VERSION} ({os.environ['NETISO_NODE_IPTABLES']})")
        return 0
    words = list(argv)
    while words and words[0] in ("-w", "-t"):  # -w [seconds], -t raw
        takes_value = words[0] == "-t" or (len(words) > 1 and words[1].isdigit())
        words = words[2:] if takes_value else words[1:]
    path = Path(os.environ["NETISO_NODE_RULES"])
    rules = _rules(path)
    if words[:1] == ["-I"]:
        spec = " ".join([words[1], *words[3:]] if len(words) > 2 and words[2].isdigit() else words[1:])
        rules.insert(0, spec)
    elif words[:1] == ["-D"]:
        spec = " ".join(words[1:])
        if spec not in rules:
            sys.stderr.write("iptables: Bad rule (does a matching rule exist in that chain?).\n")
            return 1
        rules.remove(spec)
    else:
        sys.stderr.write(f"stand-in iptables: unsupported {argv!r}\n")
        return 2
    path.write_text(json.dumps(rules))
    return 0


def xtables_monitor(argv: list[str]) -> int:
    if argv != ["--trace"]:
        sys.stderr.write(f"stand-in xtables-monitor: only --trace, not {argv!r}\n")
        return 2
    sample = os.environ.get("NETISO_NODE_TRACE")
    if sample:
        for line in Path(sample).read_text().splitlines():
            print(line, flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    time.sleep(60)  # the real monitor runs until it is ended; this one also ends by itself
    return 0


if __name__ == "__main__":
    called = os.path.basename(sys.argv[0])
    if called == "iptables":
        sys.exit(iptables(sys.argv[1:]))
    if called == "xtables-monitor":
        sys.exit(xtables_monitor(sys.argv[1:]))
    sys.exit(f"stand-in kind node: called as {called!r}")
