"""Workload controllers and add-on agents for a fake cluster that starts empty, as a fresh kind cluster does.

Why: the kind backend installs Calico, MetalLB or OpenELB by applying their vendored manifests and
then waits for them (DaemonSets ready, Deployments Available, Jobs Complete, nodes Ready and
annotated with their tunnel address, the IPPool as the mode wants it). Against an API server that
only stores what it is sent, those waits could never pass; a real cluster passes them because its
controllers and the add-ons' agents act. This module is that acting, opt-in
(``FakeCluster.enable_workload_controllers``) so the seeded-cluster tests keep their hand-made pods.

Emulates, on every write of the object when time is off (``Timing.rollout`` False, or seeding), else
one step per read of it (``step``, driven by lifecycle.py): the first read after a spec change still
shows the previous status (the controller has not synced), the next sets ``observedGeneration``, then
each read replaces one pod (its new pod starting over later reads) and recomputes the counts:
* DaemonSet controller (k8s pkg/controller/daemon): one pod per node whose NoSchedule taints the
  template tolerates, named ``<ds>-<5 chars>``, owned by the DaemonSet, labels of the template plus
  ``controller-revision-hash``/``pod-template-generation``; status ``desiredNumberScheduled``,
  ``currentNumberScheduled``, ``numberReady``, ``numberAvailable``, ``updatedNumberScheduled``,
  ``observedGeneration``. A changed template replaces the pods (at once, or one per read).
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
  condition True (the kubelet reports NetworkReady once the CNI config exists); creates FelixConfiguration
  ``default`` as its startup does (felix_seed.py).
* MetalLB/OpenELB: the load-balancer emulation of controllers.py starts serving when the add-on's
  controller Deployment is Available (``controller`` in metallb-system, ``openelb-controller`` in
  openelb-system). OpenELB's layer2 speakers log ``[<node>] wins the right to announce the IP
  address <vip>`` (openelb pkg/speaker/layer2) for the node whose sha256(node + "#" + vip) sorts
  first among all nodes - also when the Service has no ready endpoint (Cluster; getServiceNodes
  in pkg/speaker/manager.go reads the Endpoints only under Local) - and under Local among the
  nodes with a ready endpoint (none: no line); the pod log endpoint serves it.

Knowingly differs: a rollout is one pod replaced per read, whatever maxSurge/maxUnavailable say; no
ReplicaSet objects, no ControllerRevisions, no
Job pods, no IPAM blocks (BlockAffinities); webhooks configured by the manifests are stored, never
called; pods of the add-ons get pod IPs from the node's podCIDR even before the CNI is up.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from .controllers import Controllers, _internal_ip, _ready
from .felix_seed import felix_default_config
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

    def __init__(self, store: Store, controllers: Controllers, pod_logs: dict[tuple[str, str], str],
                 gradual: Callable[[], bool] = lambda: False) -> None:
        self.store = store
        self.controllers = controllers
        self.pod_logs = pod_logs
        self.gradual = gradual  # True: a write is only stored, each observation rolls out one step (``step``)
        self._lagged: set[tuple[str, str | None, str, int | None]] = set()  # specs already read once since written
        self._busy = False
        store.on_change.append(self._react)

    # -- dispatch -----------------------------------------------------------------------------
    def _react(self, kind: str, res: Resource, obj: Obj) -> None:
        if self._busy:
            return
        key = (res.group, res.plural)
        if key == ("", "pods") and self.controllers.lb_impl == "openelb" and not self._busy:
            self._busy = True  # a pod started or went: the speakers re-elect over the ready endpoints
            try:
                self._openelb_logs()
            finally:
                self._busy = False
            return
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
            if self.gradual():
                return  # the controller acts when time passes: ``step`` on each observation
            self._sync(res, obj, one_step=False)
        finally:
            self._busy = False

    def step(self, res: Resource, obj: Obj) -> None:
        """One observation of a workload: first its new spec is observed (``observedGeneration``), then
        one pod per observation is replaced, then its status follows its pods' readiness."""
        if self._busy:
            return
        self._busy = True
        try:
            status = obj.get("status") or {}
            if not self.gradual():
                self._sync(res, obj, one_step=False)  # all at once; its status follows its pods
            elif status.get("observedGeneration") != obj["metadata"].get("generation") and (res.group, res.plural) != (
                    "batch", "jobs"):
                spec_key = (res.plural, obj["metadata"].get("namespace"), obj["metadata"]["name"],
                            obj["metadata"].get("generation"))
                if spec_key not in self._lagged:  # the first read after a spec change: the controller has not
                    self._lagged.add(spec_key)    # synced yet, the status still speaks of the previous spec
                    return
                self._sync(res, obj, one_step=True, observe_only=True)
            else:
                self._sync(res, obj, one_step=True)
        finally:
            self._busy = False

    def _sync(self, res: Resource, obj: Obj, *, one_step: bool, observe_only: bool = False) -> None:
        key = (res.group, res.plural)
        if key == ("apps", "daemonsets"):
            self._daemonset(res, obj, one_step, observe_only)
            if obj["metadata"]["name"] == "calico-node":
                self._calico_node(self.store.get(res, obj["metadata"]["namespace"], obj["metadata"]["name"]) or obj)
        elif key == ("apps", "deployments"):
            self._deployment(res, obj, one_step, observe_only)
        elif not (obj.get("status") or {}).get("conditions"):
            self._job(res, obj)

    # -- pods of a controller -----------------------------------------------------------------
    def owned(self, namespace: str, kind: str, name: str) -> list[Obj]:
        """The pods a workload owns (by ownerReferences)."""
        return self._owned(namespace, kind, name)

    def _owned(self, namespace: str, kind: str, name: str) -> list[Obj]:
        return self.store.list(self.store.resource("v1", "pods"), namespace, lambda p: any(
            o.get("kind") == kind and o.get("name") == name for o in p["metadata"].get("ownerReferences") or []))

    def _replace_pods(self, owner: Obj, owner_kind: str, wanted: list[tuple[str, str | None]],
                      extra_labels: dict[str, str], one_step: bool = False) -> list[Obj]:
        """Make the owner's pods ``wanted`` (name, node or None = let the scheduler pick): all at once, or
        with ``one_step`` only one replacement (an outdated pod deleted, a wanted one created); the pods after."""
        meta = owner["metadata"]
        ns = meta["namespace"]
        pods = self.store.resource("v1", "pods")
        have = {p["metadata"]["name"]: p for p in self._owned(ns, owner_kind, meta["name"])}
        names = {n for n, _ in wanted}
        outdated = [p for n, p in sorted(have.items()) if n not in names]
        missing = [(n, node) for n, node in wanted if n not in have]
        if one_step:
            if missing:
                node = missing[0][1]
                same = [p for p in outdated if node is None or p["spec"].get("nodeName") == node]
                outdated = same[:1]
            else:
                outdated = outdated[:1]
            missing = missing[:1]
        for old in outdated:
            self.store.delete(pods, ns, old["metadata"]["name"])
        template = (owner.get("spec") or {}).get("template") or {}
        for name, node in missing:
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
            self.store.create(pods, ns, pod)
        return self._owned(ns, owner_kind, meta["name"])

    def _write_status(self, res: Resource, obj: Obj, status: Obj) -> None:
        meta = obj["metadata"]
        status["observedGeneration"] = meta.get("generation")
        self.store.replace(res, meta["namespace"], meta["name"], {**obj, "status": status}, "status")

    @staticmethod
    def daemon_pod_name(daemonset: str, node: str, generation: int = 1) -> str:
        """The name of the pod this emulation gives ``daemonset`` on ``node`` (for ``pod_never_ready``)."""
        return f"{daemonset}-{_suffix(daemonset, node, str(generation))}"

    def _daemonset(self, res: Resource, ds: Obj, one_step: bool = False, observe_only: bool = False) -> None:
        name = ds["metadata"]["name"]
        template = ((ds.get("spec") or {}).get("template") or {}).get("spec") or {}
        nodes = [n for n in self.store.list(self.store.resource("v1", "nodes"), None) if _tolerates(template, n)]
        gen = str(ds["metadata"].get("generation") or 1)
        wanted = [(self.daemon_pod_name(name, n["metadata"]["name"], int(gen)), n["metadata"]["name"]) for n in nodes]
        if observe_only:
            pods = self._owned(ds["metadata"]["namespace"], "DaemonSet", name)
        else:
            pods = self._replace_pods(ds, "DaemonSet", wanted, {"controller-revision-hash": _suffix(name, gen) + "f9c",
                                                                "pod-template-generation": gen}, one_step)
        names = {n for n, _ in wanted}
        ready = sum(1 for p in pods if _ready(p))
        updated = sum(1 for p in pods if p["metadata"]["name"] in names)
        self._write_status(res, ds, {"currentNumberScheduled": len(pods), "desiredNumberScheduled": len(wanted),
                                     "numberAvailable": ready, "numberMisscheduled": 0, "numberReady": ready,
                                     "updatedNumberScheduled": updated})

    def _deployment(self, res: Resource, dep: Obj, one_step: bool = False, observe_only: bool = False) -> None:
        meta = dep["metadata"]
        replicas = int((dep.get("spec") or {}).get("replicas", 1))
        rs = _suffix(meta["name"], str(meta.get("generation") or 1)) + "c9f5"
        wanted = [(f"{meta['name']}-{rs}-{_suffix(meta['name'], str(i))}", None) for i in range(replicas)]
        if observe_only:
            pods = self._owned(meta["namespace"], "Deployment", meta["name"])
        else:
            pods = self._replace_pods(dep, "Deployment", wanted, {"pod-template-hash": rs}, one_step)
        names = {n for n, _ in wanted}
        ready = sum(1 for p in pods if _ready(p))
        available = ready >= replicas  # old ready pods count too: Available says nothing of the rollout
        ts = now()
        self._write_status(res, dep, {
            "replicas": len(pods), "updatedReplicas": sum(1 for p in pods if p["metadata"]["name"] in names),
            "readyReplicas": ready, "availableReplicas": ready,
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
                         # calico-node's startup: CALICO_IPV4POOL_NAT_OUTGOING, true unless "false"
                         "natOutgoing": str(env.get("CALICO_IPV4POOL_NAT_OUTGOING", "true")).lower() != "false",
                         "nodeSelector": "all()"}})
            pools = self.store.list(pool_res, None)
        felix_res = self.store.catalogue().find("crd.projectcalico.org", "v1", "felixconfigurations")
        if felix_res is not None and not any(f["metadata"]["name"] == "default" for f in self.store.list(felix_res, None)):
            self.store.create(felix_res, None, felix_default_config("crd.projectcalico.org/v1"))  # startup.go
        spec = (pools[0].get("spec") or {}) if pools else {}
        mode = "ipip" if spec.get("ipipMode") in ("Always", "CrossSubnet") else \
            "vxlan" if spec.get("vxlanMode") in ("Always", "CrossSubnet") else "direct"
        node_res = self.store.resource("v1", "nodes")
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
        pods = self.store.resource("v1", "pods")
        speakers = self.store.list(pods, "openelb-system",
                                   lambda p: (p["metadata"].get("labels") or {}).get("component") == "speaker")
        nodes = [n["metadata"]["name"] for n in self.store.list(self.store.resource("v1", "nodes"), None)]
        lines = []
        for svc in self.store.list(self.store.resource("v1", "services"), None):
            for ing in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
                vip = ing.get("ip")
                endpoint_nodes = {p["spec"].get("nodeName") for p in self.controllers._endpoints(svc) if _ready(p)}
                if not vip:
                    continue
                # getServiceNodes (pkg/speaker/manager.go): only Local reads the Endpoints; Cluster takes
                # every node as a next hop, endpoints or not, so an endpoint-less Cluster VIP is announced
                local = svc["spec"].get("externalTrafficPolicy") == "Local"
                eligible = [n for n in nodes if not local or n in endpoint_nodes]
                if eligible:
                    winner = min(eligible, key=lambda n: hashlib.sha256(f"{n}#{vip}".encode()).digest())
                    lines.append(f"I0101 00:00:00.000000       1 memberlist.go:110] [{winner}] wins the right to "
                                 f"announce the IP address {vip}")
        for pod in speakers:
            self.pod_logs[("openelb-system", pod["metadata"]["name"])] = "\n".join(lines) + ("\n" if lines else "")
