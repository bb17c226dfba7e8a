"""The lab's ingress controllers: real nginx in each controller pod's network namespace.

ingress-nginx is nginx plus a generated configuration, so the lab runs the Debian nginx with a
configuration that mirrors what the controller renders for a plain HTTP Ingress (template
``rootfs/etc/nginx/template/nginx.tmpl``; reference-facts.md section E):

* one ``server`` per host, routing to an upstream of the backend Service's **endpoint pod IPs**
  on the target port (the Lua balancer of ingress-nginx never goes through the ClusterIP), so
  the backend sees the controller pod IP as TCP source and policy must admit its namespace;
* ``use-forwarded-headers: false``: no realip module, ``X-Real-IP`` and ``X-Forwarded-For`` are
  ``$remote_addr`` (an incoming X-Forwarded-For is *replaced*, never appended) and the incoming
  value travels in ``X-Original-Forwarded-For``; ``Host`` is ``$best_http_host`` (the Host
  header as sent, port included) like the template, plus X-Forwarded-Host/-Port/-Proto/-Scheme,
  X-Scheme and ``X-Request-ID`` (incoming one or ``$request_id``: generate-request-id true);
* ``proxy_next_upstream error timeout; proxy_next_upstream_tries 3`` (ingress-nginx defaults);
* an unknown host gets 404 from the default server (ingress-nginx's default backend answers
  404); an Ingress whose Service has no endpoints gets 503 (the balancer has no peer).

Lab-only choices, each a deliberate departure:

* ``proxy_connect_timeout`` defaults to **1 s** (ingress-nginx: 5 s) so a backend whose policy
  DROPs the controller yields a 504 quickly; read/send timeouts are 3 s (ingress-nginx: 60 s).
* No upstream keepalive (ingress-nginx keeps 320 idle connections per worker): every request
  opens a new connection, so a policy change applies to the very next request instead of being
  bypassed by a conntrack-established idle connection. The ``Connection`` header is therefore
  ``close`` when the client does not upgrade (what the template renders with
  ``upstream-keepalive-connections: 0``).
* Retries: the Lua balancer calls ``set_more_tries(1)`` and re-picks round-robin on every
  attempt, so a *single* dropped endpoint is tried 3 times (15 s by default before the 504,
  ingress-nginx#4944). Plain nginx never retries a peer it already tried. The default here is
  plain nginx (one attempt per endpoint); ``retry_same_endpoint=True`` repeats the endpoint list
  until the upstream holds ``tries`` peers, reproducing ingress-nginx's attempt count.

Every file (configuration, pid, temp dirs, logs) lives in the controller's work directory; the
master runs in the foreground under ``nsenter --net`` (which execs in place), so the pid we hold
is nginx's master pid from the first instant and can be registered before anything can leak.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netiso.backends.lab.netns import NETNS_DIR, call_in, proc_start_time, process_alive
from netiso.model.types import ControllerInfo, IngressInfo, PodInfo, Topology

NGINX_CANDIDATES = ("/usr/sbin/nginx",)
INSTALL_HINT = "nginx not found: run `apt-get install -y nginx-light`"
DEFAULT_PORT = 80
WORKER_PROCESSES = 1  # one worker serves thousands of requests/s; the lab has 2 cores to share
TEMP_DIRS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
# Host names and upstream names are pasted into the configuration: allow only what DNS allows.
HOST_RE = re.compile(r"^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$")
UNSAFE_PATH = re.compile(r"[\s;{}\"'\\$#]")


class ControllerStartError(RuntimeError):
    """nginx did not come up; the message carries nginx's own error log."""


@dataclass
class ControllerProcess:
    """A running nginx master: what the lab registers, stops and reads evidence from."""

    pod: PodInfo
    pid: int
    workdir: Path
    conf_path: Path
    netns: str = ""
    start_time: int = 0  # /proc start time of the master: guards every signal against pid reuse
    ready_s: float = 0.0  # spawn -> port accepts connections
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)

    @property
    def error_log(self) -> Path:
        return self.workdir / "error.log"

    @property
    def access_log(self) -> Path:
        return self.workdir / "access.log"


# --------------------------------------------------------------------------- availability


