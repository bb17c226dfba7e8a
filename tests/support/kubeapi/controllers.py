"""What a kind cluster's controllers would have done by the time a client polls again.

Why: a backend creates pods and services and then waits and discovers (pod IPs, node names,
VIPs, the node that announces a VIP). Without controllers a fake server would hand back objects
no real cluster ever shows (a Running pod without ``podIP``, a LoadBalancer that never gets an
address), and the backend's wait/discovery code would be tested against nothing.

Mirrors, applied synchronously when an object is written:
* kube-scheduler: ``spec.nodeName`` kept, else taken from a ``kubernetes.io/hostname`` nodeSelector,
  else the schedulable node (no NoSchedule taint that the pod does not tolerate) with fewest pods;
* kubelet + Calico IPAM: ``status.podIP`` from the node's ``spec.podCIDR`` (node i owns
  192.168.i.0/24 in the seeded cluster; .0 is the node's tunnel address, pods from .1), the node's
  InternalIP for ``hostNetwork`` pods, ``hostIP``, ``phase: Running``, conditions
  PodReadyToStartContainers/Initialized/Ready/ContainersReady/PodScheduled True, ready
  ``containerStatuses``; a pod marked never-ready stays Pending with Ready/ContainersReady False
  (reason ContainersNotReady), its containers waiting, and a Warning Event naming it;
* the service IP/port allocators of kube-apiserver: ``clusterIP`` from 10.96.0.0/16 (10.96.0.1 and
  10.96.0.10 are the seeded kubernetes and kube-dns services), ``nodePort`` from 30000 up,
  ``healthCheckNodePort`` for LoadBalancer + Local, and the defaults the API fills
  (ipFamilies, sessionAffinity, internal/externalTrafficPolicy, port protocol and targetPort);
* the EndpointSlice controller: one slice per selecting service (``<svc>-xxxxx``, label
  ``kubernetes.io/service-name``), endpoints for pods that have an IP with conditions
  ready/serving/terminating, target ports resolved from named container ports;
* MetalLB (controller + L2 speaker): ``status.loadBalancer.ingress[0].ip`` (with ``ipMode: VIP``,
  which kube-apiserver defaults) from the first seeded IPAddressPool range (or the
  ``metallb.io/loadBalancerIPs`` annotation / ``spec.loadBalancerIP``), and a ``metallb.io/v1beta1``
  ServiceL2Status in metallb-system (generateName ``l2-``, labels ``metallb.io/node``,
  ``metallb.io/service-name``, ``metallb.io/service-namespace``, status node/serviceName/
  serviceNamespace) naming the node whose sha256(node + "#" + ip) sorts first among nodes without
  ``node.kubernetes.io/exclude-from-external-load-balancers`` (Local: only nodes with a ready
  endpoint; no ready endpoint: no status), as speaker/layer2_controller.go ShouldAnnounce and
  internal/k8s/controllers/layer2_status_controller.go do. This is written independently of
  netiso.model.election on purpose, so the backend's tests compare two implementations;
* OpenELB: the address from the default Eip's ``spec.address`` range (or the Eip named by the
  ``eip.openelb.kubesphere.io/v1alpha2`` annotation, or exactly the address of the
  ``eip.openelb.kubesphere.io/v1alpha1`` annotation: ipam.go ConstructRequest); it has no
  announcing-node object (its speakers' election log lines, including the Cluster Service without
  endpoints that OpenELB still announces, are workloads.py's).

Pods created through the API start later: Pending (scheduled, ``ContainerCreating``, no pod IP, a
Normal ``Pulling`` Event) until lifecycle.py has counted enough reads of them (``starting``); a
never-ready pod fails by its reason: an image pull (Pending, waiting), ``Unhealthy`` (Running, its
readiness probe failing: Ready False; so does an agnhost pod whose readiness probe asks a port its
netexec does not listen on, as the kubelet's probe would meet a refused connection) or
``FailedScheduling`` (no node, Event from the default-scheduler, for a pod not pinned by ``nodeName``).
EndpointSlice endpoints of a pod being deleted
gracefully are ``terminating`` and not ``ready``, and ``serving`` while the pod is Ready; with
``publishNotReadyAddresses`` every endpoint is ``ready`` (staging/src/k8s.io/endpointslice/utils.go
podToEndpoint); the emulated MetalLB counts an endpoint that is ready or serving (EndpointCanServe).

Knowingly differs: a pod's start is counted in reads, not seconds, and no image is pulled; pods
of Deployments/DaemonSets are not created by the fake (seed them or create pods directly) unless
the workload controllers of workloads.py are switched on (``FakeCluster.enable_workload_controllers``,
done by ``seed_fresh_kind``); Endpoints
(v1) objects are not maintained; OpenELB's Eip status usage is not updated; IPs are handed out in
order, not at random.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Callable
from typing import Any

from .resources import Resource
from .store import Store, now

Obj = dict[str, Any]
EXCLUDE_LB = "node.kubernetes.io/exclude-from-external-load-balancers"


def _ready(pod: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in (pod.get("status") or {}).get("conditions", []))


def _probe_refused(pod: Obj) -> tuple[str, str] | None:
    """The kubelet's answer to a readiness probe on a port nothing in the pod listens on (connection
    refused: the pod runs but never becomes Ready), else None. Judged only for pods made of agnhost
    ``netexec``/``pause`` containers, whose listeners are known from their arguments (netexec binds
    its ``--http-port`` on TCP; pause nothing); what other images listen on is not the emulator's to guess."""
    containers = (pod.get("spec") or {}).get("containers") or []
    if not containers or any((c.get("args") or [""])[0] not in ("netexec", "pause") for c in containers):
        return None
    listening = {int(a.split("=", 1)[1]) for c in containers for a in c.get("args") or []
                 if a.startswith("--http-port=")}
    names = {cp.get("name"): cp.get("containerPort") for c in containers for cp in c.get("ports") or []}
    for c in containers:
        get = (c.get("readinessProbe") or {}).get("httpGet") or {}
        port = names.get(get.get("port"), get.get("port"))
        if get and port not in listening:
            ip = (pod.get("status") or {}).get("podIP") or "<pod IP>"
            return ("Unhealthy", f'Readiness probe failed: Get "http://{ip}:{port}{get.get("path", "/")}": '
                                 f"dial tcp {ip}:{port}: connect: connection refused")
    return None


