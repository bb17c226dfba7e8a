"""The add-ons of a kind cluster, as data: what to apply, in which order, and what "ready" means.

Mirrors the upstream install guides, from the vendored manifests under
``cluster-configs/addons/<name>/<version>/`` (each with a ``SOURCE.md``: URL, tag, commit, sha256):

* **Calico v3.32.1** ``manifests/calico.yaml`` (projectcalico/calico), made per mode by an
  overlay instead of three copies: ``calico_backend`` ``bird`` (direct, ipip) or ``vxlan`` (as
  upstream's ``calico-vxlan.yaml``, which also drops the ``-bird-live``/``-bird-ready`` probe flags),
  ``CALICO_IPV4POOL_IPIP`` / ``CALICO_IPV4POOL_VXLAN`` ``Always``/``Never`` (direct: both
  ``Never``; CrossSubnet is never used: kind nodes share one docker subnet, so it would never
  encapsulate), ``CALICO_IPV4POOL_CIDR`` = the kind ``podSubnet``. These env vars only matter when
  calico-node creates the pool (``default-ipv4-ippool``), which it does on a fresh cluster.
* **MetalLB v0.16.1** ``config/manifests/metallb-native.yaml`` plus a generated IPAddressPool cut
  from the ``kind`` docker network's IPv4 subnet (``172.18.0.0/16`` -> ``172.18.255.200-172.18.255.250``,
  as kind's old load-balancer guide did) and an L2Advertisement for it.
* **OpenELB v0.6.0** ``deploy/openelb.yaml`` with the speaker's ``--enable-layer2=false`` turned to
  ``true`` and a generated layer2 Eip on ``eth0`` over the same range, marked default
  (``eip.openelb.kubesphere.io/is-default-eip``), so a Service needs only the
  ``lb.kubesphere.io/v1alpha1: openelb`` annotation.
* **ingress-nginx controller-v1.15.1** kind provider ``deploy.yaml``: vendored, *not applied*
  (see ``INGRESS_NGINX``): the kube backend places each scenario's controller itself; its
  pinned images are pre-loaded.

Readiness waits are :class:`Wait` records the runtime (``install.py``) polls with tenacity, each
with a timeout and the words of its timeout message. Knowing differences from a human install:
manifests are applied server-side (field manager ``netiso``), not with ``kubectl apply``; the
webhook-guarded objects (MetalLB pool, OpenELB Eip) are retried until the webhook admits them
instead of a fixed sleep.
"""

from __future__ import annotations

import copy
import hashlib
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from netiso.backends.kind.configs import REPO_ROOT, calico_tag, proxy_tag
from netiso.backends.kind.images import images_in_manifest, mirror_reference
from netiso.model.types import KubeProxySpec

ADDON_DIR = REPO_ROOT / "cluster-configs" / "addons"
FIELD_MANAGER = "netiso"
MARKER_NAMESPACE = "kube-system"
MARKER_NAME = "netiso-kind"  # ConfigMap written last: "this cluster's add-ons are installed"
DEFAULT_KIND_SUBNET = "172.18.0.0/16"  # what docker usually gives the kind network (dry-run only)

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


@dataclass(frozen=True)
class Addon:
    """One vendored add-on: ``cluster-configs/addons/<name>/<version>/`` and its SOURCE.md."""

    name: str
    version: str
    files: tuple[str, ...]

    @property
    def directory(self) -> Path:
        return ADDON_DIR / self.name / self.version

    def path(self, file: str | None = None) -> Path:
        return self.directory / (file or self.files[0])

    def checksums(self) -> dict[str, str]:
        """``name/version/file -> sha256`` of the files as they are on disk."""
        return {f"{self.name}/{self.version}/{f}": hashlib.sha256(self.path(f).read_bytes()).hexdigest() for f in self.files}


CALICO = Addon("calico", "v3.32.1", ("calico.yaml",))
METALLB = Addon("metallb", "v0.16.1", ("metallb-native.yaml",))
OPENELB = Addon("openelb", "v0.6.0", ("openelb.yaml",))
INGRESS_NGINX = Addon("ingress-nginx", "controller-v1.15.1", ("deploy.yaml",))
ADDONS: tuple[Addon, ...] = (CALICO, METALLB, OPENELB, INGRESS_NGINX)