def nginx_binary() -> str | None:
    """Path of the nginx binary (PATH first, then /usr/sbin, which a venv PATH may lack)."""
    found = shutil.which("nginx")
    if found:
        return found
    return next((c for c in NGINX_CANDIDATES if os.access(c, os.X_OK)), None)


def check_nginx_available() -> str | None:
    """None when nginx can be used, else the message that says how to fix it."""
    return None if nginx_binary() else INSTALL_HINT


# --------------------------------------------------------------------------- rendering


def controllers_of(topology: Topology) -> list[ControllerInfo]:
    """The distinct ingress controllers of ``topology``, keyed by controller pod.

    Keyed by the pod's symbol because PodInfo (a dict of labels inside) is not hashable.
    """
    out: dict[str, ControllerInfo] = {}
    for key in sorted(topology.ingresses):
        ctl = topology.ingresses[key].controller
        out.setdefault(ctl.pod.symbol, ctl)
    return list(out.values())


def controller_port(controller: ControllerInfo) -> int:
    """The port nginx listens on: the controller pod's first TCP port (80 in the address plan)."""
    return next((p.port for p in controller.pod.ports if p.protocol == "TCP"), DEFAULT_PORT)


def upstream_name(ing: IngressInfo) -> str:
    """``<namespace>-<service>-<port>``, ingress-nginx's upstream naming (the Ingress backend's Service port)."""
    raw = f"{ing.service.project}-{ing.service.name}-{ing.port.port.port}"
    return re.sub(r"[^A-Za-z0-9_.-]", "_", raw)


def _seconds(value: float) -> str:
    """nginx time value in milliseconds (``1.0`` -> ``1000ms``), so sub-second timeouts work."""
    return f"{max(1, round(value * 1000))}ms"


def _check_path(path: Path) -> str:
    if not path.is_absolute() or UNSAFE_PATH.search(str(path)):
        raise ValueError(f"nginx work directory {path!s} must be absolute and free of blanks and ;{{}}\"'$#")
    return str(path)


def _ready_endpoints(ing: IngressInfo) -> list[PodInfo]:
    """The Service port's endpoints whose ``ready`` condition is true: ingress-nginx skips the others
    (internal/ingress/controller/endpointslices.go getEndpointsFromSlices; terminating or not-ready
    pods are never an upstream, unless publishNotReadyAddresses makes them ready)."""
    return [p for p in ing.service.endpoints_for(ing.port) if ing.service.conditions(p).ready]


def _upstream_servers(ing: IngressInfo, tries: int, retry_same_endpoint: bool) -> list[str]:
    """``ip:targetPort`` of every ready endpoint of the Service port (ingress-nginx reads the EndpointSlices,
    so a named targetPort is resolved per pod); repeated to ``tries`` peers when retries may re-pick one."""
    servers = [f"{p.ip}:{ing.port.target_for(p)}" for p in _ready_endpoints(ing)]
    if retry_same_endpoint and servers:
        servers = servers * math.ceil(tries / len(servers))  # whole copies keep the weights equal
    return servers


def _location(ing: IngressInfo, indent: str) -> list[str]:
    """The proxy location of one Ingress (503 when its Service has no endpoints)."""
    target = f" targetPort {ing.port.target}" if ing.port.port.target is not None else ""
    head = f"{indent}# ingress {ing.key} -> service {ing.service.key} port {ing.port.port.port}{target}"
    if not _ready_endpoints(ing):
        return [head, f"{indent}location / {{ return 503; }}"]
    return [head, f"{indent}location / {{", f"{indent}    proxy_pass http://{upstream_name(ing)};", f"{indent}}}"]


def _servers(topology: Topology, controller: ControllerInfo) -> tuple[dict[str, IngressInfo], IngressInfo | None, list[str]]:
    """(host -> Ingress, the catch-all Ingress, shadowed-host comments) of one controller's nginx.conf."""
    mine = [topology.ingresses[k] for k in sorted(topology.ingresses)
            if topology.ingresses[k].controller.pod.symbol == controller.pod.symbol]
    by_host: dict[str, IngressInfo] = {}
    shadowed: list[str] = []
    for ing in mine:
        host = ing.host.strip().lower()
        if host not in ("", "*") and not HOST_RE.match(host):
            raise ValueError(f"ingress {ing.key}: host {ing.host!r} is not a DNS name")
        if host in by_host:
            shadowed.append(f"# ingress {ing.key}: host {host or '*'} already served by {by_host[host].key}")
            continue
        by_host[host] = ing
    catch_all = by_host.pop("", None) or by_host.pop("*", None)
    return by_host, catch_all, shadowed


