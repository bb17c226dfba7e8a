"""Re-capture the probe output samples in this folder (run as root: it needs a throwaway netns).

    .venv/bin/python tests/kube/samples/capture.py

Each ``<situation>.<shell>.json`` holds what one real batch script printed (stdout, stderr, exit
status) for one probe in a known situation, with the probe and the tool versions that produced
it; ``tests/kube/test_probing_samples.py`` parses them. The situation alone decides the expected
verdict (a closed port refuses, a DROP rule drops, a gateway's 504 is a drop...), which is why
the files hold no verdicts. Servers: ``tests/support/netexec_standin.py`` on 127.0.0.1.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import socket
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from netiso.backends.kube.probing import ClusterProbe, batch_script  # noqa: E402
from tests.support.netexec_standin import closed_port, running_standin  # noqa: E402
from tests.support.probe_shells import run_in_dropping_netns, run_script  # noqa: E402


def tool_versions() -> dict[str, str]:
    def first_line(argv: list[str]) -> str:
        if not shutil.which(argv[0]):
            return "absent"
        out = subprocess.run(argv, capture_output=True, text=True, check=False)
        return (out.stdout or out.stderr).strip().splitlines()[0]

    return {
        "curl": first_line(["curl", "--version"]),
        "nc": first_line(["sh", "-c", "nc -h 2>&1 | head -n 1"]),
        "busybox": first_line(["sh", "-c", "busybox 2>&1 | head -n 1"]),
        "dash": first_line(["sh", "-c", "dpkg-query -W -f '${Package} ${Version}' dash"]),
    }


def main() -> None:
    shells = [s for s in (("dash",), ("busybox", "sh")) if shutil.which(s[0])]
    tools = tool_versions()
    with ExitStack() as stack:
        ok = stack.enter_context(running_standin("pod-a", forwarded_for="203.0.113.7"))
        gw = {code: stack.enter_context(running_standin("gw", force_status=code)) for code in (502, 503, 504, 404)}
        closing = stack.enter_context(running_standin("pod-b", close_each=True))
        mixed = stack.enter_context(running_standin("pod-c", later_status=504))
        tcp_closed, udp_closed = closed_port(), closed_port(socket.SOCK_DGRAM)
        local = {
            "tcp-200": ClusterProbe("tcp-200", "127.0.0.1", ok.http_port, host="web.example", want_forwarded_for=True),
            "tcp-refused": ClusterProbe("tcp-refused", "127.0.0.1", tcp_closed),
            "tcp-second-connection": ClusterProbe("tcp-second-connection", "127.0.0.1", closing.http_port),
            "tcp-mixed-200-504": ClusterProbe("tcp-mixed-200-504", "127.0.0.1", mixed.http_port),
            "udp-answer": ClusterProbe("udp-answer", "127.0.0.1", ok.udp_port, "UDP", timeout=1),
            "udp-icmp-refused": ClusterProbe("udp-icmp-refused", "127.0.0.1", udp_closed, "UDP", timeout=1),
            **{f"http-{c}": ClusterProbe(f"http-{c}", "127.0.0.1", s.http_port, host="web.example") for c, s in gw.items()},
        }
        dropping = {
            "tcp-timeout": (ClusterProbe("tcp-timeout", "127.0.0.1", 9, timeout=2, connect_timeout=1), [9], []),
            "udp-timeout": (ClusterProbe("udp-timeout", "127.0.0.1", 9, "UDP", timeout=1), [], [9]),
        }
        for shell in shells:
            for name, probe in local.items():
                write(name, shell, probe, run_script(shell, batch_script([probe])), tools)
            for name, (probe, tcp, udp) in dropping.items():
                result = run_in_dropping_netns(shell, batch_script([probe]), tcp_drop=tcp, udp_drop=udp)
                write(name, shell, probe, result, tools)


def write(name: str, shell: tuple[str, ...], probe: ClusterProbe, result: tuple[str, str, int], tools: dict[str, str]) -> None:
    stdout, stderr, rc = result
    doc = {
        "situation": name,
        "shell": " ".join(shell),
        "tools": tools,
        "probes": [dataclasses.asdict(probe)],
        "stdout": stdout,
        "stderr": stderr,
        "rc": rc,
    }
    path = HERE / f"{name}.{shell[0]}.json"
    path.write_text(json.dumps(doc, indent=1) + "\n")
    print(path.name)


if __name__ == "__main__":
    main()
