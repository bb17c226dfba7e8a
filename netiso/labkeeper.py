"""``netiso lab up|down|status``: keep one lab running for manual inspection.

``lab up`` starts a detached keeper process (``python -m netiso.labkeeper FILE``) that owns the
lab run, serves the echo endpoints in every pod and client, prints one JSON line when ready and
then waits for SIGTERM. Because the keeper owns the run, the janitor of a later run leaves the
lab alone while the keeper lives and removes it if the keeper was killed. ``lab down`` signals
the keeper by PID (checked against its start time) and waits for the teardown.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from netiso.backends.processes import proc_start_time
from netiso.model.errors import InputError

KEPT = Path("/run/netiso/kept-lab.json")
KEPT_LOG = Path("/run/netiso/kept-lab.log")


def keeper_main(argv: list[str]) -> int:
    """The keeper process: build, serve, report ready, wait for SIGTERM, tear down."""
    from netiso.backends import BackendOptions, open_backend
    from netiso.model.addressing import load_topologies
    from netiso.probe.prober import start_agent_prober

    path, name = argv[0], (argv[1] if len(argv) > 1 and argv[1] else None)
    topos = load_topologies([path])
    topo = next((t for t in topos if name in (None, t.name)), None)
    if topo is None:
        print(json.dumps({"error": f"{path}: no scenario named {name!r}"}), flush=True)
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    backend = open_backend("lab", BackendOptions(), probers=start_agent_prober)
    try:
        try:
            realization = backend.realize(topo)
        except Exception as exc:  # BackendUnavailable or anything else: the caller gets the reason
            print(json.dumps({"error": str(exc)}), flush=True)
            return 2
        try:
            server = getattr(realization, "server", None)
            if server is not None and getattr(server, "pid", None):
                realization.adopt(server.pid, "probe agent (echo servers)")  # type: ignore[attr-defined]
            realization.serve_pods()  # type: ignore[attr-defined]
            realization.serve_clients({c: {(8080, "TCP")} for c in topo.clients})  # type: ignore[attr-defined]
            info = realization.describe()
            info["keeper"] = os.getpid()
            print(json.dumps(info), flush=True)
            while not stop.wait(0.5):
                pass
        finally:
            realization.down()
    finally:
        backend.close()
    return 0


def lab_command(args: argparse.Namespace) -> int:
    if args.lab_command == "up":
        return _up(args)
    if args.lab_command == "down":
        return _down()
    return _status()


def _read_kept() -> dict[str, Any] | None:
    try:
        return json.loads(KEPT.read_text())
    except (OSError, ValueError):
        return None


def _keeper_alive(kept: dict[str, Any]) -> bool:
    return proc_start_time(int(kept.get("keeper", 0))) == kept.get("keeper_start")


def _up(args: argparse.Namespace) -> int:
    from netiso.backends import BackendOptions, BackendUnavailable, open_backend
    from netiso.model.addressing import load_topologies
    from netiso.probe.prober import start_agent_prober

    kept = _read_kept()
    if kept and _keeper_alive(kept):
        raise InputError(f"a lab is already up ({kept['scenario']}, prefix {kept['prefix']}): run `netiso lab down` first")
    topos = load_topologies([args.path])
    if args.scenario and not any(t.name == args.scenario for t in topos):
        raise InputError(f"no scenario named '{args.scenario}' (scenarios: {', '.join(t.name for t in topos)})",
                         file=args.path)
    backend = open_backend("lab", BackendOptions(), probers=start_agent_prober)
    try:
        backend.preflight([t for t in topos if args.scenario in (None, t.name)][:1])
    except BackendUnavailable as exc:
        raise InputError(str(exc)) from None
    finally:
        backend.close()
    KEPT.parent.mkdir(parents=True, exist_ok=True)
    # the keeper outlives this command: it must not hold the caller's stderr (a pipe would never close)
    with open(KEPT_LOG, "w") as log_file:
        proc = subprocess.Popen([sys.executable, "-m", "netiso.labkeeper", args.path, args.scenario or ""],
                                stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, stderr=log_file,
                                start_new_session=True, text=True)
    line = proc.stdout.readline() if proc.stdout else ""
    try:
        info = json.loads(line)
    except ValueError:
        proc.kill()
        raise InputError(f"the lab keeper failed to start: {line.strip() or 'no output'} (log: {KEPT_LOG})") from None
    if "error" in info:
        raise InputError(f"lab up failed: {info['error']}")
    info["keeper_start"] = proc_start_time(proc.pid)
    if proc.stdout is not None:
        proc.stdout.close()
    KEPT.write_text(json.dumps(info, indent=1))
    _print_info(info)
    return 0


def _print_info(info: dict[str, Any]) -> None:
    print(f"lab {info['prefix']} is up: scenario {info['scenario']} ({info['encapsulation']}), "
          f"keeper pid {info['keeper']}")
    width = max(len(k) for k in info["namespaces"])
    for symbol, e in info["namespaces"].items():
        print(f"  {symbol.ljust(width)}  {e['ip']:<15}  ip netns exec {e['netns']} bash")
    for svc, v in info.get("vips", {}).items():
        print(f"  VIP {v['vip']} of {svc} announced by node:{v['announcedBy']}")
    print("Inspect e.g.: ip netns exec <ns> iptables-save | ip netns exec <ns> ip route")
    print("Tear down with: netiso lab down")


def _down() -> int:
    kept = _read_kept()
    if not kept:
        print("no kept lab")
        return 0
    if _keeper_alive(kept):
        os.kill(int(kept["keeper"]), signal.SIGTERM)
        deadline = time.monotonic() + 10
        while _keeper_alive(kept) and time.monotonic() < deadline:
            time.sleep(0.05)
    for path in (KEPT, KEPT_LOG):
        with contextlib.suppress(OSError):
            path.unlink()
    from netiso.backends import BackendOptions, open_backend

    backend = open_backend("lab", BackendOptions(), probers=lambda: None)  # type: ignore[arg-type,return-value]
    backend.clean()  # whatever a killed keeper left
    print(f"lab {kept['prefix']} is down")
    return 0


def _status() -> int:
    kept = _read_kept()
    if not kept or not _keeper_alive(kept):
        print("no kept lab")
        return 0
    _print_info(kept)
    return 0


if __name__ == "__main__":
    sys.exit(keeper_main(sys.argv[1:]))