def upstream_connections(
    topology: Topology, controller: ControllerInfo, host: str, *, tries: int = 3, retry_same_endpoint: bool = False,
) -> list[str]:
    """The connections the controller's nginx opens for a request with ``Host: host``, ``SRC>DST:PORT`` each.

    What the probe agent's tracer follows to settle an ingress probe whose backend leg a rule
    drops (netiso.probe.tracer). It mirrors the server choice of :func:`render_nginx_conf`: a
    host equal to a server's name picks that server, any other host the default server (the
    catch-all Ingress, or 404: no upstream). Empty, i.e. nothing to follow, whenever that is
    not certain: a wildcard server name (nginx's own precedence rules), no endpoints (503), or
    more distinct endpoints than nginx tries. The source is the controller pod's IP (nginx
    connects from the pod, never through a Service).
    """
    by_host, catch_all, _ = _servers(topology, controller)
    name = host.strip().lower()
    if ":" in name and not name.startswith("["):
        name = name.split(":", 1)[0]  # nginx matches server names without the port
    if any("*" in h for h in by_host):
        return []
    ing = by_host.get(name) or catch_all
    if ing is None:
        return []
    peers = list(dict.fromkeys(_upstream_servers(ing, tries, retry_same_endpoint)))
    if not peers or len(peers) > tries:
        return []
    return [f"{controller.pod.ip}>{peer}" for peer in peers]


def render_nginx_conf(
    topology: Topology,
    controller: ControllerInfo,
    workdir: Path,
    *,
    connect_timeout: float = 1.0,
    read_timeout: float = 3.0,
    send_timeout: float = 3.0,
    tries: int = 3,
    retry_same_endpoint: bool = False,
) -> str:
    """The nginx.conf of ``controller``: one server per Ingress host it serves.

    Ingresses whose host is empty or ``*`` land in the default server (an Ingress rule without
    host is a catch-all in ingress-nginx); two Ingresses with the same host on the same
    controller: the first by key wins, like ingress-nginx's oldest-wins rule for equal paths.
    """
    wd = _check_path(workdir)
    port = controller_port(controller)
    by_host, catch_all, shadowed = _servers(topology, controller)

    lines = [
        f"# netiso lab ingress controller {controller.pod.symbol} (ingress-nginx defaults, see ingress.py)",
        "user root;",
        "daemon off;",
        "master_process on;",
        f"worker_processes {WORKER_PROCESSES};",
        f"pid {wd}/nginx.pid;",
        f"lock_file {wd}/nginx.lock;",
        f"error_log {wd}/error.log notice;",
        "events { worker_connections 1024; }",
        "http {",
        "    default_type text/plain;",
        "    server_tokens off;",
        "    server_names_hash_bucket_size 128;",
        *(f"    {d}_temp_path {wd}/{d};" for d in TEMP_DIRS),
        "    log_format netiso escape=json '{\"time\":\"$time_iso8601\",\"remote_addr\":\"$remote_addr\","
        "\"host\":\"$host\",\"request\":\"$request\",\"status\":\"$status\",\"upstream_addr\":\"$upstream_addr\","
        "\"upstream_status\":\"$upstream_status\",\"request_time\":\"$request_time\",\"req_id\":\"$req_id\","
        "\"x_forwarded_for_in\":\"$http_x_forwarded_for\"}';",
        f"    access_log {wd}/access.log netiso;",
        "    map $http_upgrade $connection_upgrade { default upgrade; '' close; }",
        "    map $http_host $best_http_host { default $http_host; '' $host; }",
        "    map $http_x_request_id $req_id { default $http_x_request_id; '' $request_id; }",
        "    proxy_http_version 1.1;",
        "    proxy_buffering off;",
        "    proxy_set_header Host $best_http_host;",
        "    proxy_set_header Upgrade $http_upgrade;",
        "    proxy_set_header Connection $connection_upgrade;",
        "    proxy_set_header X-Request-ID $req_id;",
        "    proxy_set_header X-Real-IP $remote_addr;",
        "    proxy_set_header X-Forwarded-For $remote_addr;",
        "    proxy_set_header X-Forwarded-Host $best_http_host;",
        "    proxy_set_header X-Forwarded-Port $server_port;",
        "    proxy_set_header X-Forwarded-Proto $scheme;",
        "    proxy_set_header X-Forwarded-Scheme $scheme;",
        "    proxy_set_header X-Scheme $scheme;",
        "    proxy_set_header X-Original-Forwarded-For $http_x_forwarded_for;",
        '    proxy_set_header Proxy "";',
        f"    proxy_connect_timeout {_seconds(connect_timeout)};",
        f"    proxy_read_timeout {_seconds(read_timeout)};",
        f"    proxy_send_timeout {_seconds(send_timeout)};",
        "    proxy_next_upstream error timeout;",
        f"    proxy_next_upstream_tries {tries};",
        *(f"    {s}" for s in shadowed),
    ]
    upstreams: dict[str, list[str]] = {}  # two Ingresses of one Service port share one upstream
    for ing in [*by_host.values(), *([catch_all] if catch_all else [])]:
        servers = _upstream_servers(ing, tries, retry_same_endpoint)
        if servers:
            upstreams.setdefault(upstream_name(ing), servers)
    for name, servers in upstreams.items():
        # max_fails=0: the Lua balancer never benches a peer after a failure, neither do we
        lines += [f"    upstream {name} {{", *(f"        server {s} max_fails=0;" for s in servers), "    }"]
    for host, ing in by_host.items():
        lines += ["    server {", f"        listen 0.0.0.0:{port};", f"        server_name {host};",
                  *_location(ing, "        "), "    }"]
    lines += ["    server {", f"        listen 0.0.0.0:{port} default_server;", "        server_name _;"]
    if catch_all:
        lines += _location(catch_all, "        ")
    else:
        lines += ["        # unknown host: ingress-nginx's default backend answers 404",
                  "        location / { return 404; }"]
    lines += ["    }", "}"]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- processes


