"""Workload controllers and add-on agents for a fake cluster that starts empty, as a fresh kind cluster does.

Why: the kind backend installs Calico, MetalLB or OpenELB by applying their vendored manifests and
then waits for them (DaemonSets ready, Deployments Available, Jobs Complete, nodes Ready and
annotated with their tunnel address, the IPPool as the mode wants it). Against an API server that
only stores what it is sent, those waits could never pass; a real cluster passes them because its
controllers and the add-ons' agents act. This module is that acting, opt-in
(``FakeCluster.enable_workload_controllers``) so the seeded-cluster tests keep their hand-made pods.

Emulates, synchronously on every write of the object:
* DaemonSet controller (k8s pkg/controller/daemon): one pod per node whose NoSchedule taints the
  template tolerates, named ``<ds>-<5 chars>``, owned by the DaemonSet, labels of the template plus
  ``controller-revision-hash``/``pod-template-generation``; status ``desiredNumberScheduled``,
  ``currentNumberScheduled``, ``numberReady``, ``numberAvailable``, ``updatedNumberScheduled``,
  ``observedGeneration``. A changed template replaces the pods (a rolling update done at once).
* Deployment controller (ReplicaSet folded in): ``spec.replicas`` pods ``<dep>-<hash>-<5 chars>``
  scheduled by the fake scheduler; status replicas/ready/available/updated and the ``Available``
  condition.
* Job controller: ``Complete`` (and ``SuccessCriteriaMet``) with ``succeeded: 1``; no pods are run.
* calico-node (libcalico-go startup + the allocateip reconciler): once the ``calico-node`` DaemonSet's
  pods are ready, creates ``default-ipv4-ippool`` from the container's ``CALICO_IPV4POOL_CIDR`` /
  ``_IPIP`` / ``_VXLAN`` env (only when no pool exists, as calico-node does), annotates every node
  ``projectcalico.org/IPv4Address`` and, per the pool's mode, ``IPv4IPIPTunnelAddr`` or
  ``IPv4VXLANTunnelAddr`` + ``VXLANTunnelMACAddr`` (the node's podCIDR network address: the fake
  scheduler's convention, real Calico takes one from its IPAM block), and turns the nodes' ``Ready``
  condition True (the kubelet reports NetworkReady once the CNI config exists).
* MetalLB/OpenELB: the load-balancer emulation of controllers.py starts serving when the add-on's
  controller Deployment is Available (``controller`` in metallb-system, ``openelb-controller`` in
  openelb-system). OpenELB's layer2 speakers log ``[<node>] wins the right to announce the IP
  address <vip>`` (openelb pkg/speaker/layer2) for the node whose sha256(node + "#" + vip) sorts
  first among all nodes (Local: nodes with a ready endpoint); the pod log endpoint serves it.

Knowingly differs: everything happens at once; no ReplicaSet objects, no ControllerRevisions, no
Job pods, no IPAM blocks (BlockAffinities); webhooks configured by the manifests are stored, never
called; pods of the add-ons get pod IPs from the node's podCIDR even before the CNI is up.
"""

from __future__ import annotations

import hashlib
from typing import Any

from .controllers import Controllers, _internal_ip, _ready
from .resources import Resource
from .store import Store, now

Obj = dict[str, Any]
TUNNEL = {"ipip": "projectcalico.org/IPv4IPIPTunnelAddr", "vxlan": "projectcalico.org/IPv4VXLANTunnelAddr"}
LB_CONTROLLERS = {("metallb-system", "controller"): "metallb", ("openelb-system", "openelb-controller"): "openelb"}


def _suffix(*parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:5]


def _tolerates(template: Obj, node: Obj) -> bool:
    tolerations = template.get("tolerations") or []
    if any(t.get("operator") == "Exists" and not t.get("key") for t in tolerations):
        return True
    keys = {t.get("key") for t in tolerations}
    return all(t.get("effect") != "NoSchedule" or t.get("key") in keys for t in (node.get("spec") or {}).get("taints") or [])