INGRESS_NGINX_REASON = (
    "ingress-nginx deploy.yaml (kind provider) is not applied: the kube backend places each scenario's controller in "
    "the scenario's project and node with its own manifests; the upstream Deployment would be a second controller "
    "claiming every Ingress (--watch-ingress-without-class=true), holding hostPorts 80/443 and a VIP of the pool, and "
    "its admission webhook (failurePolicy: Fail) would refuse Ingresses whenever it is not answering. Its images "
    "are not pre-loaded: netiso's own controller pods name the controller image by digest, which each node pulls "
    "itself (kind #2734)."
)

# encapsulation -> (calico_backend, CALICO_IPV4POOL_IPIP, CALICO_IPV4POOL_VXLAN)
CALICO_MODES: dict[str, tuple[str, str, str]] = {
    "direct": ("bird", "Never", "Never"),
    "ipip": ("bird", "Always", "Never"),
    "vxlan": ("vxlan", "Never", "Always"),
}
TUNNEL_ANNOTATION = {
    "ipip": "projectcalico.org/IPv4IPIPTunnelAddr",
    "vxlan": "projectcalico.org/IPv4VXLANTunnelAddr",
}


def addons_for(load_balancer: str) -> tuple[Addon, ...]:
    """The add-ons whose bytes make a cluster of this group (what the cluster-name hash covers)."""
    return (CALICO, METALLB if load_balancer == "metallb" else OPENELB, INGRESS_NGINX)


def addon_checksums(load_balancer: str) -> dict[str, str]:
    sums: dict[str, str] = {}
    for addon in addons_for(load_balancer):
        sums.update(addon.checksums())
    return sums


@lru_cache(maxsize=8)
def _vendored_text(path: Path) -> str:
    return path.read_text()


@lru_cache(maxsize=8)
def _vendored_parsed(path: Path) -> tuple[dict[str, Any], ...]:
    return tuple(d for d in yaml.load_all(_vendored_text(path), Loader=_Loader) if d)


def vendored_documents(addon: Addon, file: str | None = None) -> list[dict[str, Any]]:
    """The objects of a vendored manifest (fresh copies: callers may change them)."""
    return copy.deepcopy(list(_vendored_parsed(addon.path(file))))


# --------------------------------------------------------------------------- overlays


def _env_set(env: list[dict[str, Any]], name: str, value: str) -> None:
    for item in env:
        if item.get("name") == name:
            item.pop("valueFrom", None)
            item["value"] = value
            return
    env.append({"name": name, "value": value})


def calico_manifest(encapsulation: str, pod_subnet: str, endpoint_to_host: str = "ACCEPT",
                    nat_outgoing: bool = True) -> list[dict[str, Any]]:
    """calico.yaml v3.32.1 for ``encapsulation`` with its IPv4 pool = ``pod_subnet``.

    ``endpoint_to_host`` is written to ``FELIX_DEFAULTENDPOINTTOHOSTACTION`` (calico.yaml says
    ACCEPT), ``nat_outgoing`` to ``CALICO_IPV4POOL_NAT_OUTGOING`` (calico-node's startup creates
    the default pool with it; absent means true, node/pkg/lifecycle/startup).
    """
    backend, ipip, vxlan = CALICO_MODES[encapsulation]
    docs = vendored_documents(CALICO)
    seen = {"configmap": False, "daemonset": False}
    for doc in docs:
        if doc.get("kind") == "ConfigMap" and doc["metadata"]["name"] == "calico-config":
            doc["data"]["calico_backend"] = backend
            seen["configmap"] = True
        if doc.get("kind") == "DaemonSet" and doc["metadata"]["name"] == "calico-node":
            container = next(c for c in doc["spec"]["template"]["spec"]["containers"] if c["name"] == "calico-node")
            env = container.setdefault("env", [])
            _env_set(env, "CALICO_IPV4POOL_IPIP", ipip)
            _env_set(env, "CALICO_IPV4POOL_VXLAN", vxlan)
            _env_set(env, "CALICO_IPV6POOL_VXLAN", "Never")
            _env_set(env, "CALICO_IPV4POOL_CIDR", pod_subnet)
            _env_set(env, "CALICO_IPV4POOL_NAT_OUTGOING", "true" if nat_outgoing else "false")
            _env_set(env, "FELIX_DEFAULTENDPOINTTOHOSTACTION", endpoint_to_host)
            if backend == "vxlan":  # no BIRD runs: its liveness/readiness checks would always fail
                for probe in ("livenessProbe", "readinessProbe"):
                    command = container.get(probe, {}).get("exec", {}).get("command", [])
                    command[:] = [a for a in command if a not in ("-bird-live", "-bird-ready")]
            seen["daemonset"] = True
    if not all(seen.values()):
        raise ValueError(f"vendored calico.yaml changed shape: overlay did not find {[k for k, v in seen.items() if not v]}")
    return docs


