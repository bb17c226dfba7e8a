"""Seed a fake cluster with what a kind cluster running Calico and MetalLB or OpenELB returns.

Why: the kube backend's preflight and discovery read nodes, Calico's IPPool and node annotations,
kube-proxy's configuration, and the load balancer's pools; tests are only worth something when
those objects have the shape a real cluster gives them.

Mirrors (shapes checked against upstream sources):
* Node (k8s.io/api core/v1 types.go, as kind v0.2x + kubeadm leave it): labels
  ``kubernetes.io/hostname``, ``kubernetes.io/os``, ``kubernetes.io/arch`` (+ ``beta.`` forms), on
  the control plane ``node-role.kubernetes.io/control-plane`` and
  ``node.kubernetes.io/exclude-from-external-load-balancers`` (kind keeps it), taint
  ``node-role.kubernetes.io/control-plane:NoSchedule``; ``status.addresses`` InternalIP
  (172.18.0.2, .3, ... in node order: only strings, nothing listens there) and Hostname;
  ``status.conditions`` with Ready; ``spec.podCIDR`` 192.168.<i>.0/24 (kind's podSubnet set to the
  Calico pool); Calico's node annotations written by calico-node (libcalico-go/lib/backend/k8s/
  conversion: ``projectcalico.org/IPv4Address`` ip/16, ``projectcalico.org/IPv4IPIPTunnelAddr`` for
  IPIP, ``projectcalico.org/IPv4VXLANTunnelAddr`` + ``projectcalico.org/VXLANTunnelMACAddr`` for
  VXLAN, no tunnel annotation for direct/BGP).
* Calico ``crd.projectcalico.org/v1`` IPPool ``default-ipv4-ippool`` (libcalico-go api v3
  IPPoolSpec: cidr, blockSize 26, ipipMode/vxlanMode Always|Never, natOutgoing, nodeSelector
  ``all()``, allowedUses) and the Calico CRDs, so discovery lists the group. With
  ``calico_api="projectcalico.org/v3"`` instead: Calico v3.32's native v3 CRDs
  (projectcalico/calico manifests/calico-v3-crds.yaml: the same kinds, group
  ``projectcalico.org``, version ``v3``, cluster-scoped but NetworkPolicy/NetworkSet), no
  ``crd.projectcalico.org`` group at all, the pool in v3, and one confirmed ``BlockAffinity``
  per node (``<node>-192-168-<i>-0-26``, the /26 at the start of the node's podCIDR, holding its
  tunnel address and first pods). Those v3 CRDs are permissive here (the upstream manifest,
  735 kB, is not vendored): names, scope and version are upstream's, the schemas are not.
* kube-system as kind + the Calico manifest leave it: ConfigMap ``kube-proxy`` with ``config.conf``
  (a KubeProxyConfiguration with ``mode`` written explicitly) and ``kubeconfig.conf``; DaemonSets
  ``kube-proxy`` and ``calico-node`` with one hostNetwork pod per node (calico-node's container
  carries the vendored calico.yaml's ``envFrom``/``env``, FELIX_DEFAULTENDPOINTTOHOSTACTION=ACCEPT
  among them) and FelixConfiguration ``default`` as calico-node's startup writes it; Deployment
  ``calico-kube-controllers``; Service ``kube-dns`` (10.96.0.10, selector ``k8s-app: kube-dns``,
  ports dns 53/UDP, dns-tcp 53/TCP, metrics 9153/TCP) and its CoreDNS pods.
* MetalLB's native manifest (v0.15/v0.16): namespace ``metallb-system``, the metallb.io CRDs (IPAddressPool,
  L2Advertisement, ServiceL2Status v1beta1; BGPPeer v1beta2), an IPAddressPool
  172.18.255.200-172.18.255.250 and an L2Advertisement naming it, controller Deployment and
  speaker DaemonSet with pods labelled ``app: metallb`` / ``component: speaker``.
* OpenELB v0.6.0: namespace ``openelb-system``, the ``network.kubesphere.io`` CRDs (Eip v1alpha2
  cluster-scoped, served with v1alpha1), a layer2 Eip on ``eth0`` annotated
  ``eip.openelb.kubesphere.io/is-default-eip: "true"`` with the status its controller writes
  (firstIP, lastIP, poolSize, ready, v4), the controller Deployment and speaker DaemonSet/pods.

The CRDs are the real ones, read from the manifests vendored under ``cluster-configs/addons/``
(Calico, MetalLB, OpenELB: their openAPIV3Schema, scopes, versions, status subresources), and the
add-on images carry the vendored versions; only when no manifest is vendored does the seed fall
back to permissive CRDs (``x-kubernetes-preserve-unknown-fields``) written here.

``seed_fresh_kind`` is the other starting point: a kind cluster as ``kind create cluster`` leaves
it with ``disableDefaultCNI`` (NotReady nodes, kube-proxy, CoreDNS, no CRDs), for tests that install
the add-ons through the API (the kind backend's installer) with the workload controllers on.

Knowingly differs: Calico's IPAM blocks are stood in for by the node's podCIDR (real
Calico hands out /26 blocks at random inside the pool); object lists are trimmed to what netiso
reads (no CoreDNS ConfigMap, no webhooks, no RBAC objects of the add-ons).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import yaml

from .felix_seed import calico_node_env, felix_default_config

Obj = dict[str, Any]
ADDONS = Path(__file__).resolve().parents[3] / "cluster-configs" / "addons"
MANIFESTS = {"calico": "calico.yaml", "metallb": "metallb-native.yaml", "openelb": "openelb.yaml"}
CP_TAINT = "node-role.kubernetes.io/control-plane"
EXCLUDE_LB = "node.kubernetes.io/exclude-from-external-load-balancers"
LB_RANGE = "172.18.255.200-172.18.255.250"
POOL_CIDR = "192.168.0.0/16"


class Seedable(Protocol):
    def add(self, obj: Obj) -> Obj: ...


def node_ip(index: int) -> str:
    return f"172.18.0.{index + 2}"


def tunnel_ip(index: int) -> str:
    return f"192.168.{index}.0"


def _mac(name: str) -> str:
    h = hashlib.sha256(name.encode()).hexdigest()
    return "66:" + ":".join(h[i:i + 2] for i in range(0, 10, 2))


def crd(group: str, kind: str, plural: str, versions: Sequence[str], namespaced: bool = False,
        status: bool = False, short_names: Sequence[str] = ()) -> Obj:
    names = {"kind": kind, "listKind": f"{kind}List", "plural": plural, "singular": kind.lower()}
    if short_names:
        names["shortNames"] = list(short_names)
    vs = []
    for i, v in enumerate(versions):
        entry: Obj = {"name": v, "served": True, "storage": i == 0,
                      "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}
        if status:
            entry["subresources"] = {"status": {}}
        vs.append(entry)
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{group}"},
            "spec": {"group": group, "names": names, "scope": "Namespaced" if namespaced else "Cluster", "versions": vs},
            "status": {"acceptedNames": names, "storedVersions": [versions[0]],
                       "conditions": [{"type": "NamesAccepted", "status": "True", "reason": "NoConflicts"},
                                      {"type": "Established", "status": "True", "reason": "InitialNamesAccepted"}]}}


@functools.cache
def vendored(addon: str) -> tuple[str, tuple[Obj, ...]]:
    """(version, CRDs) of the add-on manifest vendored under cluster-configs/addons/<addon>/<version>/,
    or ("", ()) when none is vendored; the newest version directory wins."""
    dirs = sorted(d for d in (ADDONS / addon).glob("*") if (d / MANIFESTS[addon]).is_file()) if (ADDONS / addon).is_dir() \
        else []
    if not dirs:
        return "", ()
    docs = yaml.load_all((dirs[-1] / MANIFESTS[addon]).read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    crds = tuple(d for d in docs if d and d.get("kind") == "CustomResourceDefinition")
    return dirs[-1].name, crds


def add_crds(cluster: Seedable, addon: str, fallback: list[Obj]) -> str:
    """Adds the add-on's real CRDs (vendored manifest) or, when none is vendored, the permissive ones
    given; returns the vendored version ("" when the fallback was used)."""
    version, crds = vendored(addon)
    for c in crds or fallback:
        cluster.add({**c, "metadata": {"name": c["metadata"]["name"]}})
    return version


CALICO_CRDS = [("BGPConfiguration", "bgpconfigurations", False), ("BGPPeer", "bgppeers", False),
               ("BlockAffinity", "blockaffinities", False), ("ClusterInformation", "clusterinformations", False),
               ("FelixConfiguration", "felixconfigurations", False),
               ("GlobalNetworkPolicy", "globalnetworkpolicies", False), ("GlobalNetworkSet", "globalnetworksets", False),
               ("HostEndpoint", "hostendpoints", False), ("IPAMBlock", "ipamblocks", False),
               ("IPAMConfig", "ipamconfigs", False), ("IPAMHandle", "ipamhandles", False), ("IPPool", "ippools", False),
               ("IPReservation", "ipreservations", False), ("KubeControllersConfiguration", "kubecontrollersconfigurations",
                                                            False),
               ("NetworkPolicy", "networkpolicies", True), ("NetworkSet", "networksets", True), ("Tier", "tiers", False)]


def _namespace(name: str, labels: dict[str, str] | None = None) -> Obj:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}}}


def _pod(name: str, namespace: str, node: str, labels: dict[str, str], image: str, host_network: bool,
         owner: tuple[str, str, str] | None = None, container: str | None = None) -> Obj:
    meta: Obj = {"name": name, "namespace": namespace, "labels": labels}
    if owner:
        meta["ownerReferences"] = [{"apiVersion": owner[0], "kind": owner[1], "name": owner[2], "controller": True,
                                    "blockOwnerDeletion": True, "uid": ""}]
    spec: Obj = {"nodeName": node, "containers": [{"name": container or name.rsplit("-", 1)[0], "image": image}],
                 "tolerations": [{"operator": "Exists"}]}
    if host_network:
        spec["hostNetwork"] = True
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def _suffix(*parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:5]


def _daemonset(cluster: Seedable, name: str, namespace: str, labels: dict[str, str], image: str,
               nodes: Sequence[str], host_network: bool = True, container: str | None = None,
               env_from: Sequence[Obj] = (), env: Sequence[Obj] = ()) -> None:
    n = len(nodes)
    spec_container: Obj = {"name": container or name, "image": image}
    if env_from:
        spec_container["envFrom"] = [dict(e) for e in env_from]
    if env:
        spec_container["env"] = [dict(e) for e in env]
    cluster.add({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name, "namespace": namespace,
                                                                             "labels": dict(labels)},
                 "spec": {"selector": {"matchLabels": dict(labels)},
                          "template": {"metadata": {"labels": dict(labels)},
                                       "spec": {"hostNetwork": host_network, "tolerations": [{"operator": "Exists"}],
                                                "containers": [spec_container]}}},
                 "status": {"currentNumberScheduled": n, "desiredNumberScheduled": n, "numberAvailable": n,
                            "numberMisscheduled": 0, "numberReady": n, "observedGeneration": 1,
                            "updatedNumberScheduled": n}})
    for node in nodes:
        cluster.add(_pod(f"{name}-{_suffix(name, node)}", namespace, node,
                         {**labels, "controller-revision-hash": "6b7d8c9f5", "pod-template-generation": "1"},
                         image, host_network, ("apps/v1", "DaemonSet", name), container or name))


def _deployment(cluster: Seedable, name: str, namespace: str, labels: dict[str, str], image: str,
                nodes: Sequence[str], host_network: bool = False) -> None:
    n = len(nodes)
    cluster.add({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace,
                                                                              "labels": dict(labels)},
                 "spec": {"replicas": n, "selector": {"matchLabels": dict(labels)},
                          "template": {"metadata": {"labels": dict(labels)},
                                       "spec": {"containers": [{"name": name, "image": image}]}}},
                 "status": {"availableReplicas": n, "readyReplicas": n, "replicas": n, "updatedReplicas": n,
                            "observedGeneration": 1,
                            "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}]}})
    for i, node in enumerate(nodes):
        cluster.add(_pod(f"{name}-7c65d6cfc9-{_suffix(name, str(i))}", namespace, node,
                         {**labels, "pod-template-hash": "7c65d6cfc9"}, image, host_network,
                         ("apps/v1", "ReplicaSet", f"{name}-7c65d6cfc9"), name))


def kube_proxy_config(mode: str) -> str:
    """``config.conf`` as kubeadm writes it on kind (trimmed to the fields netiso could read)."""
    return (
        "apiVersion: kubeproxy.config.k8s.io/v1alpha1\n"
        "bindAddress: 0.0.0.0\n"
        "bindAddressHardFail: false\n"
        "clientConnection:\n"
        "  acceptContentTypes: \"\"\n"
        "  burst: 0\n"
        "  contentType: \"\"\n"
        "  kubeconfig: /var/lib/kube-proxy/kubeconfig.conf\n"
        "  qps: 0\n"
        f"clusterCIDR: {POOL_CIDR}\n"
        "configSyncPeriod: 0s\n"
        "conntrack:\n"
        "  maxPerCore: 0\n"
        "  min: null\n"
        "  tcpCloseWaitTimeout: null\n"
        "  tcpEstablishedTimeout: null\n"
        "detectLocalMode: \"\"\n"
        "enableProfiling: false\n"
        "healthzBindAddress: \"\"\n"
        "hostnameOverride: \"\"\n"
        "iptables:\n"
        "  localhostNodePorts: null\n"
        "  masqueradeAll: false\n"
        "  masqueradeBit: null\n"
        "  minSyncPeriod: 1s\n"
        "  syncPeriod: 0s\n"
        "ipvs:\n"
        "  excludeCIDRs: null\n"
        "  minSyncPeriod: 0s\n"
        "  scheduler: \"\"\n"
        "  strictARP: false\n"
        "  syncPeriod: 0s\n"
        "kind: KubeProxyConfiguration\n"
        "metricsBindAddress: \"\"\n"
        f"mode: {mode}\n"
        "nodePortAddresses: null\n"
        "oomScoreAdj: null\n"
        "portRange: \"\"\n"
        "showHiddenMetricsForAlphaFeatures: null\n"
        "winkernel:\n"
        "  enableDSR: false\n"
        "  networkName: \"\"\n"
        "  sourceVip: \"\"\n"
    )


def _kube_system_core(cluster: Seedable, proxy_config: str, control_plane: str) -> None:
    """What kubeadm leaves on every kind cluster: the stock namespaces, the ``kubernetes`` Service and
    kube-proxy's ConfigMap (``proxy_config`` as its ``config.conf``, the API server on ``control_plane``)."""
    for ns in ("default", "kube-system", "kube-public", "kube-node-lease", "local-path-storage"):
        cluster.add(_namespace(ns))
    cluster.add({"apiVersion": "v1", "kind": "Service",
                 "metadata": {"name": "kubernetes", "namespace": "default",
                              "labels": {"component": "apiserver", "provider": "kubernetes"}},
                 "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.1",
                          "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]}})
    cluster.add({"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "kube-proxy", "namespace": "kube-system", "labels": {"app": "kube-proxy"}},
                 "data": {"config.conf": proxy_config,
                          "kubeconfig.conf": "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n"
                                             "    certificate-authority: /var/run/secrets/kubernetes.io/serviceaccount/ca.crt\n"
                                             f"    server: https://{control_plane}:6443\n  name: default\n"}})


def _kube_dns_service(cluster: Seedable, annotations: dict[str, str] | None = None) -> None:
    """CoreDNS's ``kube-dns`` Service at 10.96.0.10 (dns, dns-tcp, metrics)."""
    meta: Obj = {"name": "kube-dns", "namespace": "kube-system",
                 "labels": {"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true",
                            "kubernetes.io/name": "CoreDNS"}}
    if annotations:
        meta["annotations"] = dict(annotations)
    cluster.add({"apiVersion": "v1", "kind": "Service", "metadata": meta,
                 "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.10", "selector": {"k8s-app": "kube-dns"},
                          "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                                    {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                                    {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153}]}})


def node_object(name: str, index: int, encapsulation: str, calico: bool) -> Obj:
    control_plane = index == 0
    labels = {"beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
              "kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}
    annotations = {"kubeadm.alpha.kubernetes.io/cri-socket": "unix:///run/containerd/containerd.sock",
                   "node.alpha.kubernetes.io/ttl": "0", "volumes.kubernetes.io/controller-managed-attach-detach": "true"}
    spec: Obj = {"podCIDR": f"192.168.{index}.0/24", "podCIDRs": [f"192.168.{index}.0/24"],
                 "providerID": f"kind://docker/kind/{name}"}
    if control_plane:
        labels[CP_TAINT] = ""
        labels[EXCLUDE_LB] = ""
        spec["taints"] = [{"key": CP_TAINT, "effect": "NoSchedule"}]
    if calico:
        annotations["projectcalico.org/IPv4Address"] = f"{node_ip(index)}/16"
        if encapsulation == "ipip":
            annotations["projectcalico.org/IPv4IPIPTunnelAddr"] = tunnel_ip(index)
        elif encapsulation == "vxlan":
            annotations["projectcalico.org/IPv4VXLANTunnelAddr"] = tunnel_ip(index)
            annotations["projectcalico.org/VXLANTunnelMACAddr"] = _mac(name)
    ts = "2026-01-01T00:00:00Z"
    conditions = [{"type": t, "status": "False", "reason": r, "message": m, "lastHeartbeatTime": ts,
                   "lastTransitionTime": ts}
                  for t, r, m in (("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                                  ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                                  ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"))]
    conditions.append({"type": "Ready", "status": "True", "reason": "KubeletReady",
                       "message": "kubelet is posting ready status", "lastHeartbeatTime": ts, "lastTransitionTime": ts})
    resources = {"cpu": "2", "ephemeral-storage": "102626232Ki", "hugepages-2Mi": "0", "memory": "24575404Ki", "pods": "110"}
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels, "annotations": annotations},
            "spec": spec,
            "status": {"addresses": [{"type": "InternalIP", "address": node_ip(index)}, {"type": "Hostname", "address": name}],
                       "conditions": conditions, "capacity": resources, "allocatable": resources,
                       "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                       "nodeInfo": {"architecture": "amd64", "bootID": "", "containerRuntimeVersion": "containerd://2.1.1",
                                    "kernelVersion": "6.8.0-60-generic", "kubeProxyVersion": "", "kubeletVersion": "v1.33.1",
                                    "machineID": "", "operatingSystem": "linux",
                                    "osImage": "Debian GNU/Linux 12 (bookworm)", "systemUUID": ""}}}


def seed_cluster(cluster: Seedable, *, encapsulation: str = "vxlan", load_balancer: str = "metallb",
                 nodes: Sequence[str] = ("kind-control-plane", "kind-worker", "kind-worker2"),
                 proxy_mode: str = "iptables", calico: bool = True,
                 calico_api: str = "crd.projectcalico.org/v1") -> None:
    """Seed nodes, kube-system, the CNI and the load balancer (``"metallb"``, ``"openelb"`` or ``"none"``).

    ``calico_api`` picks the flavour of Calico's API: the classic CRDs or native v3 CRDs (see above)."""
    if encapsulation not in ("direct", "ipip", "vxlan"):
        raise ValueError(f"encapsulation must be direct, ipip or vxlan, not {encapsulation!r}")
    for i, name in enumerate(nodes):
        cluster.add(node_object(name, i, encapsulation, calico))
    _kube_system_core(cluster, kube_proxy_config(proxy_mode), "kind-control-plane")
    _daemonset(cluster, "kube-proxy", "kube-system", {"k8s-app": "kube-proxy"},
               "registry.k8s.io/kube-proxy:v1.33.1", nodes)
    first_worker = list(nodes[1:2] or nodes[:1])
    _kube_dns_service(cluster, {"prometheus.io/port": "9153", "prometheus.io/scrape": "true"})
    _deployment(cluster, "coredns", "kube-system", {"k8s-app": "kube-dns"}, "registry.k8s.io/coredns/coredns:v1.12.0",
                list(nodes[:1]) * 2)
    if calico and calico_api == "projectcalico.org/v3":
        calico_version = vendored("calico")[0] or "v3.32.1"
        for kind, plural, namespaced in CALICO_CRDS:
            cluster.add(crd("projectcalico.org", kind, plural, ["v3"], namespaced))
        for i, name in enumerate(nodes):
            cidr = f"192.168.{i}.0/26"
            cluster.add({"apiVersion": calico_api, "kind": "BlockAffinity",
                         "metadata": {"name": f"{name}-{cidr.replace('.', '-').replace('/', '-')}"},
                         "spec": {"node": name, "cidr": cidr, "state": "confirmed", "deleted": False, "type": "host"}})
    elif calico:
        calico_version = add_crds(cluster, "calico", [crd("crd.projectcalico.org", kind, plural, ["v1"], namespaced)
                                                      for kind, plural, namespaced in CALICO_CRDS]) or "v3.31.0"
    if calico:
        cluster.add({"apiVersion": calico_api, "kind": "IPPool",
                     "metadata": {"name": "default-ipv4-ippool"},
                     "spec": {"allowedUses": ["Workload", "Tunnel"], "blockSize": 26, "cidr": POOL_CIDR,
                              "ipipMode": "Always" if encapsulation == "ipip" else "Never",
                              "vxlanMode": "Always" if encapsulation == "vxlan" else "Never",
                              "natOutgoing": True, "nodeSelector": "all()"}})
        env_from, env = calico_node_env()
        _daemonset(cluster, "calico-node", "kube-system", {"k8s-app": "calico-node"},
                   f"quay.io/calico/node:{calico_version}", nodes, env_from=env_from, env=env)
        cluster.add(felix_default_config(calico_api))
        _deployment(cluster, "calico-kube-controllers", "kube-system", {"k8s-app": "calico-kube-controllers"},
                    f"quay.io/calico/kube-controllers:{calico_version}", first_worker)
    else:
        _daemonset(cluster, "kindnet", "kube-system", {"app": "kindnet", "k8s-app": "kindnet", "tier": "node"},
                   "docker.io/kindest/kindnetd:v20250512-df8de77b", nodes, container="kindnet-cni")
    if load_balancer == "metallb":
        seed_metallb(cluster, nodes)
    elif load_balancer == "openelb":
        seed_openelb(cluster, nodes)
    elif load_balancer != "none":
        raise ValueError(f"load_balancer must be metallb, openelb or none, not {load_balancer!r}")
    controllers = getattr(cluster, "controllers", None)
    if controllers is not None:
        controllers.lb_impl = None if load_balancer == "none" else load_balancer


def seed_metallb(cluster: Seedable, nodes: Sequence[str]) -> None:
    cluster.add(_namespace("metallb-system", {"pod-security.kubernetes.io/audit": "privileged",
                                              "pod-security.kubernetes.io/enforce": "privileged",
                                              "pod-security.kubernetes.io/warn": "privileged"}))
    version = add_crds(cluster, "metallb", [
        crd("metallb.io", kind, plural, versions, namespaced=True, status=True)
        for kind, plural, versions in (("IPAddressPool", "ipaddresspools", ["v1beta1"]),
                                       ("L2Advertisement", "l2advertisements", ["v1beta1"]),
                                       ("BGPAdvertisement", "bgpadvertisements", ["v1beta1"]),
                                       ("BGPPeer", "bgppeers", ["v1beta2", "v1beta1"]),
                                       ("BFDProfile", "bfdprofiles", ["v1beta1"]), ("Community", "communities", ["v1beta1"]),
                                       ("ServiceL2Status", "servicel2statuses", ["v1beta1"]),
                                       ("ServiceBGPStatus", "servicebgpstatuses", ["v1beta1"]))]) or "v0.15.3"
    cluster.add({"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
                 "metadata": {"name": "kind-pool", "namespace": "metallb-system"},
                 "spec": {"addresses": [LB_RANGE], "autoAssign": True, "avoidBuggyIPs": False}})
    cluster.add({"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
                 "metadata": {"name": "kind-l2", "namespace": "metallb-system"},
                 "spec": {"ipAddressPools": ["kind-pool"]}})
    _deployment(cluster, "controller", "metallb-system", {"app": "metallb", "component": "controller"},
                f"quay.io/metallb/controller:{version}", list(nodes[1:2] or nodes[:1]))
    _daemonset(cluster, "speaker", "metallb-system", {"app": "metallb", "component": "speaker"},
               f"quay.io/metallb/speaker:{version}", nodes)


def seed_openelb(cluster: Seedable, nodes: Sequence[str]) -> None:
    cluster.add(_namespace("openelb-system"))
    version = add_crds(cluster, "openelb", [crd("network.kubesphere.io", kind, plural, ["v1alpha2", "v1alpha1"], status=True)
                                            for kind, plural in (("Eip", "eips"), ("BgpConf", "bgpconfs"),
                                                                 ("BgpPeer", "bgppeers"))]) or "v0.6.0"
    cluster.add({"apiVersion": "network.kubesphere.io/v1alpha2", "kind": "Eip",
                 "metadata": {"name": "eip-pool", "annotations": {"eip.openelb.kubesphere.io/is-default-eip": "true"}},
                 "spec": {"address": LB_RANGE, "protocol": "layer2", "interface": "eth0", "disable": False},
                 "status": {"firstIP": LB_RANGE.split("-")[0], "lastIP": LB_RANGE.split("-")[1], "poolSize": 51,
                            "ready": True, "v4": True}})
    _deployment(cluster, "openelb-controller", "openelb-system", {"app": "openelb", "component": "controller"},
                f"kubesphere/openelb-controller:{version}", list(nodes[1:2] or nodes[:1]))
    _daemonset(cluster, "openelb-speaker", "openelb-system", {"app": "openelb", "component": "speaker"},
               f"kubesphere/openelb-speaker:{version}", nodes)


def seed_fresh_kind(cluster: Any, name: str = "kind", *, workers: int = 2, pod_subnet: str = "100.64.0.0/16",
                    proxy_mode: str = "iptables") -> list[str]:
    """A kind cluster as ``kind create cluster`` leaves it with ``disableDefaultCNI: true``: nodes
    ``<name>-control-plane``, ``<name>-worker``, ``<name>-worker2``... NotReady (no CNI yet: the
    kubelet's ``NetworkPluginNotReady``), podCIDRs cut as /24s from ``pod_subnet`` by
    kube-controller-manager, kube-system with kube-proxy (ConfigMap + DaemonSet), the kube-dns
    Service and the CoreDNS Deployment; no Calico, no CRDs, no load balancer. The workload
    controllers are switched on first (``FakeCluster.enable_workload_controllers``), so what the
    kind backend's install applies is acted on as a real cluster would. Returns the node names.

    Knowingly differs: CoreDNS pods run at once (a real one waits for the CNI).
    """
    import ipaddress

    cluster.enable_workload_controllers()
    names = [f"{name}-control-plane"] + [f"{name}-worker{'' if i == 1 else i}" for i in range(1, workers + 1)]
    subnets = ipaddress.ip_network(pod_subnet).subnets(new_prefix=24)
    for i, node in enumerate(names):
        obj = node_object(node, i, "direct", calico=False)
        cidr = str(next(subnets))
        obj["spec"].update(podCIDR=cidr, podCIDRs=[cidr])
        for cond in obj["status"]["conditions"]:
            if cond["type"] == "Ready":
                cond.update(status="False", reason="KubeletNotReady",
                            message="container runtime network not ready: NetworkReady=false "
                                    "reason:NetworkPluginNotReady message:Network plugin returns error: "
                                    "cni plugin not initialized")
        cluster.add(obj)
    _kube_system_core(cluster, kube_proxy_config(proxy_mode).replace(POOL_CIDR, pod_subnet), f"{name}-control-plane")
    labels = {"k8s-app": "kube-proxy"}
    cluster.add({"apiVersion": "apps/v1", "kind": "DaemonSet",
                 "metadata": {"name": "kube-proxy", "namespace": "kube-system", "labels": dict(labels)},
                 "spec": {"selector": {"matchLabels": dict(labels)},
                          "template": {"metadata": {"labels": dict(labels)},
                                       "spec": {"hostNetwork": True, "tolerations": [{"operator": "Exists"}],
                                                "containers": [{"name": "kube-proxy",
                                                                "image": "registry.k8s.io/kube-proxy:v1.33.1"}]}}}})
    _kube_dns_service(cluster)
    dns = {"k8s-app": "kube-dns"}
    cluster.add({"apiVersion": "apps/v1", "kind": "Deployment",
                 "metadata": {"name": "coredns", "namespace": "kube-system", "labels": dict(dns)},
                 "spec": {"replicas": 2, "selector": {"matchLabels": dict(dns)},
                          "template": {"metadata": {"labels": dict(dns)},
                                       "spec": {"tolerations": [{"key": CP_TAINT, "effect": "NoSchedule"}],
                                                "containers": [{"name": "coredns",
                                                                "image": "registry.k8s.io/coredns/coredns:v1.12.0"}]}}}})
    return names
