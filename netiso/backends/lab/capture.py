"""A short packet capture of one flow, for evidence on a mismatch (scapy, in a lab namespace).

scapy reads interfaces and routes at import time, so it runs in its own process started inside
the namespace (``nsenter --net``) rather than after an in-process ``setns`` (scapy issue #3467):
``python -m netiso.backends.lab.capture IFACE BPF COUNT SECONDS`` prints ``ready`` once the
sniffer runs, then one JSON list of packet summaries when done. The capture is bounded in both
packets and time.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from netiso.backends.lab.netns import wrap_argv


def capture_during(netns: str, iface: str, bpf: str, action: Callable[[], Any], *, count: int = 40,
                   seconds: float = 3.0) -> list[str]:
    """Capture on ``iface`` in ``netns`` while ``action()`` runs; returns packet summaries."""
    argv = wrap_argv([sys.executable, "-m", "netiso.backends.lab.capture", iface, bpf, str(count), str(seconds)], netns)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        ready = proc.stdout.readline() if proc.stdout else ""
        if ready.strip() != "ready":
            proc.kill()
            err = proc.stderr.read() if proc.stderr else ""
            return [f"capture failed to start: {ready.strip() or err.strip()[-300:]}"]
        action()
        out, err = proc.communicate(timeout=seconds + 10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return ["capture did not finish in time"]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    try:
        return list(json.loads(out.strip().splitlines()[-1]))
    except (ValueError, IndexError):
        return [f"capture produced no summary: {err.strip()[-300:]}"]


def _summary(pkt: Any) -> str:
    from scapy.layers.inet import IP, UDP
    from scapy.layers.vxlan import VXLAN

    text = pkt.summary()
    if IP in pkt and pkt[IP].proto == 4:
        inner = IP(bytes(pkt[IP].payload))
        text = f"IPIP {pkt[IP].src} > {pkt[IP].dst} | {inner.summary()}"
    elif VXLAN in pkt and UDP in pkt:
        text = f"VXLAN vni {pkt[VXLAN].vni} {pkt[IP].src} > {pkt[IP].dst} | {pkt[VXLAN].payload.summary()}"
    return text


def main(argv: list[str]) -> int:
    iface, bpf, count, seconds = argv[0], argv[1], int(argv[2]), float(argv[3])
    import logging

    logging.getLogger("scapy").setLevel(logging.ERROR)
    from scapy.all import AsyncSniffer, conf

    conf.verb = 0
    started = []
    sniffer = AsyncSniffer(iface=iface, filter=bpf or None, count=count, store=True,
                           started_callback=lambda: started.append(True))
    sniffer.start()
    import time

    deadline = time.monotonic() + 2.0
    while not started and time.monotonic() < deadline:
        time.sleep(0.01)
    print("ready", flush=True)
    sniffer.join(timeout=seconds)
    if sniffer.running:
        sniffer.stop()
    packets = sniffer.results or []
    print(json.dumps([_summary(p) for p in packets]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