def openelb_manifest() -> list[dict[str, Any]]:
    """openelb.yaml v0.6.0 with layer2 enabled on the speaker."""
    docs = vendored_documents(OPENELB)
    patched = False
    for doc in docs:
        if doc.get("kind") == "DaemonSet" and doc["metadata"]["name"] == "openelb-speaker":
            for container in doc["spec"]["template"]["spec"]["containers"]:
                args = container.get("args") or []
                if "--enable-layer2=false" in args:
                    args[args.index("--enable-layer2=false")] = "--enable-layer2=true"
                    patched = True
    if not patched:
        raise ValueError("vendored openelb.yaml changed shape: speaker has no --enable-layer2=false to turn on")
    return docs


def mirror_images(docs: Sequence[dict[str, Any]], registry: str | None) -> list[dict[str, Any]]:
    """Every container image of ``docs`` pulled from ``registry`` (``--image-registry``); in place."""
    if not registry:
        return list(docs)
    for doc in docs:
        pod = ((doc.get("spec") or {}).get("template") or {}).get("spec") or {}
        for container in [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]:
            if "image" in container:
                container["image"] = mirror_reference(container["image"], registry)
    return list(docs)


# --------------------------------------------------------------------------- generated objects


def lb_range(subnet: str) -> str:
    """The VIP range cut from the kind network's IPv4 subnet: .200-.250 of its last /24.

    >>> lb_range("172.18.0.0/16")
    '172.18.255.200-172.18.255.250'
    >>> lb_range("192.168.49.0/24")
    '192.168.49.200-192.168.49.250'
    """
    net = ipaddress.ip_network(subnet, strict=False)
    if net.version != 4 or net.prefixlen > 24:
        raise ValueError(f"kind network subnet {subnet} is not an IPv4 network of /24 or larger: no room for a VIP range")
    last24 = ipaddress.ip_network(f"{net.broadcast_address}/24", strict=False)
    base = last24.network_address
    return f"{base + 200}-{base + 250}"


def metallb_objects(subnet: str) -> list[dict[str, Any]]:
    addresses = lb_range(subnet)
    labels = {"app.kubernetes.io/managed-by": "netiso"}
    return [
        {
            "apiVersion": "metallb.io/v1beta1",
            "kind": "IPAddressPool",
            "metadata": {"name": "netiso-pool", "namespace": "metallb-system", "labels": labels},
            "spec": {"addresses": [addresses]},
        },
        {
            "apiVersion": "metallb.io/v1beta1",
            "kind": "L2Advertisement",
            "metadata": {"name": "netiso-l2", "namespace": "metallb-system", "labels": labels},
            "spec": {"ipAddressPools": ["netiso-pool"]},
        },
    ]


def openelb_objects(subnet: str) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "network.kubesphere.io/v1alpha2",
            "kind": "Eip",
            "metadata": {
                "name": "netiso-eip",
                "labels": {"app.kubernetes.io/managed-by": "netiso"},
                "annotations": {"eip.openelb.kubesphere.io/is-default-eip": "true"},
            },
            "spec": {"address": lb_range(subnet), "protocol": "layer2", "interface": "eth0"},
        }
    ]


def expected_ippool(encapsulation: str, pod_subnet: str, nat_outgoing: bool = True) -> dict[str, Any]:
    """The IPPool calico-node creates from the overlay's env (what the wait checks, and what
    the kube backend's preflight will find)."""
    _, ipip, vxlan = CALICO_MODES[encapsulation]
    return {
        "apiVersion": "crd.projectcalico.org/v1",
        "kind": "IPPool",
        "metadata": {"name": "default-ipv4-ippool"},
        "spec": {
            "cidr": pod_subnet,
            "ipipMode": ipip,
            "vxlanMode": vxlan,
            "natOutgoing": nat_outgoing,
            "blockSize": 26,
            "nodeSelector": "all()",
        },
    }


def marker(cluster: str, config_hash: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": MARKER_NAME, "namespace": MARKER_NAMESPACE, "labels": {"app.kubernetes.io/managed-by": "netiso"}},
        "data": {"cluster": cluster, "hash": config_hash, "installed": "true"},
    }


# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class Apply:
    """Apply these objects (server-side); ``until_admitted``: retry while a webhook refuses."""

    name: str
    source: str
    documents: tuple[dict[str, Any], ...]
    until_admitted: float | None = None  # seconds to retry admission-webhook refusals