def _announces(namespace: str | None, name: str) -> Callable[[Obj], bool]:
    """Selects the ServiceL2Status objects of one service (by MetalLB's labels)."""
    def match(o: Obj) -> bool:
        labels = o["metadata"].get("labels") or {}
        return labels.get("metallb.io/service-name") == name and labels.get("metallb.io/service-namespace") == namespace
    return match


def _internal_ip(node: Obj) -> str | None:
    for a in (node.get("status") or {}).get("addresses", []):
        if a.get("type") == "InternalIP":
            return a.get("address")
    return None


class Controllers:
    """Registered on a Store; ``never_ready`` is filled by FakeCluster.pod_never_ready."""

    def __init__(self, store: Store) -> None:
        self.store = store
        # (namespace or None = any, pod name) -> (event reason, event message)
        self.never_ready: dict[tuple[str | None, str], tuple[str, str]] = {}
        # pods created but not started yet (lifecycle.py decides which, and when they start)
        self.starting: set[tuple[str | None, str]] = set()
        self.start_later: Callable[[Obj], bool] = lambda _pod: False
        self.lb_impl: str | None = None  # "metallb" | "openelb" | None: no LoadBalancer implementation
        # PodLifecycleSleepAction on (beta, default on from 1.30); False: an API server that drops the
        # preStop sleep hook of a created pod as a disabled field (1.29, the gate off by default)
        self.sleep_action = True
        self._busy = False
        store.on_create.append(self._admit)
        store.on_change.append(self._react)

    # -- on create: fill what scheduler/kubelet/allocators fill --------------------------------
    def _admit(self, res: Resource, obj: Obj) -> None:
        if (res.group, res.plural) == ("", "pods"):
            if not self.sleep_action:
                for c in (obj.get("spec") or {}).get("containers") or []:
                    hook = (c.get("lifecycle") or {}).get("preStop") or {}
                    if "sleep" in hook:  # dropped with its handler: the pod has no preStop hook at all
                        c["lifecycle"].pop("preStop")
                        if not c["lifecycle"]:
                            c.pop("lifecycle")
            self._run_pod(obj)
        elif (res.group, res.plural) == ("", "services"):
            self._allocate_service(obj)

    def _nodes(self) -> list[Obj]:
        return self.store.list(self.store.resource("v1", "nodes"), None)

    def _schedule(self, pod: Obj) -> Obj | None:
        nodes = {n["metadata"]["name"]: n for n in self._nodes()}
        spec = pod.setdefault("spec", {})
        wanted = spec.get("nodeName") or (spec.get("nodeSelector") or {}).get("kubernetes.io/hostname")
        if wanted:
            return nodes.get(wanted)
        tolerated = {t.get("key") for t in spec.get("tolerations") or []}
        every = any(t.get("operator") == "Exists" and not t.get("key") for t in spec.get("tolerations") or [])
        fits = [n for n in nodes.values() if every or all(t.get("effect") != "NoSchedule" or t.get("key") in tolerated
                                                           for t in (n.get("spec") or {}).get("taints") or [])]
        if not fits:
            return None
        pods = self.store.list(self.store.resource("v1", "pods"), None)
        load = {name: sum(1 for p in pods if (p.get("spec") or {}).get("nodeName") == name) for name in nodes}
        return min(fits, key=lambda n: (load[n["metadata"]["name"]], n["metadata"]["name"]))

    def _pod_ip(self, node: Obj, pod: Obj) -> str:
        if (pod.get("spec") or {}).get("hostNetwork"):
            return _internal_ip(node) or ""
        cidr = ipaddress.ip_network((node.get("spec") or {}).get("podCIDR") or "192.168.0.0/24")
        used = {p.get("status", {}).get("podIP") for p in self.store.list(self.store.resource("v1", "pods"), None)}
        for host in list(cidr.hosts())[1:]:  # .1 is where pods start; .0 is the tunnel address
            if str(host) not in used:
                return str(host)
        raise RuntimeError(f"pod CIDR {cidr} of node {node['metadata']['name']} is full")

    def _run_pod(self, pod: Obj) -> None:
        meta = pod["metadata"]
        if self.start_later(pod):
            self.starting.add((meta.get("namespace"), meta["name"]))
        else:
            self.starting.discard((meta.get("namespace"), meta["name"]))
        pod["status"] = self.pod_status(pod)

    def pod_status(self, pod: Obj) -> Obj:
        """The status the kubelet would report (scheduling the pod first when it has no node)."""
        meta, spec = pod["metadata"], pod.setdefault("spec", {})
        node = self._schedule(pod)
        ts = now()
        containers = spec.get("containers") or []
        if node is None:
            return {"phase": "Pending", "qosClass": "BestEffort", "conditions": [
                {"type": "PodScheduled", "status": "False", "lastProbeTime": None, "lastTransitionTime": ts,
                 "reason": "Unschedulable", "message": "0/0 nodes are available: no node matches."}]}
        failure = self.never_ready.get((meta.get("namespace"), meta["name"])) or self.never_ready.get((None, meta["name"]))
        if failure is not None and failure[0] == "FailedScheduling" and not spec.get("nodeName"):
            self._event(pod, "Warning", failure[0], failure[1], "default-scheduler")
            return {"phase": "Pending", "qosClass": "BestEffort", "conditions": [
                {"type": "PodScheduled", "status": "False", "lastProbeTime": None, "lastTransitionTime": ts,
                 "reason": "Unschedulable", "message": failure[1]}]}
        spec["nodeName"] = node["metadata"]["name"]
        host_ip = _internal_ip(node) or ""
        if failure is None and (meta.get("namespace"), meta["name"]) in self.starting:
            failure = ("Pulling", f'Pulling image "{(containers or [{}])[0].get("image", "")}"')
        failure = failure or _probe_refused(pod)  # once started, the kubelet probes it
        unhealthy = failure is not None and failure[0] == "Unhealthy"  # running, its readiness probe failing
        ready = failure is None
        running = ready or unhealthy
        flag = "True" if ready else "False"
        conds = [{"type": "PodReadyToStartContainers", "status": flag}, {"type": "Initialized", "status": "True"},
                 {"type": "Ready", "status": flag}, {"type": "ContainersReady", "status": flag},
                 {"type": "PodScheduled", "status": "True"}]
        names = ", ".join(x.get("name", "") for x in containers)
        for c in conds:
            c.update(lastProbeTime=None, lastTransitionTime=ts)
            if c["status"] == "False" and c["type"] in ("Ready", "ContainersReady"):
                c.update(reason="ContainersNotReady", message=f"containers with unready status: [{names}]")
        if unhealthy:
            conds[0]["status"] = "True"
        statuses = []
        for c in containers:
            st: Obj = {"name": c.get("name"), "image": c.get("image"), "imageID": "", "ready": ready, "restartCount": 0,
                       "started": running}
            if running:
                cid = hashlib.sha256((meta["name"] + c.get("name", "")).encode()).hexdigest()
                st.update(containerID=f"containerd://{cid}", imageID=c.get("image", ""), state={"running": {"startedAt": ts}})
            else:
                st["state"] = {"waiting": {"reason": "ErrImagePull" if failure and failure[0] == "Failed"
                                           else "ContainerCreating"}}
            statuses.append(st)
        status: Obj = {"phase": "Running" if running else "Pending", "conditions": conds, "hostIP": host_ip,
                       "hostIPs": [{"ip": host_ip}], "startTime": ts, "qosClass": "BestEffort",
                       "containerStatuses": statuses}
        if running:
            pod_ip = (pod.get("status") or {}).get("podIP") or self._pod_ip(node, pod)
            status.update(podIP=pod_ip, podIPs=[{"ip": pod_ip}])
        if failure is not None:
            self._event(pod, "Normal" if failure[0] == "Pulling" else "Warning", failure[0], failure[1])
        return status

    def _event(self, pod: Obj, type_: str, reason: str, message: str, component: str = "kubelet") -> None:
        meta = pod["metadata"]
        ts = now()
        container = ((pod.get("spec") or {}).get("containers") or [{}])[0].get("name", "")
        ev = {"apiVersion": "v1", "kind": "Event",
              "metadata": {"name": f"{meta['name']}.{hashlib.sha1((meta['name'] + message).encode()).hexdigest()[:16]}",
                           "namespace": meta.get("namespace")},
              "involvedObject": {"kind": "Pod", "namespace": meta.get("namespace"), "name": meta["name"],
                                 "uid": meta.get("uid"), "apiVersion": "v1", "fieldPath": f"spec.containers{{{container}}}"},
              "reason": reason, "message": message, "type": type_, "count": 1,
              "firstTimestamp": ts, "lastTimestamp": ts, "eventTime": None,
              "source": {"component": component, **({"host": (pod.get("spec") or {}).get("nodeName", "")}
                                                    if component == "kubelet" else {})},
              "reportingComponent": component,
              "reportingInstance": (pod.get("spec") or {}).get("nodeName", "") if component == "kubelet" else ""}
        res = self.store.resource("v1", "events")
        if self.store.get(res, meta.get("namespace"), ev["metadata"]["name"]) is None:
            self.store.create(res, meta.get("namespace"), ev)

    def _allocate_service(self, svc: Obj) -> None:
        spec = svc.setdefault("spec", {})
        stype = spec.setdefault("type", "ClusterIP")
        services = self.store.list(self.store.resource("v1", "services"), None)
        if stype != "ExternalName":
            if not spec.get("clusterIP"):
                used = {s["spec"].get("clusterIP") for s in services}
                for i in range(2, 65535):
                    ip = str(ipaddress.ip_address("10.96.0.0") + i)
                    if ip not in used and ip != "10.96.0.10":
                        spec["clusterIP"] = ip
                        break
            spec.setdefault("clusterIPs", [spec["clusterIP"]])
            spec.setdefault("ipFamilies", ["IPv4"])
            spec.setdefault("ipFamilyPolicy", "SingleStack")
            spec.setdefault("internalTrafficPolicy", "Cluster")
        spec.setdefault("sessionAffinity", "None")
        used_ports = {p.get("nodePort") for s in services for p in s["spec"].get("ports", [])}
        used_ports |= {s["spec"].get("healthCheckNodePort") for s in services}
        nxt = iter(p for p in range(30000, 32768) if p not in used_ports)
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
            if stype in ("NodePort", "LoadBalancer") and not port.get("nodePort"):
                port["nodePort"] = next(nxt)
        if stype in ("NodePort", "LoadBalancer"):
            spec.setdefault("externalTrafficPolicy", "Cluster")
        if stype == "LoadBalancer":
            spec.setdefault("allocateLoadBalancerNodePorts", True)
            if spec["externalTrafficPolicy"] == "Local" and not spec.get("healthCheckNodePort"):
                spec["healthCheckNodePort"] = next(nxt)
        svc["status"] = {"loadBalancer": {}}

    # -- after any write: endpoint slices and load balancers ----------------------------------
    def _react(self, kind: str, res: Resource, obj: Obj) -> None:
        if self._busy or (res.group, res.plural) not in (("", "pods"), ("", "services")):
            return
        self._busy = True
        try:
            namespace = obj["metadata"].get("namespace")
            ns_obj = self.store.objects.get(("", "namespaces", "", namespace or ""))
            if ns_obj is None or (ns_obj.get("status") or {}).get("phase") == "Terminating":
                if kind == "DELETED" and (res.group, res.plural) == ("", "services"):
                    self._forget_service(obj)
                return
            for svc in self.store.list(self.store.resource("v1", "services"), namespace):
                self._slice(svc)
                if svc["spec"].get("type") == "LoadBalancer":
                    self._load_balance(svc)
            if kind == "DELETED" and (res.group, res.plural) == ("", "services"):
                self._forget_service(obj)
        finally:
            self._busy = False

    def _endpoints(self, svc: Obj) -> list[Obj]:
        selector = svc["spec"].get("selector")
        if not selector:
            return []
        pods = self.store.list(self.store.resource("v1", "pods"), svc["metadata"]["namespace"])
        return [p for p in pods if all(((p["metadata"].get("labels") or {}).get(k) == v) for k, v in selector.items())
                and (p.get("status") or {}).get("podIP")]

    def _slice(self, svc: Obj) -> None:
        if not svc["spec"].get("selector"):
            return
        res = self.store.resource("discovery.k8s.io/v1", "endpointslices")
        ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
        pods = self._endpoints(svc)
        ports = []
        for p in svc["spec"].get("ports") or []:
            target = p.get("targetPort", p.get("port"))
            if isinstance(target, str):
                target = next((cp.get("containerPort") for pod in pods for c in pod["spec"].get("containers", [])
                               for cp in c.get("ports") or [] if cp.get("name") == target), None)
            entry = {"name": p.get("name", ""), "port": target, "protocol": p.get("protocol", "TCP")}
            ports.append(entry)
        publish = bool(svc["spec"].get("publishNotReadyAddresses"))  # podToEndpoint: ready = pna || (serving && !term)
        endpoints = [{"addresses": [p["status"]["podIP"]],
                      "conditions": {"ready": publish or (_ready(p) and not p["metadata"].get("deletionTimestamp")),
                                     "serving": _ready(p), "terminating": bool(p["metadata"].get("deletionTimestamp"))},
                      "nodeName": p["spec"].get("nodeName"),
                      "targetRef": {"kind": "Pod", "namespace": ns, "name": p["metadata"]["name"],
                                    "uid": p["metadata"].get("uid")}} for p in pods]
        existing = self.store.list(res, ns, lambda o: (o["metadata"].get("labels") or {}).get("kubernetes.io/service-name")
                                   == name)
        body = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
                "endpoints": endpoints, "ports": ports}
        if existing:
            cur = existing[0]
            if (cur.get("endpoints"), cur.get("ports")) != (endpoints, ports):
                cur.update(endpoints=endpoints, ports=ports)
                self.store.replace(res, ns, cur["metadata"]["name"], cur)
            return
        body["metadata"] = {"generateName": f"{name}-", "namespace": ns,
                            "labels": {"kubernetes.io/service-name": name,
                                       "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"},
                            "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": name,
                                                 "uid": svc["metadata"].get("uid"), "controller": True,
                                                 "blockOwnerDeletion": True}]}
        self.store.create(res, ns, body)

    def _pool_ip(self, svc: Obj) -> str | None:
        ann = svc["metadata"].get("annotations") or {}
        if self.lb_impl == "metallb":
            want = ann.get("metallb.io/loadBalancerIPs") or svc["spec"].get("loadBalancerIP")
            want = want.split(",")[0] if want else None
            pools = self.store.list(self.store.resource("metallb.io/v1beta1", "ipaddresspools"), None)
            ranges = [a for p in pools for a in p["spec"].get("addresses", [])]
        elif self.lb_impl == "openelb":
            if ann.get("lb.kubesphere.io/v1alpha1") != "openelb":
                return None  # OpenELB handles only services that carry its annotation
            want = ann.get("eip.openelb.kubesphere.io/v1alpha1")
            eips = self.store.list(self.store.resource("network.kubesphere.io/v1alpha2", "eips"), None)
            named = ann.get("eip.openelb.kubesphere.io/v1alpha2")
            eips = [e for e in eips if (e["metadata"]["name"] == named if named else
                                        (e["metadata"].get("annotations") or {}).get("eip.openelb.kubesphere.io/is-default-eip")
                                        == "true")]
            ranges = [e["spec"]["address"] for e in eips]
        else:
            return None
        used = {i.get("ip") for s in self.store.list(self.store.resource("v1", "services"), None)
                for i in ((s.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []}
        for r in ranges:
            if "-" in r:
                lo, hi = (ipaddress.ip_address(x.strip()) for x in r.split("-"))
                candidates = (lo + i for i in range(int(hi) - int(lo) + 1))
            else:
                candidates = iter(ipaddress.ip_network(r, strict=False).hosts())
            for ip in candidates:
                if str(ip) not in used and want in (None, str(ip)):
                    return str(ip)
        # a requested address outside every pool (or held by another Service) is not assigned: the
        # Service stays pending, as MetalLB's AllocationFailed / OpenELB's failed IPAM request leave it
        return None

    def _load_balance(self, svc: Obj) -> None:
        services = self.store.resource("v1", "services")
        ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        ip = ingress[0]["ip"] if ingress else self._pool_ip(svc)
        if ip is None:
            return
        if not ingress:
            self.store.replace(services, svc["metadata"]["namespace"], svc["metadata"]["name"],
                               {**svc, "status": {"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"}]}}}, "status")
        if self.lb_impl == "metallb":
            self._l2_status(svc, ip)

    def _l2_status(self, svc: Obj, ip: str) -> None:
        res = self.store.resource("metallb.io/v1beta1", "servicel2statuses")
        ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
        # epslices.EndpointCanServe: ready (always so with publishNotReadyAddresses) or serving
        publish = bool(svc["spec"].get("publishNotReadyAddresses"))
        ready_nodes = {p["spec"].get("nodeName") for p in self._endpoints(svc) if publish or _ready(p)}
        eligible = [n["metadata"]["name"] for n in self._nodes() if EXCLUDE_LB not in (n["metadata"].get("labels") or {})]
        if svc["spec"].get("externalTrafficPolicy") == "Local":
            eligible = [n for n in eligible if n in ready_nodes]
        if not ready_nodes:
            eligible = []
        winner = min(eligible, key=lambda n: hashlib.sha256(f"{n}#{ip}".encode()).digest()) if eligible else None
        existing = self.store.list(res, "metallb-system", _announces(ns, name))
        for old in existing:
            if winner is None or old["status"].get("node") != winner:
                self.store.delete(res, "metallb-system", old["metadata"]["name"])
        if winner is None or any(o["status"].get("node") == winner for o in existing):
            return
        speakers = self.store.list(self.store.resource("v1", "pods"), "metallb-system",
                                   lambda p: p["spec"].get("nodeName") == winner
                                   and (p["metadata"].get("labels") or {}).get("component") == "speaker")
        meta: Obj = {"generateName": "l2-", "namespace": "metallb-system",
                     "labels": {"metallb.io/node": winner, "metallb.io/service-name": name,
                                "metallb.io/service-namespace": ns}}
        if speakers:
            meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "Pod", "name": speakers[0]["metadata"]["name"],
                                        "uid": speakers[0]["metadata"].get("uid")}]
        self.store.create(res, "metallb-system", {"apiVersion": "metallb.io/v1beta1", "kind": "ServiceL2Status",
                                                  "metadata": meta, "spec": {},
                                                  "status": {"node": winner, "serviceName": name, "serviceNamespace": ns}},
                          keep_status=True)

    def _forget_service(self, svc: Obj) -> None:
        ns, name = svc["metadata"].get("namespace"), svc["metadata"]["name"]
        slices = self.store.resource("discovery.k8s.io/v1", "endpointslices")
        for s in self.store.list(slices, ns, lambda o: (o["metadata"].get("labels") or {}).get("kubernetes.io/service-name")
                                 == name):
            if self.store.get(slices, ns, s["metadata"]["name"]) is not None:
                self.store.delete(slices, ns, s["metadata"]["name"])
        l2 = self.store.catalogue().find("metallb.io", "v1beta1", "servicel2statuses")
        if l2 is not None:
            for s in self.store.list(l2, "metallb-system", _announces(ns, name)):
                self.store.delete(l2, "metallb-system", s["metadata"]["name"])
