"""How the kube backend probes a flow on a cluster: one ``sh`` script per batch, and its parsing.

Why a shell script: on a cluster a flow is probed *from its source* — a workload pod, a
hostNetwork pod on a node, or an external client host — and the only ways in are the exec
API (``sh -c SCRIPT`` in the source's container) or a user-given command prefix for a client
host (``docker exec -i c1``, ``ssh bob@host``; see ``probe_running.py``). Like the upstream
netpol e2e (test/e2e/network/netpol/probe.go, kubemanager.go in kubernetes/kubernetes) probes
are batched per source: ONE exec per batch, firing the batch's probes concurrently as
background jobs (at most :data:`MAX_CONCURRENT` at once), with the tools the agnhost image
ships (test/images/agnhost/Dockerfile: alpine 3.21 + ``curl``, ``netcat-openbsd``, ``bash``;
``sh`` is busybox ash). The script is plain POSIX ``sh`` and is tested under dash and busybox.

What each probe does (servers are ``agnhost netexec``, test/images/agnhost/netexec/netexec.go):

* **TCP**: one ``curl`` with several URLs on one command line — ``/clientip``, ``/hostname``
  and, for ingress flows, ``/header?key=X-Forwarded-For`` — so curl reuses its keep-alive
  connection and identity and source come from ONE connection (kube-proxy may pick another
  endpoint for another connection). ``-w`` records per URL the HTTP status,
  ``num_connects``, the exit code and the local port; a second connection (``num_connects``
  > 0 on a later URL) is reported in ``detail`` as "identity from another connection". Behind
  an ingress nginx may spread the requests of one keep-alive client connection over several
  backends (it opens its own upstream connections): the answering pod and the source it saw
  may then belong to different upstream requests; that is inherent and documented, not an error.
  ``-v`` is on because curl >= 7.88 reports every connect failure as "Couldn't connect to
  server"; only the verbose line ``connect to X port P failed: Connection refused`` keeps the
  reason. ``-q`` (no ``~/.curlrc``) and ``--noproxy '*'`` keep a client host's own
  configuration out of the probe.
* **UDP**: ``netcat-openbsd`` ``nc -u -n -w T -W 3`` sends ``clientip``, ``echo |`` and
  ``hostname`` as three datagrams from one socket (same 5-tuple, so the same conntrack DNAT and
  the same endpoint); netexec answers each without a newline, so the ``|`` echoed in between
  separates the two answers. ``-W 3`` ends nc after three answers.

Verdict mapping (netiso's lab convention, ``netiso/probe/classify.py``, restated here because
the backends layer sits below the probe layer): curl exit 0 + HTTP 2xx -> ``allowed``; exit 7
with a refusal reason (Connection refused, No route to host, Network/Host is unreachable) ->
``refused``; exit 28 (timeout) -> ``dropped``; exit 56 "Connection reset by peer" ->
``refused`` (ECONNRESET is a refusal in the lab too); HTTP 502/503 -> ``refused``, 504 ->
``dropped`` (an ingress reports its upstream's fate); anything else -> ``error`` with detail.
UDP: an answer -> ``allowed``; none -> ``dropped`` if nc waited its whole idle timeout,
``refused`` if it ended well before: netcat-openbsd 1.219 prints nothing for an ICMP port
unreachable and exits 0 or 1 (measured here), so the elapsed time (``/proc/uptime``,
centiseconds) is the only witness. Measured: an ICMP error ends nc at its next send (~0.2 s),
silence costs ``-w`` + ~0.2 s; the split is halfway. Without ``/proc/uptime`` the script falls
back to ``date +%s`` (whole seconds), which keeps the two apart only for ``-w`` >= 2.

Time bounds: curl's ``-m`` applies per URL, so a TCP probe whose first answer came and whose
later URL hangs can take up to (URLs x timeout); ``--fail-early`` stops at the first failed
transfer. A UDP probe takes at most ceil(timeout) + ~0.6 s. A batch of N probes runs in
ceil(N / MAX_CONCURRENT) groups, each as long as its slowest probe.

Size: the script is passed as one argv element (exec API query string or a client command
line): ~1.8 kB of preamble + ~330 bytes per TCP probe (12 kB for 32 ingress probes).

Where it knowingly differs from the netpol e2e: that suite decides TCP with ``agnhost
connect`` and UDP with ``nc -z``, which only say connected/not; netiso needs what the server
saw (source address, answering pod), so it asks netexec itself.

Output: one line per probe, ``NETISO1 <index> id=… k=tcp|udp rc=… t0=… t1=… w=… o1=… o2=…
o3=… e=…``; every free-form field is base64 (``b…``) or, without ``base64``, hex (``h…``) so
arbitrary bytes never break a line. Lines are printed by the main shell after each group's
``wait`` (never by concurrent jobs), and ``NETISO-END`` closes a completed run.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import math
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, cast

from netiso.model.verdicts import health_check_verdict, verdict_for_status

Verdict = Literal["allowed", "dropped", "refused", "error"]
MAX_CONCURRENT = 32
LINE_TAG = "NETISO1"
END_TAG = "NETISO-END"
_W_FORMAT = r"W %{http_code} %{num_connects} %{exitcode} %{local_port} %{time_total}\n"
_REFUSAL_REASONS = ("Connection refused", "No route to host", "Network is unreachable", "Host is unreachable")
_UDP_SEPARATOR = "|"


@dataclass(frozen=True)
class ClusterProbe:
    """One flow to probe from a source on a cluster (or an external client host)."""

    id: str
    dst_ip: str
    dst_port: int
    protocol: Literal["TCP", "UDP"] = "TCP"
    host: str | None = None
    timeout: float = 2.0
    connect_timeout: float = 1.0
    want_forwarded_for: bool = False


@dataclass(frozen=True)
class ClusterProbeResult:
    """What one probe saw. ``inconsistent`` + ``distribution``: see ``retry_until_consistent``."""

    id: str
    verdict: Verdict
    client_ip: str | None = None
    hostname: str | None = None
    forwarded_for: str | None = None
    ms: float | None = None
    detail: str = ""
    client_port: int | None = None
    inconsistent: bool = False
    distribution: dict[str, int] | None = field(default=None, compare=False)
    status: int | None = None  # kube-proxy's health answer: its HTTP status ...
    local_endpoints: int | None = None  # ... and localEndpoints


# ----------------------------------------------------------------------------- the script

_PREAMBLE = r"""# netiso probe batch: {count} probe(s), at most {cap} at once
export LC_ALL=C
D=$(mktemp -d 2>/dev/null) || {{ D=/tmp/netiso-probe.$$; mkdir -p "$D"; }} || {{ echo "NETISO-FATAL no temp dir"; exit 0; }}
trap 'rm -rf "$D"' EXIT
trap 'exit 130' INT TERM
W='{w_format}'
NOISE='^[<>{{}}] |^\* (Host|Found|Can not|Connection #|Closing|Mark|Added|Trying|Hostname|Using|Expire|Ignoring|Server|Request)'
now() {{ if [ -r /proc/uptime ]; then read -r u _ </proc/uptime; echo "$u"; else date +%s; fi; }}
enc() {{
  if command -v base64 >/dev/null 2>&1; then printf b; base64 | tr -d '\r\n'; else printf h; od -An -v -tx1 | tr -d ' \n'; fi
}}
encf() {{ if [ -f "$1" ]; then enc <"$1"; fi; }}
P() {{ mkdir -p "$D/$1"; : >"$D/$1/w"; : >"$D/$1/e"; now >"$D/$1/t0"; }}
F() {{ echo "$2" >"$D/$1/rc"; now >"$D/$1/t1"; }}
Z() {{ sleep 0.2 2>/dev/null || sleep 1; }}
NC=0; nc -h 2>&1 | grep -qiE 'openbsd|recvlimit' && NC=1
U() {{
  P "$1"
  if [ "$NC" != 1 ]; then
    echo "nc is not netcat-openbsd: $(nc -h 2>&1 | head -n 1)" >"$D/$1/e"; F "$1" 126; return
  fi
  {{ printf clientip; Z; printf 'echo {sep}'; Z; printf hostname; }} | nc -u -n -w "$2" -W 3 "$3" "$4" >"$D/$1/o1" 2>"$D/$1/e"
  F "$1" $?
}}
E() {{
  d="$D/$1"
  printf '{tag} %s id=%s k=%s rc=%s t0=%s t1=%s w=%s o1=%s o2=%s o3=%s e=%s\n' "$1" "$2" "$3" \
    "$(cat "$d/rc" 2>/dev/null)" "$(cat "$d/t0" 2>/dev/null)" "$(cat "$d/t1" 2>/dev/null)" \
    "$(encf "$d/w")" "$(encf "$d/o1")" "$(encf "$d/o2")" "$(encf "$d/o3")" \
    "$(if [ -f "$d/e" ]; then grep -v -E "$NOISE" "$d/e" | tail -n 20 | enc; fi)"
}}
"""


def _url_host(ip: str) -> str:
    return f"[{ip}]" if ":" in ip else ip


def _seconds(value: float) -> str:
    """A positive seconds value for curl (decimal) — never scientific notation."""
    return f"{max(value, 0.001):.3f}"


def _tcp_line(index: int, probe: ClusterProbe) -> str:
    base = f"http://{_url_host(probe.dst_ip)}:{probe.dst_port}"
    paths = ["/clientip", "/hostname"] + (["/header?key=X-Forwarded-For"] if probe.want_forwarded_for else [])
    args = ["curl", "-q", "-sS", "-v", "-g", "--noproxy", "*", "--fail-early"]
    args += ["--connect-timeout", _seconds(probe.connect_timeout), "-m", _seconds(probe.timeout)]
    if probe.host:
        args += ["-H", f"Host: {probe.host}"]
    quoted = " ".join(shlex.quote(a) for a in args)
    outputs = " ".join(f'-o "$D/{index}/o{n}"' for n in range(1, len(paths) + 1))
    urls = " ".join(shlex.quote(base + p) for p in paths)
    return f'( P {index}; {quoted} -w "$W" {outputs} {urls} >"$D/{index}/w" 2>"$D/{index}/e"; F {index} $? ) &'


def _udp_line(index: int, probe: ClusterProbe) -> str:
    wait_s = max(1, math.ceil(probe.timeout))  # netcat-openbsd takes whole seconds
    return f"U {index} {wait_s} {shlex.quote(probe.dst_ip)} {int(probe.dst_port)} &"


def _check(probe: ClusterProbe) -> None:
    ipaddress.ip_address(probe.dst_ip)  # ValueError: never let a free-form string into the script
    if not 0 < int(probe.dst_port) < 65536:
        raise ValueError(f"probe {probe.id}: port {probe.dst_port} out of range")
    if probe.protocol not in ("TCP", "UDP"):
        raise ValueError(f"probe {probe.id}: protocol {probe.protocol!r} is not TCP or UDP")
    if probe.host is not None and any(c in probe.host for c in "\r\n"):
        raise ValueError(f"probe {probe.id}: host header contains a line break")


def _encode_id(probe_id: str) -> str:
    return "b" + base64.b64encode(probe_id.encode()).decode()


def batch_script(probes: Sequence[ClusterProbe], *, max_concurrent: int = MAX_CONCURRENT) -> str:
    """One POSIX ``sh`` script firing every probe of a batch; see the module docstring.

    >>> s = batch_script([ClusterProbe("a", "198.18.0.2", 80)])
    >>> "curl -q -sS -v -g" in s and s.rstrip().endswith("echo NETISO-END 1")
    True
    """
    for probe in probes:
        _check(probe)
    cap = max(1, max_concurrent)
    lines = [_PREAMBLE.format(count=len(probes), cap=cap, w_format=_W_FORMAT, sep=_UDP_SEPARATOR, tag=LINE_TAG)]
    for start in range(0, len(probes), cap):
        group = list(enumerate(probes))[start : start + cap]
        for index, probe in group:
            lines.append(_tcp_line(index, probe) if probe.protocol == "TCP" else _udp_line(index, probe))
        lines.append("wait")
        for index, probe in group:
            lines.append(f"E {index} {_encode_id(probe.id)} {probe.protocol.lower()}")
    lines.append(f"echo {END_TAG} {len(probes)}")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- parsing

_LINE = re.compile(LINE_TAG + r" (\d+) ((?:[a-z0-9]+=\S* ?)+)")


def decode_field(value: str) -> bytes:
    """``b<base64>`` or ``h<hex>`` (the script's ``enc``) -> bytes; ``""`` -> ``b""``.

    >>> decode_field("bcG9kLWE="), decode_field("h706f64"), decode_field("")
    (b'pod-a', b'pod', b'')
    """
    if not value:
        return b""
    kind, body = value[0], value[1:]
    if kind == "b":
        return base64.b64decode(body, validate=True)
    if kind == "h":
        return binascii.unhexlify(body)
    raise ValueError(f"unknown encoding {kind!r}")


def _fields(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in text.split():
        key, sep, value = part.partition("=")
        if sep and key not in out:
            out[key] = value
    return out


def _split_peer(text: str) -> tuple[str | None, int | None]:
    host, sep, port = text.strip().rpartition(":")
    if not sep or not port.isdigit() or not host:
        return None, None
    host = host.strip("[]")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None, None
    return host, int(port)


def _elapsed_ms(fields: dict[str, str]) -> float | None:
    try:
        return round((float(fields["t1"]) - float(fields["t0"])) * 1000.0, 1)
    except (KeyError, ValueError):
        return None


@dataclass(frozen=True)
class _Transfer:
    status: int
    connects: int
    exitcode: int | None
    local_port: str


def _transfers(w: str) -> list[_Transfer]:
    out = []
    for line in w.splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[0] == "W" and parts[1].isdigit() and parts[2].isdigit():
            exitcode = int(parts[3]) if parts[3].isdigit() else None
            out.append(_Transfer(int(parts[1]), int(parts[2]), exitcode, parts[4]))
    return out


def _status_verdict(status: int) -> Verdict:
    return cast(Verdict, verdict_for_status(status))  # the lab's convention, shared (netiso.model.verdicts)


def _reason(stderr: str) -> str:
    for reason in (*_REFUSAL_REASONS, "Connection reset by peer", "timed out", "Timeout was reached"):
        if reason.lower() in stderr.lower():
            return reason
    return ""


def _curl_failure(rc: int, stderr: str) -> tuple[Verdict, str]:
    last = next((ln for ln in reversed(stderr.splitlines()) if ln.startswith("curl:")), "").strip()
    last = re.sub(r"^curl: \(\d+\) ", "", last)
    reason = _reason(stderr)
    if rc == 7 and reason in _REFUSAL_REASONS:
        return "refused", f"curl exit 7: {reason}"
    if rc == 7 and reason == "timed out":
        return "dropped", "curl exit 7: connect timed out (kernel)"
    if rc == 28:
        return "dropped", f"curl exit 28: {last or 'timeout'}"
    if rc == 56 and reason == "Connection reset by peer":
        return "refused", "curl exit 56: Connection reset by peer"
    if rc == 127:
        return "error", "curl not found in the probe source (needs curl)"
    return "error", f"curl exit {rc}: {last or stderr.strip()[-200:] or 'no message'}"


def _health_answer(body: str) -> int | None:
    """``localEndpoints`` of kube-proxy's health answer (pkg/proxy/healthcheck/service_health.go), None otherwise.

    >>> _health_answer('{"service":{"namespace":"a","name":"b"},"localEndpoints":0,"serviceProxyHealthy":true}')
    0
    """
    if '"localEndpoints"' not in body:
        return None
    try:
        value = json.loads(body).get("localEndpoints")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _tcp_result(probe: ClusterProbe, f: dict[str, str], rc: int, stderr: str, ms: float | None) -> ClusterProbeResult:
    bodies = [decode_field(f.get(k, "")).decode("utf-8", "replace") for k in ("o1", "o2", "o3")]
    transfers = _transfers(decode_field(f.get("w", "")).decode("utf-8", "replace"))
    if rc != 0 and (not transfers or transfers[0].status == 0):
        verdict, detail = _curl_failure(rc, stderr)
        return ClusterProbeResult(probe.id, verdict, ms=ms, detail=detail)
    if not transfers:
        return ClusterProbeResult(probe.id, "error", ms=ms, detail=f"curl exit {rc} but no -w line")
    verdicts = [_status_verdict(t.status) for t in transfers]
    notes: list[str] = []
    if rc != 0:
        failure, why = _curl_failure(rc, stderr)
        verdicts.append(failure)
        notes.append(f"a later request failed ({why})")
    if any(t.connects > 0 for t in transfers[1:]) or len({t.local_port for t in transfers}) > 1:
        notes.append("identity from another connection (curl opened a new connection for a later URL)")
    statuses = ",".join(str(t.status) for t in transfers)
    health = _health_answer(bodies[0])
    if health is not None and len({t.status for t in transfers}) == 1:  # kube-proxy's health server (any path)
        return ClusterProbeResult(probe.id, cast(Verdict, health_check_verdict(verdicts[0], transfers[0].status)),
                                  ms=ms, detail="; ".join(notes), status=transfers[0].status, local_endpoints=health)
    if len(set(verdicts)) > 1:
        detail = "; ".join([f"mixed answers on one probe: HTTP {statuses}", *notes])
        return ClusterProbeResult(probe.id, "error", ms=ms, detail=detail)
    verdict = verdicts[0]
    if verdict != "allowed":
        detail = f"HTTP {statuses}" + (f" ({bodies[0].strip()[:120]})" if verdict == "error" else "")
        return ClusterProbeResult(probe.id, verdict, ms=ms, detail="; ".join([detail, *notes]))
    ip, port = _split_peer(bodies[0])
    hostname = bodies[1].strip() or None if len(transfers) > 1 else None
    forwarded = bodies[2].strip() if probe.want_forwarded_for and len(transfers) > 2 else None
    if ip is None:
        notes.append(f"/clientip answered {bodies[0][:60]!r}, not ip:port")
    return ClusterProbeResult(
        probe.id, "allowed", client_ip=ip, client_port=port, hostname=hostname,
        forwarded_for=forwarded or None, ms=ms, detail="; ".join(notes),
    )


def _udp_result(probe: ClusterProbe, f: dict[str, str], rc: int, stderr: str, ms: float | None) -> ClusterProbeResult:
    out = decode_field(f.get("o1", "")).decode("utf-8", "replace")
    if rc == 126 or rc == 127:
        return ClusterProbeResult(probe.id, "error", ms=ms, detail=stderr.strip()[-200:] or "nc not found (needs netcat-openbsd)")
    if out:
        parts = out.split(_UDP_SEPARATOR)
        ip, port = _split_peer(parts[0])
        hostname = parts[1].strip() if len(parts) > 1 and parts[1].strip() else None
        detail = "" if ip else f"unexpected UDP answer {out[:80]!r}"
        return ClusterProbeResult(probe.id, "allowed", client_ip=ip, client_port=port, hostname=hostname, ms=ms, detail=detail)
    if "usage" in stderr.lower() or "invalid option" in stderr.lower():
        return ClusterProbeResult(probe.id, "error", ms=ms, detail=f"nc rejected its options: {stderr.strip()[-200:]}")
    wait_s = max(1, math.ceil(probe.timeout))
    # Silence costs nc its idle timeout (measured: >= ~1.2 s for -w 1); an ICMP error ends it
    # at the next send (~0.2 s, the first pause). Split halfway, which also keeps the seconds
    # granularity of the ``date +%s`` fallback apart for -w >= 2.
    threshold_ms = 200.0 + wait_s * 500.0
    if ms is None:
        detail = f"no UDP answer (nc exit {rc}) and no timing to tell ICMP from silence"
        return ClusterProbeResult(probe.id, "error", detail=detail)
    if ms < threshold_ms:
        detail = f"no UDP answer; nc ended after {ms:.0f} ms, well before its {wait_s} s idle timeout (ICMP unreachable)"
        return ClusterProbeResult(probe.id, "refused", ms=ms, detail=detail)
    return ClusterProbeResult(probe.id, "dropped", ms=ms, detail=f"no UDP answer within {wait_s} s")


def has_result_line(stdout: str) -> bool:
    """Whether a batch's output holds at least one result line (of any probe).

    >>> has_result_line("NETISO1 0 id=cA== rc=0\\n"), has_result_line("NETISO-END 1\\n")
    (True, False)
    """
    return _LINE.search(stdout) is not None


def parse_batch_output(stdout: str, stderr: str, probes: Sequence[ClusterProbe]) -> list[ClusterProbeResult]:
    """One result per probe, in order, from a batch script's output; never ``allowed`` by default.

    Tolerates garbage, interleaved and duplicated lines (the first well-formed line whose ``id``
    matches wins); a probe without a line is an ``error`` ("no result line").
    """
    found: dict[int, dict[str, str]] = {}
    for match in _LINE.finditer(stdout):
        index = int(match.group(1))
        fields = _fields(match.group(2))
        if index >= len(probes) or index in found:
            continue
        try:
            if decode_field(fields.get("id", "")).decode() != probes[index].id:
                continue
        except (ValueError, UnicodeDecodeError):
            continue
        found[index] = fields
    finished = re.search(rf"^{END_TAG} (\d+)\s*$", stdout, re.MULTILINE) is not None
    fatal = re.search(r"^NETISO-FATAL (.*)$", stdout, re.MULTILINE)
    tail = stderr.strip().splitlines()[-1][:200] if stderr.strip() else ""
    if fatal:
        tail = fatal.group(1).strip()
    results = []
    for index, probe in enumerate(probes):
        fields = found.get(index)
        if fields is None:
            why = "no result line" + ("" if finished else " (the batch script did not finish)")
            results.append(ClusterProbeResult(probe.id, "error", detail=f"{why}{': ' + tail if tail else ''}"))
            continue
        try:
            results.append(_result_from_fields(probe, fields))
        except (ValueError, UnicodeDecodeError) as exc:
            results.append(ClusterProbeResult(probe.id, "error", detail=f"unreadable result line: {exc}"))
    return results


def _result_from_fields(probe: ClusterProbe, fields: dict[str, str]) -> ClusterProbeResult:
    rc_text = fields.get("rc", "")
    if not rc_text.lstrip("-").isdigit():
        return ClusterProbeResult(probe.id, "error", detail="result line without an exit status (job killed?)")
    rc = int(rc_text)
    stderr = decode_field(fields.get("e", "")).decode("utf-8", "replace")
    ms = _elapsed_ms(fields)
    if probe.protocol == "UDP":
        return _udp_result(probe, fields, rc, stderr, ms)
    return _tcp_result(probe, fields, rc, stderr, ms)


def failed_batch(probes: Sequence[ClusterProbe], reason: str) -> list[ClusterProbeResult]:
    """Every probe of a batch that could not run at all (exec refused, client timed out)."""
    return [ClusterProbeResult(p.id, "error", detail=reason) for p in probes]
