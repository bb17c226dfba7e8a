"""KubeSphere 3.4's network-isolation controller, emulated for the kube backend's controller mode.

Mirrors ks-controller-manager's nsnetworkpolicy controller (kubesphere/kubesphere release-3.4,
pkg/controller/network/nsnetworkpolicy/nsnetworkpolicy_controller.go). It is written from
KubeSphere's **own unit-test fixtures** (pkg/controller/network/nsnetworkpolicy/nsnetworkpolicy_test.go,
inputs -> expected NetworkPolicy specs), never from netiso's compiler (netiso.model.tenancy is
not imported), so the backend's diff compares two independent implementations:

* ``_isolation_spec`` - fixtures "Should create ns networkisolate np correctly in workspace" and
  "... in ns" (template ``workspaceNP``): ``podSelector {}``, ``policyTypes [Ingress]``, one
  ingress rule whose peers are ``namespaceSelector {kubesphere.io/workspace: <ws>}`` (workspace
  mode) or ``{kubesphere.io/namespace: <ns>}`` (project mode), followed by one
  ``{kubesphere.io/namespace: <n>}`` peer per allowedIngressNamespaces entry (the suite sets
  ``kubesphere-monitoring-system``);
* ``_convert`` - fixtures "test func convertToK8sNP" (ipBlock peer + ports copied, policyTypes
  [Ingress]), "... with namespace" (``namespace: {name}`` -> ``namespaceSelector
  {kubesphere.io/namespace: name}``), "... with service ingress" (``service`` -> ONE peer of
  ``podSelector`` = the Service's selector AND ``namespaceSelector {kubesphere.io/namespace: <svc ns>}``,
  no ports), "... with service egress" (the same peer in a rule whose ports are the Service's
  ``port``/``protocol`` - 80, not targetPort 9376 - and policyTypes [Egress]);
* switches - fixtures "test func namespaceNetworkIsolateEnabled" (annotation
  ``kubesphere.io/network-isolate: enabled``) and "test func workspaceNetworkIsolationEnabled"
  (``spec.networkIsolation: true``).

What the fixtures do not cover is taken from the controller source itself and says so:
``syncNs`` (only namespaces labelled ``kubesphere.io/workspace`` whose Workspace exists; project
annotation before workspace isolation; ``DeleteCollection`` of the namespace's NSNPs in workspace
mode and when neither is on, and the isolation policy deleted in the latter), the DNS egress
rules of ``shouldAddDNSRule`` (169.254.25.10/32 TCP+UDP 53, then the kube-system/kube-dns,
else coredns, Service peer with its ports), ``generateNodeRule`` (every node's
``kubesphere.io/snat-node-ips``, split on ``;``, sorted, /32), and ``syncNSNP`` converting an
NSNP in any namespace.

Knowingly differs: it reconciles synchronously after each write (the real controller works from
informer queues with a rate limiter), and ``divergence`` lets a test make it write something
else on purpose (a policy whose spec the backend must report as differing).
"""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from .seed import crd

Obj = dict[str, Any]
ROOT = Path(__file__).resolve().parents[3]
CRD_DIR = ROOT / "cluster-configs" / "kubesphere" / "release-3.4"
NS_LABEL = "kubesphere.io/namespace"
WS_LABEL = "kubesphere.io/workspace"
ISOLATE = "kubesphere.io/network-isolate"
SNAT = "kubesphere.io/snat-node-ips"
POLICY = "nsnp-network-isolate"


