"""One kind cluster's life through the kind CLI, the ``kind`` docker network, images and client containers.

Mirrors the kind CLI (kubernetes-sigs/kind v0.32.0, ``pkg/cmd/kind``): ``kind create cluster
--name N --config F --kubeconfig P --wait 0s`` (netiso waits for what it needs itself, Calico
first: with ``disableDefaultCNI`` no node is Ready before the CNI is installed), ``kind get
clusters`` (one name per line on stdout; "No kind clusters found." goes to stderr), ``kind export
kubeconfig``, ``kind load docker-image``, ``kind load image-archive``, ``kind export logs DIR
--name N``, ``kind delete cluster --name N``. And docker: ``docker network inspect kind`` (the
JSON array ``[{"Name": "kind", "IPAM": {"Config": [{"Subnet": ...}, ...]}, ...}]``; kind creates the
network with an IPv6 ULA subnet and docker adds the IPv4 one), ``docker pull``, ``docker tag``,
``docker image save``, ``docker image inspect`` (the ``RepoDigests`` a pull produced: the record of
what ran for images upstream pins by tag only), ``docker run``/``inspect``/``rm -f`` for the
external clients.

Known differences / workarounds:

* images with a digest are pulled by digest and loaded under their ``REPO:TAG`` (see
  ``images.py``: kind cannot load digest references, kind #1140/#2394/#4028);
* when ``kind load docker-image`` fails with containerd's ``content digest ... not found``
  (Docker 29's multi-platform image store, kind #3795/#4066), the image is saved for the host's
  platform only (``docker image save --platform linux/<arch>``) and loaded with ``kind load
  image-archive``: the workaround kind documents (kind PR #4247);
* a kept cluster is found by name only; the name carries the config hash (``configs.py``).
"""

from __future__ import annotations

import ipaddress
import json
import platform
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from netiso.backends.kind.images import load_reference
from netiso.backends.kind.leftovers import RUN_LABEL, owner_labels
from netiso.backends.kind.tools import ToolError, Tools

KIND_NETWORK = "kind"
CLIENT_HTTP_PORT = 8080


def docker_arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)


def network_inspect_argv(network: str = KIND_NETWORK) -> list[str]:
    return ["docker", "network", "inspect", network]


def pull_argv(ref: str) -> list[str]:
    return ["docker", "pull", ref]


def tag_argv(ref: str, target: str) -> list[str]:
    return ["docker", "tag", ref, target]


def repo_digests_argv(ref: str) -> list[str]:
    """``docker image inspect``: the ``RepoDigests`` a pull produced (JSON list)."""
    return ["docker", "image", "inspect", "--format", "{{json .RepoDigests}}", ref]


def kind_subnet(tools: Tools, network: str = KIND_NETWORK) -> str:
    """The IPv4 subnet of the ``kind`` docker network (exists once a kind cluster was created)."""
    res = tools.run(network_inspect_argv(network), what=f"docker network {network!r}")
    try:
        info = json.loads(res.stdout)
        configs = info[0]["IPAM"]["Config"] or []
    except (ValueError, LookupError, TypeError) as exc:
        raise ToolError(res, f"unexpected `docker network inspect {network}` output ({exc})") from None
    for cfg in configs:
        subnet = cfg.get("Subnet", "")
        try:
            if ipaddress.ip_network(subnet, strict=False).version == 4:
                return subnet
        except ValueError:
            continue
    raise ToolError(res, f"docker network {network!r} has no IPv4 subnet")