@dataclass(frozen=True)
class Wait:
    """Poll until ready, at most ``timeout`` seconds.

    ``check`` names a predicate of ``install.py``: ``daemonset`` / ``deployment`` / ``job`` (the
    object ``namespace/name``), ``nodes-ready``, ``node-annotation`` (``name`` = the annotation
    key, on every node), ``ippool`` (``expect`` = the spec fields that must match).
    """

    check: str
    name: str
    namespace: str | None = None
    timeout: float = 300.0
    expect: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return {
            "daemonset": f"daemonset {where}: every scheduled pod ready",
            "deployment": f"deployment {where}: Available",
            "job": f"job {where}: Complete",
            "nodes-ready": "every node Ready (the CNI is up)",
            "node-annotation": f"every node annotated {self.name}",
            "ippool": f"IPPool {self.name} with {', '.join(f'{k}={v}' for k, v in sorted(self.expect.items()))}",
        }.get(self.check, f"{self.check} {where}")


@dataclass(frozen=True)
class KubeProxySettings:
    """Rewrite kube-proxy's configuration to ``cluster.kubeProxy`` and roll its DaemonSet.

    Why the ConfigMap and not kind's ``kubeadmConfigPatches``: kubeadm fills an empty
    ``clusterCIDR`` from the podSubnet again, so a kube-proxy without a local-traffic detector
    (``detectLocalMode: None``) can only be had by editing ConfigMap kube-system/kube-proxy
    after kubeadm wrote it; one route for all three settings. ``install.configure_kube_proxy``
    reads the ConfigMap, sets ``iptables.masqueradeAll``, ``clusterCIDR`` and
    ``nodePortAddresses`` in ``config.conf``, applies it and stamps the DaemonSet's pod template
    (``netiso.io/kube-proxy-settings``) so every kube-proxy restarts with it.
    """

    masquerade_all: bool
    detect_local: bool
    node_port_addresses: tuple[str, ...]
    pod_subnet: str
    tag: str
    timeout: float = 300.0

    def describe(self) -> str:
        return f"kube-proxy settings {self.tag}: ConfigMap kube-system/kube-proxy config.conf, then roll its DaemonSet"


Step = Apply | Wait | KubeProxySettings


@dataclass(frozen=True)
class InstallPlan:
    encapsulation: str
    load_balancer: str
    steps: tuple[Step, ...]
    images: tuple[str, ...]  # every image the add-ons run (pre-loaded)
    notes: tuple[str, ...]

    def documents(self) -> list[dict[str, Any]]:
        """Every object in apply order."""
        return [d for s in self.steps if isinstance(s, Apply) for d in s.documents]