def _children(pid: int) -> list[tuple[int, int]]:
    """(pid, start time) of the direct children of ``pid`` (the nginx workers)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            data = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        rest = data[data.rindex(")") + 2:].split()
        if int(rest[1]) == pid:
            out.append((int(entry), int(rest[19])))
    return out


def _owns_listener(pid: int, port: int) -> bool:
    """True when ``pid`` holds a socket LISTENing on ``port`` (any IPv4 address) in its netns.

    A connect alone would also succeed against a stray listener of someone else, while nginx
    still retries its bind() (it does so for ~2.5 s before giving up).
    """
    try:
        rows = Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]
        fds = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
    except OSError:
        return False
    for row in rows:
        cols = row.split()
        if cols[3] == "0A" and int(cols[1].split(":")[1], 16) == port and f"socket:[{cols[9]}]" in fds:
            return True
    return False


def _accepts(port: int) -> bool:
    """True when something accepts TCP on 127.0.0.1:``port`` of the calling thread's netns."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        try:
            s.connect(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _failure_text(proc: ControllerProcess) -> str:
    parts = []
    for f in (proc.error_log, proc.workdir / "nginx.stderr"):
        with contextlib.suppress(OSError):
            text = f.read_text().strip()
            if text:
                parts.append(f"--- {f}\n{text[-4000:]}")
    return "\n".join(parts) or "(nginx wrote nothing)"


def _spawn(
    topology: Topology, ctl: ControllerInfo, netns: str, rundir: Path, nginx: str,
    register: Callable[[int, str], object] | None, conf_options: dict[str, Any],
) -> ControllerProcess:
    if not (NETNS_DIR / netns).exists():
        raise ControllerStartError(f"controller {ctl.pod.symbol}: network namespace {netns} does not exist")
    workdir = rundir / f"nginx-{ctl.pod.project}-{ctl.pod.workload}"
    for d in ("", *TEMP_DIRS):
        (workdir / d).mkdir(parents=True, exist_ok=True)
    conf = workdir / "nginx.conf"
    conf.write_text(render_nginx_conf(topology, ctl, workdir, **conf_options))
    argv = ["nsenter", f"--net={NETNS_DIR / netns}", nginx, "-p", f"{workdir}/", "-e", str(workdir / "error.log"),
            "-c", str(conf)]
    with open(workdir / "nginx.stderr", "wb") as err:
        popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
    proc = ControllerProcess(ctl.pod, popen.pid, workdir, conf, netns, proc_start_time(popen.pid) or 0, popen=popen)
    if register is not None:
        with contextlib.suppress(ProcessLookupError):  # already exited: the wait reports why
            register(popen.pid, f"nginx ingress controller {ctl.pod.symbol}")
    return proc


def start_controllers(
    topology: Topology,
    netns_of: Callable[[PodInfo], str],
    rundir: Path,
    *,
    register: Callable[[int, str], object] | None = None,
    ready_timeout: float = 5.0,
    **conf_options: Any,
) -> list[ControllerProcess]:
    """Start one nginx per ingress controller of ``topology`` and wait until each accepts.

    ``netns_of(pod)`` names the controller pod's namespace; ``register(pid, what)`` (e.g.
    ``Run.register_pid``) is called right after each spawn, before any waiting. ``conf_options``
    go to :func:`render_nginx_conf` (``connect_timeout=`` ...). On failure every nginx started
    here is stopped again and :class:`ControllerStartError` carries nginx's error log.
    """
    nginx = nginx_binary()
    if nginx is None:
        raise ControllerStartError(INSTALL_HINT)
    procs: list[ControllerProcess] = []
    t0 = time.monotonic()
    try:
        for ctl in controllers_of(topology):
            procs.append(_spawn(topology, ctl, netns_of(ctl.pod), rundir, nginx, register, conf_options))
        deadline = t0 + ready_timeout
        for proc in procs:
            port = next((p.port for p in proc.pod.ports if p.protocol == "TCP"), DEFAULT_PORT)
            while True:
                assert proc.popen is not None
                if proc.popen.poll() is not None:
                    raise ControllerStartError(
                        f"nginx for {proc.pod.symbol} exited with {proc.popen.returncode}:\n{_failure_text(proc)}")
                if _owns_listener(proc.pid, port) and call_in(proc.netns, _accepts, port):
                    proc.ready_s = time.monotonic() - t0
                    break
                if time.monotonic() > deadline:
                    raise ControllerStartError(
                        f"nginx for {proc.pod.symbol} did not accept on port {port} within {ready_timeout:.1f}s:\n"
                        f"{_failure_text(proc)}")
                time.sleep(0.01)
    except BaseException:
        stop_controllers(procs)
        raise
    return procs


def _wait_gone(pids: Sequence[tuple[int, int]], popen: subprocess.Popen[bytes] | None, grace: float) -> bool:
    deadline = time.monotonic() + grace
    while True:
        if popen is not None:
            popen.poll()  # reap the master so it does not linger as a zombie
        if not any(process_alive(p, st) for p, st in pids):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)