@dataclass
class KindCluster:
    """A named kind cluster: created from a rendered config, or an existing one reused."""

    name: str
    config: str  # the rendered kind config (YAML)
    workdir: Path  # where the config and kubeconfig files go
    tools: Tools
    created: bool = False  # by this run (False when reused)

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / f"{self.name}.kubeconfig"

    @property
    def config_path(self) -> Path:
        return self.workdir / f"{self.name}.kind.yaml"

    @property
    def context(self) -> str:
        return f"kind-{self.name}"

    def create_argv(self) -> list[str]:
        return [
            "kind", "create", "cluster",
            "--name", self.name,
            "--config", str(self.config_path),
            "--kubeconfig", str(self.kubeconfig),
            "--wait", "0s",
        ]  # fmt: skip

    def export_kubeconfig_argv(self) -> list[str]:
        return ["kind", "export", "kubeconfig", "--name", self.name, "--kubeconfig", str(self.kubeconfig)]

    def load_argv(self, target: str) -> list[str]:
        return ["kind", "load", "docker-image", target, "--name", self.name]

    def export_logs_argv(self, target: Path) -> list[str]:
        return ["kind", "export", "logs", str(target), "--name", self.name]

    def delete_argv(self) -> list[str]:
        return ["kind", "delete", "cluster", "--name", self.name]

    def exists(self) -> bool:
        res = self.tools.run(["kind", "get", "clusters"], what="kind get clusters")
        return self.name in res.stdout.split()

    def create(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config)
        self.tools.timed(
            f"kind: creating cluster {self.name}",
            lambda: self.tools.run(self.create_argv(), what=f"kind could not create cluster {self.name}"),
        )
        self.created = True

    def ensure(self) -> bool:
        """Reuse the cluster of this name if it exists (same name = same config), else create it.

        Returns True when the cluster was created now.
        """
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.exists():
            self.tools.say(f"kind: reusing cluster {self.name} (same config hash)")
            self.tools.run(self.export_kubeconfig_argv(), what=f"kind could not export the kubeconfig of {self.name}")
            return False
        self.create()
        return True

    def load_images(self, refs: Sequence[str]) -> dict[str, list[str]]:
        """Pull each image (by digest when it has one), tag ``REPO:TAG`` and load it into the nodes.

        Returns ``ref -> RepoDigests`` as docker reports them after the pull: the exact bits of the
        images that upstream pins by tag only (Calico, MetalLB, OpenELB), for the run's record.
        """
        digests: dict[str, list[str]] = {}
        for ref in refs:
            target = load_reference(ref)
            self.tools.timed(f"images: {target}", lambda ref=ref, target=target: self._load_one(ref, target))
            digests[ref] = self.repo_digests(ref)
        return digests

    def repo_digests(self, ref: str) -> list[str]:
        res = self.tools.run(repo_digests_argv(ref), check=False)
        try:
            found = json.loads(res.stdout) if res.returncode == 0 else []
        except ValueError:
            found = []
        return [str(d) for d in found or []]

    def _load_one(self, ref: str, target: str) -> None:
        self.tools.run(pull_argv(ref), what=f"docker could not pull {ref}")
        if target != ref:
            self.tools.run(tag_argv(ref, target), what=f"docker could not tag {ref}")
        res = self.tools.run(self.load_argv(target), check=False)
        if res.returncode == 0:
            return
        if "content digest" not in (res.stderr + res.stdout):
            raise ToolError(res, f"kind could not load {target}")
        with tempfile.TemporaryDirectory(prefix="netiso-image-") as tmp:
            archive = str(Path(tmp) / "image.tar")
            self.tools.run(
                ["docker", "image", "save", "--platform", f"linux/{docker_arch()}", "-o", archive, target],
                what=f"docker could not save {target}",
            )
            self.tools.run(
                ["kind", "load", "image-archive", archive, "--name", self.name],
                what=f"kind could not load the archive of {target}",
            )

    def export_logs(self, root: Path) -> Path | None:
        """``kind export logs`` into ``root/<name>/``; never raises (it runs while failing)."""
        target = root / self.name
        try:
            target.mkdir(parents=True, exist_ok=True)
            res = self.tools.run(self.export_logs_argv(target), check=False)
        except Exception as exc:  # best effort while another error is on its way up
            self.tools.say(f"kind: could not export logs of {self.name}: {exc}")
            return None
        if res.returncode != 0:
            self.tools.say(f"kind: could not export logs of {self.name}: {(res.stderr or res.stdout).strip()}")
            return None
        self.tools.say(f"kind: logs of {self.name} exported to {target}")
        return target

    def delete(self) -> None:
        self.tools.timed(
            f"kind: deleting cluster {self.name}",
            lambda: self.tools.run(self.delete_argv(), what=f"kind could not delete {self.name}"),
        )