def install_plan(
    encapsulation: str,
    load_balancer: str,
    pod_subnet: str,
    kind_subnet: str,
    cluster: str = "",
    config_hash: str = "",
    timeout: float = 300.0,
    image_registry: str | None = None,
    kube_proxy: KubeProxySpec | None = None,
    endpoint_to_host: str = "ACCEPT",
    nat_outgoing: bool = True,
) -> InstallPlan:
    """The ordered add-on install of one cluster: kube-proxy's settings (when not the defaults),
    Calico (with Felix's ``defaultEndpointToHostAction`` and the pool's ``natOutgoing``), its
    waits, the load balancer, its waits."""
    calico_settings = calico_tag(endpoint_to_host, nat_outgoing)
    steps: list[Step] = [
        Apply(
            f"calico {CALICO.version} ({encapsulation})",
            f"{CALICO.path().relative_to(REPO_ROOT)} + overlay {CALICO_MODES[encapsulation]} pool {pod_subnet}"
            + (f" {calico_settings}" if calico_settings else ""),
            tuple(mirror_images(calico_manifest(encapsulation, pod_subnet, endpoint_to_host, nat_outgoing),
                                image_registry)),
        ),
        Wait("daemonset", "calico-node", "kube-system", timeout),
        Wait("deployment", "calico-kube-controllers", "kube-system", timeout),
        Wait("nodes-ready", "nodes", None, timeout),
    ]
    spec = kube_proxy or KubeProxySpec()
    if spec != KubeProxySpec():
        steps[:0] = [KubeProxySettings(spec.masqueradeAll, spec.detects_local, spec.nodePortAddresses, pod_subnet,
                                       proxy_tag(spec), timeout),
                     Wait("daemonset", "kube-proxy", "kube-system", timeout)]
    if encapsulation in TUNNEL_ANNOTATION:
        steps.append(Wait("node-annotation", TUNNEL_ANNOTATION[encapsulation], None, timeout))
    pool = expected_ippool(encapsulation, pod_subnet, nat_outgoing)["spec"]
    steps.append(Wait("ippool", "default-ipv4-ippool", None, timeout,
                      {k: pool[k] for k in ("cidr", "ipipMode", "vxlanMode", "natOutgoing")}))
    if load_balancer == "metallb":
        steps += [
            Apply(
                f"metallb {METALLB.version}",
                str(METALLB.path().relative_to(REPO_ROOT)),
                tuple(mirror_images(vendored_documents(METALLB), image_registry)),
            ),
            Wait("deployment", "controller", "metallb-system", timeout),
            Wait("daemonset", "speaker", "metallb-system", timeout),
            Apply(
                f"metallb pool {lb_range(kind_subnet)}",
                f"generated from the kind network {kind_subnet}",
                tuple(metallb_objects(kind_subnet)),
                until_admitted=timeout,
            ),
        ]
        lb_addon = METALLB
    elif load_balancer == "openelb":
        steps += [
            Apply(
                f"openelb {OPENELB.version} (layer2)",
                f"{OPENELB.path().relative_to(REPO_ROOT)} + speaker --enable-layer2=true",
                tuple(mirror_images(openelb_manifest(), image_registry)),
            ),
            Wait("job", "openelb-admission-create", "openelb-system", timeout),
            Wait("job", "openelb-admission-patch", "openelb-system", timeout),
            Wait("deployment", "openelb-controller", "openelb-system", timeout),
            Wait("daemonset", "openelb-speaker", "openelb-system", timeout),
            Apply(
                f"openelb eip {lb_range(kind_subnet)}",
                f"generated from the kind network {kind_subnet}",
                tuple(openelb_objects(kind_subnet)),
                until_admitted=timeout,
            ),
        ]
        lb_addon = OPENELB
    else:
        raise ValueError(f"no kind install for load balancer {load_balancer!r}")
    steps.append(Apply("netiso marker", "generated: add-ons installed", (marker(cluster, config_hash),)))
    # only the manifests applied here, whose pods name their images by tag (a loaded copy serves them)
    images = [
        *images_in_manifest(_vendored_text(CALICO.path())),
        *images_in_manifest(_vendored_text(lb_addon.path())),
    ]
    images = [mirror_reference(pinned(i), image_registry) for i in images]
    return InstallPlan(encapsulation, load_balancer, tuple(steps), tuple(dict.fromkeys(images)), (INGRESS_NGINX_REASON,))


IMAGE_DIGESTS = ADDON_DIR / "image-digests.yaml"


def image_digests() -> dict[str, str]:
    """``REPO:TAG -> sha256:...`` for add-on images upstream names by tag (cluster-configs/addons/image-digests.yaml)."""
    data = yaml.safe_load(IMAGE_DIGESTS.read_text(encoding="utf-8")) or {}
    return {ref: entry["digest"] for ref, entry in (data.get("images") or {}).items()}


def pinned(ref: str) -> str:
    """``ref`` with its locked digest (pulled by digest, loaded under the tag the manifest names).

    >>> pinned("quay.io/calico/node:v3.32.1").split("@")[1][:14]
    'sha256:7f874b3'
    >>> pinned("registry.k8s.io/x:1@sha256:ab")
    'registry.k8s.io/x:1@sha256:ab'
    """
    if "@" in ref:
        return ref
    digest = image_digests().get(ref)
    return f"{ref}@{digest}" if digest else ref


def object_file_name(index: int, doc: dict[str, Any], width: int = 2) -> str:
    """``NN-<kind>-<name>.yaml`` (kind lower-cased), as the kube backend's dry-run names files, except
    that the name is reduced to ``[a-z0-9.-]``: upstream names such as ``metallb-system:controller``
    carry colons.

    >>> object_file_name(3, {"kind": "IPAddressPool", "metadata": {"name": "netiso-pool"}})
    '03-ipaddresspool-netiso-pool.yaml'
    """
    name = re.sub(r"[^a-z0-9.-]+", "-", str(doc.get("metadata", {}).get("name", "unnamed")).lower())
    return f"{index:0{width}d}-{str(doc.get('kind', 'object')).lower()}-{name}.yaml"


def dump_documents(docs: Sequence[dict[str, Any]]) -> str:
    return yaml.dump_all(list(docs), Dumper=_Dumper, sort_keys=False)