def _kill(pids: Sequence[tuple[int, int]], sig: signal.Signals) -> None:
    for pid, st in pids:
        if process_alive(pid, st):  # never signal a pid that was reused by someone else
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)


def stop_controllers(procs: Sequence[ControllerProcess], *, grace: float = 1.0) -> None:
    """End each nginx by pid: QUIT (graceful), then TERM, then KILL master and workers.

    Workers are collected before the first signal: if the master had to be KILLed they would
    be reparented to init and could no longer be found by parentage. Files are left in place
    (the logs are evidence); nothing outside a work directory is touched.
    """
    for proc in procs:
        start = proc.start_time or proc_start_time(proc.pid) or 0
        family = [(proc.pid, start), *(_children(proc.pid) if process_alive(proc.pid, start) else [])]
        for sig in (signal.SIGQUIT, signal.SIGTERM, signal.SIGKILL):
            _kill(family if sig == signal.SIGKILL else family[:1], sig)
            if _wait_gone(family, proc.popen, grace):
                break
        if proc.popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=grace)


# --------------------------------------------------------------------------- evidence


def read_access_log(proc: ControllerProcess) -> list[dict[str, str]]:
    """The access log as records (remote_addr, host, status, upstream_addr, req_id ...)."""
    try:
        text = proc.access_log.read_text()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines() if line.strip()]