# A twin's name: the client's container name and this suffix. Client names never hold "_"
# (netiso.model.symbols.NAME_RE), so no client's own container can be named like another's twin;
# the name keeps the ``netiso-<run>-`` prefix and the run label of every other client container.
UNROUTED_SUFFIX = "_unrouted"
SINK_DEVICE = "nx-sink"  # a twin's port-less bridge: where its packets to pod IPs go and vanish


@dataclass
class ClientContainers:
    """One agnhost container per external client on the ``kind`` network (``netiso-<run>-<client>``).

    Each serves netexec on 8080 (HTTP and UDP) as its main process, so the container stays up;
    probes run in it through ``docker exec -i <container> sh -c ...`` (the kube backend's client
    command prefix), and the kube backend starts further echo ports there for egress flows.

    The ``kind`` docker network does not route pod IPs (its gateway is the docker host), so a
    client could never reach ``pod:`` addresses, whereas the scenarios' default
    (``cluster.clientsRouteToPods: true``) is an external router that knows every node's pod block.
    The containers get ``NET_ADMIN`` and, once the blocks are discovered, ``ip route replace
    <block> via <node IP>`` per node (:meth:`route_to_pods`): that router, inside the client.

    A ``clientsRouteToPods: false`` scenario gets *unrouted twins* instead
    (``netiso-<run>-<client>_unrouted``, same hostname, same run label, started the first time such
    a scenario needs them). Not kind's network as it is: a packet to a pod IP would go to the
    bridge's gateway, the docker host, which forwards it by its default route (docker turns on
    ip_forward and masquerades the bridge): off the machine, or answered by an ICMP unreachable
    (a ``refused`` the oracle never predicts). A twin routes the pod subnet into a bridge device
    of its own with no port (:meth:`sink_argvs`, what the lab does for clients without pod
    routes): the SYN goes nowhere, the probe times out, nothing leaves the host. Twins, not routes
    removed per scenario: with ``--jobs`` > 1 a ``true`` scenario of the same cluster probes from
    the routed containers at the same time.

    Every container, routed or twin, carries its owner at ``docker run`` (``owner``: this
    process's PID, start time, boot id and PID namespace, ``leftovers.py``), so that the janitor of
    a later run can remove the containers of a run killed before :meth:`stop` ran, and only those.
    """

    run_id: str
    image: str
    tools: Tools
    network: str = KIND_NETWORK
    started: dict[str, str] = field(default_factory=dict)  # client -> container name (routed)
    unrouted: dict[str, str] = field(default_factory=dict)  # client -> its unrouted twin
    owner: dict[str, str] = field(default_factory=owner_labels)  # leftovers.Owner labels of this process

    def container(self, client: str, *, routed: bool = True) -> str:
        name = f"netiso-{self.run_id}-{client}"
        return name if routed else name + UNROUTED_SUFFIX

    def run_argv(self, client: str, *, routed: bool = True) -> list[str]:
        # routed: its own routes to the pod blocks (route_to_pods); a twin: the pod subnet's sink (sink_argvs)
        own = ["--cap-add", "NET_ADMIN", *(() if routed else ("--label", "netiso.io/pod-routes=false"))]
        return [
            "docker", "run", "-d",
            "--network", self.network,
            "--name", self.container(client, routed=routed),
            "--hostname", client,
            "--label", f"{RUN_LABEL}={self.run_id}",
            *(arg for key, value in self.owner.items() for arg in ("--label", f"{key}={value}")),
            *own,
            self.image,
            "netexec", f"--http-port={CLIENT_HTTP_PORT}", f"--udp-port={CLIENT_HTTP_PORT}",
        ]  # fmt: skip

    def start(self, clients: Sequence[str], *, routed: bool = True) -> dict[str, str]:
        """Start the clients (or their twins) not yet running; returns ``client -> its IPv4 address``."""
        running = self.started if routed else self.unrouted
        for client in clients:
            if client in running:
                continue
            what = f"docker could not start {'' if routed else 'the unrouted twin of '}external client {client!r}"
            self.tools.run(self.run_argv(client, routed=routed), what=what)
            running[client] = self.container(client, routed=routed)
        return {client: self.address(client, routed=routed) for client in clients}

    def inspect_argv(self, client: str, *, routed: bool = True) -> list[str]:
        return ["docker", "inspect", "--format", "{{json .NetworkSettings.Networks}}",
                self.container(client, routed=routed)]

    def command(self, client: str, *, routed: bool = True) -> str:
        """The kube backend's command prefix for ``client`` (``--client NAME=COMMAND``)."""
        return f"docker exec -i {self.container(client, routed=routed)}"

    def address(self, client: str, *, routed: bool = True) -> str:
        name = self.container(client, routed=routed)
        res = self.tools.run(self.inspect_argv(client, routed=routed), what=f"docker could not inspect {name}")
        try:
            networks = json.loads(res.stdout)
            ip = networks[self.network]["IPAddress"]
        except (ValueError, LookupError, TypeError):
            raise ToolError(res, f"{name} has no address on the {self.network!r} network") from None
        if not ip:
            raise ToolError(res, f"{name} has no IPv4 address on the {self.network!r} network")
        return str(ip)

    def sink_argvs(self, client: str, pod_subnet: str) -> list[list[str]]:
        """A twin's route of the pod subnet into a port-less bridge (packets to pods vanish there)."""
        twin = self.container(client, routed=False)
        return [["docker", "exec", twin, "ip", "link", "add", SINK_DEVICE, "type", "bridge"],
                ["docker", "exec", twin, "ip", "link", "set", SINK_DEVICE, "up"],
                ["docker", "exec", twin, "ip", "route", "replace", pod_subnet, "dev", SINK_DEVICE]]

    def sink_pod_subnet(self, clients: Sequence[str], pod_subnet: str) -> None:
        """Give each started twin among ``clients`` its sink for ``pod_subnet`` (once, after ``start``)."""
        for client in clients:
            if client in self.unrouted:
                for argv in self.sink_argvs(client, pod_subnet):
                    self.tools.run(argv, what=f"docker could not route {pod_subnet} into a sink in the unrouted "
                                              f"twin of external client {client!r}")

    def route_argv(self, client: str, block: str, via: str) -> list[str]:
        return ["docker", "exec", self.container(client), "ip", "route", "replace", block, "via", via]

    def route_to_pods(self, clients: Sequence[str], routes: Sequence[tuple[str, str]]) -> None:
        """Route each ``(pod block, node IP)`` of ``routes`` in every started (routed) client of ``clients``;
        twins are never routed."""
        for client in clients:
            if client not in self.started:
                continue
            for block, via in routes:
                self.tools.run(self.route_argv(client, block, via),
                               what=f"docker could not route {block} via {via} in external client {client!r}")

    def commands(self) -> dict[str, str]:
        """``client -> command prefix`` of the routed clients for the kube backend (``--client NAME=COMMAND``)."""
        return {client: self.command(client) for client in self.started}

    def unrouted_commands(self, clients: Sequence[str]) -> dict[str, str]:
        """``client -> command prefix`` of the started twins among ``clients``."""
        return {client: self.command(client, routed=False) for client in clients if client in self.unrouted}

    def stop(self) -> None:
        """Remove every container of the run, routed and twins, in one ``docker rm -f``."""
        names = [*self.started.values(), *self.unrouted.values()]
        if not names:
            return
        self.tools.run(["docker", "rm", "-f", *names], check=False)
        self.started.clear()
        self.unrouted.clear()