class WorkloadControllers:
    """Registered on a Store next to :class:`Controllers`; ``pod_logs`` is the server's log table."""

    def __init__(self, store: Store, controllers: Controllers, pod_logs: dict[tuple[str, str], str]) -> None:
        self.store = store
        self.controllers = controllers
        self.pod_logs = pod_logs
        self._busy = False
        store.on_change.append(self._react)

    def _res(self, api_version: str, plural: str) -> Resource:
        group, _, version = api_version.rpartition("/")
        res = self.store.catalogue().find(group, version, plural)
        assert res is not None, plural
        return res

    # -- dispatch -----------------------------------------------------------------------------
    def _react(self, kind: str, res: Resource, obj: Obj) -> None:
        if self._busy:
            return
        key = (res.group, res.plural)
        if kind == "DELETED" or key not in (("apps", "daemonsets"), ("apps", "deployments"), ("batch", "jobs"),
                                            ("", "services")):
            return
        self._busy = True
        try:
            if key == ("", "services"):
                self._openelb_logs()
                return
            meta = obj["metadata"]
            status = obj.get("status") or {}
            if status.get("observedGeneration") == meta.get("generation"):
                return  # our own status write, or a write that changed nothing we act on
            if key == ("apps", "daemonsets"):
                self._daemonset(res, obj)
                if meta["name"] == "calico-node":
                    self._calico_node(obj)
            elif key == ("apps", "deployments"):
                self._deployment(res, obj)
            else:
                self._job(res, obj)
        finally:
            self._busy = False

    # -- pods of a controller -----------------------------------------------------------------
    def _owned(self, namespace: str, kind: str, name: str) -> list[Obj]:
        return self.store.list(self._res("v1", "pods"), namespace, lambda p: any(
            o.get("kind") == kind and o.get("name") == name for o in p["metadata"].get("ownerReferences") or []))

    def _replace_pods(self, owner: Obj, owner_kind: str, wanted: list[tuple[str, str | None]],
                      extra_labels: dict[str, str]) -> list[Obj]:
        """Delete the owner's pods, create ``wanted`` (name, node or None = let the scheduler pick)."""
        meta = owner["metadata"]
        ns = meta["namespace"]
        pods = self._res("v1", "pods")
        for old in self._owned(ns, owner_kind, meta["name"]):
            self.store.delete(pods, ns, old["metadata"]["name"])
        template = (owner.get("spec") or {}).get("template") or {}
        made = []
        for name, node in wanted:
            spec = dict(template.get("spec") or {})
            if node is not None:
                spec["nodeName"] = node
            pod = {"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": name, "namespace": ns,
                                "labels": {**((template.get("metadata") or {}).get("labels") or {}), **extra_labels},
                                "ownerReferences": [{"apiVersion": owner["apiVersion"], "kind": owner_kind,
                                                     "name": meta["name"], "uid": meta.get("uid"), "controller": True,
                                                     "blockOwnerDeletion": True}]},
                   "spec": spec}
            made.append(self.store.create(pods, ns, pod))
        return made

    def _write_status(self, res: Resource, obj: Obj, status: Obj) -> None:
        meta = obj["metadata"]
        status["observedGeneration"] = meta.get("generation")
        self.store.replace(res, meta["namespace"], meta["name"], {**obj, "status": status}, "status")

    @staticmethod
    def daemon_pod_name(daemonset: str, node: str, generation: int = 1) -> str:
        """The name of the pod this emulation gives ``daemonset`` on ``node`` (for ``pod_never_ready``)."""
        return f"{daemonset}-{_suffix(daemonset, node, str(generation))}"

    def _daemonset(self, res: Resource, ds: Obj) -> None:
        name = ds["metadata"]["name"]
        template = ((ds.get("spec") or {}).get("template") or {}).get("spec") or {}
        nodes = [n for n in self.store.list(self._res("v1", "nodes"), None) if _tolerates(template, n)]
        gen = str(ds["metadata"].get("generation") or 1)
        pods = self._replace_pods(ds, "DaemonSet", [(self.daemon_pod_name(name, n["metadata"]["name"], int(gen)),
                                                     n["metadata"]["name"]) for n in nodes],
                                  {"controller-revision-hash": _suffix(name, gen) + "f9c", "pod-template-generation": gen})
        n, ready = len(pods), sum(1 for p in pods if _ready(p))
        self._write_status(res, ds, {"currentNumberScheduled": n, "desiredNumberScheduled": n, "numberAvailable": ready,
                                     "numberMisscheduled": 0, "numberReady": ready, "updatedNumberScheduled": n})

    def _deployment(self, res: Resource, dep: Obj) -> None:
        meta = dep["metadata"]
        replicas = int((dep.get("spec") or {}).get("replicas", 1))
        rs = _suffix(meta["name"], str(meta.get("generation") or 1)) + "c9f5"
        pods = self._replace_pods(dep, "Deployment", [(f"{meta['name']}-{rs}-{_suffix(meta['name'], str(i))}", None)
                                                      for i in range(replicas)], {"pod-template-hash": rs})
        ready = sum(1 for p in pods if _ready(p))
        available = ready >= replicas
        ts = now()
        self._write_status(res, dep, {
            "replicas": replicas, "updatedReplicas": replicas, "readyReplicas": ready, "availableReplicas": ready,
            "conditions": [{"type": "Available", "status": "True" if available else "False",
                            "reason": "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
                            "message": "Deployment has minimum availability." if available else
                            "Deployment does not have minimum availability.",
                            "lastUpdateTime": ts, "lastTransitionTime": ts}]})
        impl = LB_CONTROLLERS.get((meta["namespace"], meta["name"]))
        if impl is not None and available:
            self.controllers.lb_impl = impl

    def _job(self, res: Resource, job: Obj) -> None:
        ts = now()
        self._write_status(res, job, {"succeeded": 1, "startTime": ts, "completionTime": ts, "conditions": [
            {"type": "SuccessCriteriaMet", "status": "True", "lastProbeTime": ts, "lastTransitionTime": ts},
            {"type": "Complete", "status": "True", "lastProbeTime": ts, "lastTransitionTime": ts}]})

    # -- calico-node ----------------------------------------------------------------------------
    def _calico_node(self, ds: Obj) -> None:
        containers = (((ds.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
        env = {e.get("name"): e.get("value") for c in containers if c.get("name") == "calico-node"
               for e in c.get("env") or [] if "value" in e}
        pool_res = self.store.catalogue().find("crd.projectcalico.org", "v1", "ippools")
        if pool_res is None:
            return  # calico-node would crash-loop without its CRDs
        pools = self.store.list(pool_res, None)
        if not pools and env.get("CALICO_IPV4POOL_CIDR"):
            self.store.create(pool_res, None, {
                "apiVersion": "crd.projectcalico.org/v1", "kind": "IPPool", "metadata": {"name": "default-ipv4-ippool"},
                "spec": {"allowedUses": ["Workload", "Tunnel"], "blockSize": 26, "cidr": env["CALICO_IPV4POOL_CIDR"],
                         "ipipMode": env.get("CALICO_IPV4POOL_IPIP", "Never"),
                         "vxlanMode": env.get("CALICO_IPV4POOL_VXLAN", "Never"),
                         "natOutgoing": True, "nodeSelector": "all()"}})
            pools = self.store.list(pool_res, None)
        spec = (pools[0].get("spec") or {}) if pools else {}
        mode = "ipip" if spec.get("ipipMode") in ("Always", "CrossSubnet") else \
            "vxlan" if spec.get("vxlanMode") in ("Always", "CrossSubnet") else "direct"
        node_res = self._res("v1", "nodes")
        ready_on = {p["spec"].get("nodeName") for p in self._owned(ds["metadata"]["namespace"], "DaemonSet", "calico-node")
                    if _ready(p)}
        for node in self.store.list(node_res, None):
            name = node["metadata"]["name"]
            if name not in ready_on:
                continue
            ann = dict(node["metadata"].get("annotations") or {})
            ann["projectcalico.org/IPv4Address"] = f"{_internal_ip(node)}/16"
            cidr = (node.get("spec") or {}).get("podCIDR") or ""
            if mode in TUNNEL and cidr:
                ann[TUNNEL[mode]] = cidr.split("/")[0]
                if mode == "vxlan":
                    h = hashlib.sha256(name.encode()).hexdigest()
                    ann["projectcalico.org/VXLANTunnelMACAddr"] = "66:" + ":".join(h[i:i + 2] for i in range(0, 10, 2))
            node = self.store.replace(node_res, None, name, {**node, "metadata": {**node["metadata"], "annotations": ann}})
            ts = now()
            conditions = [c for c in (node.get("status") or {}).get("conditions") or [] if c.get("type") != "Ready"]
            conditions.append({"type": "Ready", "status": "True", "reason": "KubeletReady",
                               "message": "kubelet is posting ready status", "lastHeartbeatTime": ts,
                               "lastTransitionTime": ts})
            self.store.replace(node_res, None, name, {**node, "status": {**node["status"], "conditions": conditions}},
                               "status")

    # -- OpenELB speakers -----------------------------------------------------------------------
    def _openelb_logs(self) -> None:
        if self.controllers.lb_impl != "openelb":
            return
        pods = self._res("v1", "pods")
        speakers = self.store.list(pods, "openelb-system",
                                   lambda p: (p["metadata"].get("labels") or {}).get("component") == "speaker")
        nodes = [n["metadata"]["name"] for n in self.store.list(self._res("v1", "nodes"), None)]
        lines = []
        for svc in self.store.list(self._res("v1", "services"), None):
            for ing in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
                vip = ing.get("ip")
                endpoint_nodes = {p["spec"].get("nodeName") for p in self.controllers._endpoints(svc) if _ready(p)}
                if not vip or not endpoint_nodes:
                    continue
                eligible = [n for n in nodes if svc["spec"].get("externalTrafficPolicy") != "Local" or n in endpoint_nodes]
                if eligible:
                    winner = min(eligible, key=lambda n: hashlib.sha256(f"{n}#{vip}".encode()).digest())
                    lines.append(f"I0101 00:00:00.000000       1 memberlist.go:110] [{winner}] wins the right to "
                                 f"announce the IP address {vip}")
        for pod in speakers:
            self.pod_logs[("openelb-system", pod["metadata"]["name"])] = "\n".join(lines) + ("\n" if lines else "")