def install(cluster: Any, *, version: str = "v3.4.1", isolation: bool = True,
            allowed_ingress_namespaces: tuple[str, ...] = (), with_controller: bool = True) -> EmulatedNsnpController | None:
    """Seed a KubeSphere 3.x cluster: CRDs (vendored), kubesphere-system, kubesphere-config, ks-installer."""
    for path in sorted(CRD_DIR.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "CustomResourceDefinition":
                cluster.add({**doc, "metadata": {"name": doc["metadata"]["name"]}})
    cluster.add(crd("installer.kubesphere.io", "ClusterConfiguration", "clusterconfigurations", ["v1alpha1"],
                    namespaced=True))
    network = {"enableNetworkPolicy": isolation,
               "nsnpOptions": {"allowedIngressNamespaces": list(allowed_ingress_namespaces)}}
    cluster.add({"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "kubesphere-config", "namespace": "kubesphere-system"},
                 "data": {"kubesphere.yaml": yaml.safe_dump({"network": network})}})
    cluster.add({"apiVersion": "installer.kubesphere.io/v1alpha1", "kind": "ClusterConfiguration",
                 "metadata": {"name": "ks-installer", "namespace": "kubesphere-system", "labels": {"version": version}},
                 "spec": {"network": {"networkpolicy": {"enabled": isolation}}}})
    if not with_controller:
        return None
    return EmulatedNsnpController(cluster, allowed_ingress_namespaces)


class EmulatedNsnpController:
    """Registered on the cluster's store; writes ``nsnp-*`` NetworkPolicies after every relevant write."""

    WATCHED = {("", "namespaces"), ("", "services"), ("", "nodes"), ("tenant.kubesphere.io", "workspaces"),
               ("network.kubesphere.io", "namespacenetworkpolicies")}

    def __init__(self, cluster: Any, allowed_ingress_namespaces: tuple[str, ...] = ()) -> None:
        self.cluster = cluster
        self.store = cluster.store
        self.allowed = tuple(allowed_ingress_namespaces)
        self.divergence: Callable[[str, str, Obj], Obj] | None = None  # (namespace, name, spec) -> spec written
        self._busy = False
        self.store.on_change.append(self._react)

    def _res(self, api_version: str, kind: str) -> Any:
        return self.cluster._resource(api_version, kind)

    def _react(self, _kind: str, res: Any, _obj: Obj) -> None:
        if self._busy or (res.group, res.plural) not in self.WATCHED:
            return
        self._busy = True
        try:
            # NSNP deletions requeue their namespace (syncNSNP -> nsQueue.Add): a second pass is
            # that requeue, so the DNS rule of the soon-deleted NSNPs does not survive
            self.reconcile()
            self.reconcile()
        finally:
            self._busy = False

    # -- the controller ---------------------------------------------------------------------
    def reconcile(self) -> None:
        namespaces = self.store.list(self._res("v1", "Namespace"), None)
        for ns in namespaces:
            if (ns.get("status") or {}).get("phase") == "Terminating":
                continue
            self._sync_ns(ns)
        nsnp_res = self._res("network.kubesphere.io/v1alpha1", "NamespaceNetworkPolicy")
        for ns in namespaces:
            if (ns.get("status") or {}).get("phase") == "Terminating":
                continue
            for nsnp in self.store.list(nsnp_res, ns["metadata"]["name"]):  # syncNSNP: any namespace
                spec = self._convert(nsnp)
                if spec is not None:
                    self._set(ns["metadata"]["name"], "nsnp-" + nsnp["metadata"]["name"], spec)

    def _sync_ns(self, ns: Obj) -> None:
        name = ns["metadata"]["name"]
        ws_name = (ns["metadata"].get("labels") or {}).get(WS_LABEL)
        if not ws_name:
            return
        ws = self.store.get(self._res("tenant.kubesphere.io/v1alpha1", "Workspace"), None, ws_name)
        if ws is None:
            return
        project = (ns["metadata"].get("annotations") or {}).get(ISOLATE) == "enabled"
        workspace = bool((ws.get("spec") or {}).get("networkIsolation"))
        nsnp_res = self._res("network.kubesphere.io/v1alpha1", "NamespaceNetworkPolicy")
        nsnps = self.store.list(nsnp_res, name)
        if not project:
            for nsnp in nsnps:  # DeleteCollection
                self.store.delete(nsnp_res, name, nsnp["metadata"]["name"])
                self._delete(name, "nsnp-" + nsnp["metadata"]["name"])
        if not project and not workspace:
            self._delete(name, POLICY)
            return
        spec = self._isolation_spec(ws_name, name, match_workspace=not project)
        if any((n.get("spec") or {}).get("egress") for n in nsnps):
            spec["egress"] = [{"to": [{"ipBlock": {"cidr": "169.254.25.10/32"}}],
                               "ports": [{"protocol": "TCP", "port": 53}, {"protocol": "UDP", "port": 53}]}]
            dns = self._service("kube-system", "kube-dns") or self._service("kube-system", "coredns")
            if dns is not None and (dns.get("spec") or {}).get("selector"):
                spec["egress"].append(self._service_rule("kube-system", dns))
            spec["policyTypes"].append("Egress")
        node_rule = self._node_rule()
        if node_rule:
            spec["ingress"].append({"from": node_rule})
        self._set(name, POLICY, spec)

    def _isolation_spec(self, workspace: str, namespace: str, *, match_workspace: bool) -> Obj:
        first = {WS_LABEL: workspace} if match_workspace else {NS_LABEL: namespace}
        peers = [{"namespaceSelector": {"matchLabels": first}}]
        peers += [{"namespaceSelector": {"matchLabels": {NS_LABEL: n}}} for n in self.allowed]
        return {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{"from": peers}]}

    def _node_rule(self) -> list[Obj]:
        ips: list[str] = []
        for node in self.store.list(self._res("v1", "Node"), None):
            value = (node["metadata"].get("annotations") or {}).get(SNAT, "")
            if value:
                ips.extend(value.split(";"))
        out = []
        for ip in sorted(ips):
            try:
                addr = ipaddress.ip_address(ip)
            except ValueError:
                continue
            out.append({"ipBlock": {"cidr": f"{ip}/{addr.max_prefixlen}"}})
        return out

    def _convert(self, nsnp: Obj) -> Obj | None:
        src = nsnp.get("spec") or {}
        spec: Obj = {"podSelector": {}, "policyTypes": []}
        if src.get("egress") is not None:
            spec["egress"] = []
            for rule in src["egress"]:
                plain = []
                for peer in rule.get("to") or []:
                    if peer.get("service") is not None:
                        ref = peer["service"]
                        svc = self._service(ref["namespace"], ref["name"])
                        if svc is None or not (svc.get("spec") or {}).get("selector"):
                            return None
                        spec["egress"].append(self._service_rule(ref["namespace"], svc))
                        continue
                    converted = self._peer(peer)
                    if converted is None:
                        return None
                    plain.append(converted)
                if plain:
                    entry: Obj = {"to": plain}
                    if rule.get("ports"):
                        entry["ports"] = copy.deepcopy(rule["ports"])
                    spec["egress"].append(entry)
            spec["policyTypes"].append("Egress")
        if src.get("ingress") is not None:
            spec["ingress"] = []
            for rule in src["ingress"]:
                peers = []
                for peer in rule.get("from") or []:
                    if peer.get("service") is not None:
                        ref = peer["service"]
                        svc = self._service(ref["namespace"], ref["name"])
                        if svc is None or not (svc.get("spec") or {}).get("selector"):
                            return None
                        peers.append(self._service_peer(ref["namespace"], svc))
                        continue
                    converted = self._peer(peer)
                    if converted is None:
                        return None
                    peers.append(converted)
                entry = {"from": peers}
                if rule.get("ports"):
                    entry["ports"] = copy.deepcopy(rule["ports"])
                spec["ingress"].append(entry)
            spec["policyTypes"].append("Ingress")
        return spec

    @staticmethod
    def _peer(peer: Obj) -> Obj | None:
        if peer.get("namespace") is not None:
            return {"namespaceSelector": {"matchLabels": {NS_LABEL: peer["namespace"]["name"]}}}
        if peer.get("ipBlock") is not None:
            return {"ipBlock": copy.deepcopy(peer["ipBlock"])}
        return None

    @staticmethod
    def _service_peer(namespace: str, svc: Obj) -> Obj:
        return {"podSelector": {"matchLabels": dict(svc["spec"]["selector"])},
                "namespaceSelector": {"matchLabels": {NS_LABEL: namespace}}}

    def _service_rule(self, namespace: str, svc: Obj) -> Obj:
        ports = [{"protocol": p.get("protocol", "TCP"), "port": p["port"]} for p in svc["spec"].get("ports") or []]
        return {"to": [self._service_peer(namespace, svc)], "ports": ports}

    def _service(self, namespace: str, name: str) -> Obj | None:
        return self.store.get(self._res("v1", "Service"), namespace, name)

    # -- the provider (ns_k8s.go): create or replace nsnp-* NetworkPolicies ------------------
    def _set(self, namespace: str, name: str, spec: Obj) -> None:
        if self.divergence is not None:
            spec = self.divergence(namespace, name, copy.deepcopy(spec))
        res = self._res("networking.k8s.io/v1", "NetworkPolicy")
        body = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": {"name": name, "namespace": namespace}, "spec": spec}
        old = self.store.get(res, namespace, name)
        if old is None:
            self.store.create(res, namespace, body)
        elif old.get("spec") != spec:
            self.store.replace(res, namespace, name, {**body, "metadata": {**old["metadata"]}})

    def _delete(self, namespace: str, name: str) -> None:
        res = self._res("networking.k8s.io/v1", "NetworkPolicy")
        if self.store.get(res, namespace, name) is not None:
            self.store.delete(res, namespace, name)
