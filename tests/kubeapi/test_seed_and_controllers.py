"""The FAKE cluster's kind-like seed and its controller emulation, read back through the official client.

The server is an emulation (tests/support/kubeapi). These tests pin the shapes a kube backend
reads (Calico node annotations and IPPool modes, kube-proxy's mode, MetalLB/OpenELB pools) and
what the emulated scheduler/kubelet/allocators/LB controllers fill in after a create, including
MetalLB's L2 announcer choice, recomputed here independently from its definition.
"""

from __future__ import annotations

import hashlib
import json

import kubernetes_validate
import pytest
import yaml
from kubernetes import client

from tests.support.kubeapi import FakeCluster

NODES = ("kind-control-plane", "kind-worker", "kind-worker2")


@pytest.fixture(autouse=True)
def instant(fake_cluster: FakeCluster) -> None:
    """These tests pin WHAT the emulated controllers compute (node, IP, slices, elections), read right
    after a create; WHEN things happen (pods starting over later reads) is pinned with time on in
    test_time_and_lifecycle.py, so time is switched off here on purpose."""
    fake_cluster.instant()


def first_by_hash(nodes: list[str], ip: str) -> str:
    return sorted(nodes, key=lambda n: hashlib.sha256(f"{n}#{ip}".encode()).hexdigest())[0]


def agnhost(name: str, node: str, labels: dict[str, str], host_network: bool = False) -> dict:
    spec = {"nodeSelector": {"kubernetes.io/hostname": node}, "hostNetwork": host_network,
            "containers": [{"name": "agnhost", "image": "registry.k8s.io/e2e-test-images/agnhost:2.53",
                            "ports": [{"name": "http", "containerPort": 8080}]}]}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels}, "spec": spec}


@pytest.mark.parametrize("mode", ["direct", "ipip", "vxlan"])
def test_nodes_carry_kind_labels_taints_addresses_and_calico_annotations_per_mode(fake_cluster: FakeCluster, api,
                                                                                   mode: str) -> None:
    fake_cluster.seed(encapsulation=mode)
    nodes = client.CoreV1Api(api).list_node().items
    assert [n.metadata.name for n in nodes] == list(NODES)
    cp, worker = nodes[0], nodes[1]
    assert "node-role.kubernetes.io/control-plane" in cp.metadata.labels
    assert "node.kubernetes.io/exclude-from-external-load-balancers" in cp.metadata.labels
    assert [(t.key, t.effect) for t in cp.spec.taints] == [("node-role.kubernetes.io/control-plane", "NoSchedule")]
    assert worker.spec.taints is None and "node-role.kubernetes.io/control-plane" not in worker.metadata.labels
    assert worker.metadata.labels["kubernetes.io/hostname"] == "kind-worker"
    assert [(a.type, a.address) for a in worker.status.addresses] == [("InternalIP", "172.18.0.3"), ("Hostname", "kind-worker")]
    assert next(c for c in worker.status.conditions if c.type == "Ready").status == "True"
    ann = worker.metadata.annotations
    assert ann["projectcalico.org/IPv4Address"] == "172.18.0.3/16"
    assert ("projectcalico.org/IPv4IPIPTunnelAddr" in ann) == (mode == "ipip")
    assert ("projectcalico.org/IPv4VXLANTunnelAddr" in ann) == (mode == "vxlan")
    assert ("projectcalico.org/VXLANTunnelMACAddr" in ann) == (mode == "vxlan")
    pool = client.CustomObjectsApi(api).get_cluster_custom_object("crd.projectcalico.org", "v1", "ippools",
                                                                  "default-ipv4-ippool")
    assert pool["spec"]["ipipMode"] == ("Always" if mode == "ipip" else "Never")
    assert pool["spec"]["vxlanMode"] == ("Always" if mode == "vxlan" else "Never")
    assert (pool["spec"]["cidr"], pool["spec"]["blockSize"], pool["spec"]["natOutgoing"]) == ("192.168.0.0/16", 26, True)


@pytest.mark.parametrize("mode", ["iptables", "ipvs", "nftables"])
def test_kube_proxy_configmap_states_its_mode(fake_cluster: FakeCluster, api, mode: str) -> None:
    fake_cluster.seed(proxy_mode=mode)
    cm = client.CoreV1Api(api).read_namespaced_config_map("kube-proxy", "kube-system")
    conf = yaml.safe_load(cm.data["config.conf"])
    assert conf["kind"] == "KubeProxyConfiguration" and conf["mode"] == mode


def test_kube_system_has_ready_calico_node_pods_kube_proxy_and_kube_dns(fake_cluster: FakeCluster, api) -> None:
    fake_cluster.seed()
    v1 = client.CoreV1Api(api)
    calico = v1.list_namespaced_pod("kube-system", label_selector="k8s-app=calico-node").items
    assert sorted(p.spec.node_name for p in calico) == sorted(NODES)
    assert all(p.status.phase == "Running" and p.spec.host_network for p in calico)
    assert all(next(c for c in p.status.conditions if c.type == "Ready").status == "True" for p in calico)
    assert {p.status.pod_ip for p in calico} == {"172.18.0.2", "172.18.0.3", "172.18.0.4"}  # hostNetwork
    assert client.AppsV1Api(api).read_namespaced_daemon_set("calico-node", "kube-system").status.number_ready == 3
    assert client.AppsV1Api(api).read_namespaced_daemon_set("kube-proxy", "kube-system")
    dns = v1.read_namespaced_service("kube-dns", "kube-system")
    assert dns.spec.cluster_ip == "10.96.0.10" and dns.spec.selector == {"k8s-app": "kube-dns"}
    assert sorted((p.port, p.protocol) for p in dns.spec.ports) == [(53, "TCP"), (53, "UDP"), (9153, "TCP")]


def test_without_calico_there_is_no_calico_group_and_no_calico_annotations(fake_cluster: FakeCluster, api) -> None:
    fake_cluster.seed(calico=False)
    assert "crd.projectcalico.org" not in {g.name for g in client.ApisApi(api).get_api_versions().groups}
    node = client.CoreV1Api(api).read_node("kind-worker")
    assert not any(k.startswith("projectcalico.org/") for k in node.metadata.annotations)
    assert client.CoreV1Api(api).list_namespaced_pod("kube-system", label_selector="app=kindnet").items


def test_metallb_and_openelb_pools_are_seeded(fake_cluster: FakeCluster, api) -> None:
    fake_cluster.seed(load_balancer="metallb")
    co = client.CustomObjectsApi(api)
    pools = co.list_namespaced_custom_object("metallb.io", "v1beta1", "metallb-system", "ipaddresspools")["items"]
    assert [p["spec"]["addresses"] for p in pools] == [["172.18.255.200-172.18.255.250"]]
    l2 = co.list_namespaced_custom_object("metallb.io", "v1beta1", "metallb-system", "l2advertisements")["items"]
    assert l2[0]["spec"]["ipAddressPools"] == ["kind-pool"]
    speakers = client.CoreV1Api(api).list_namespaced_pod("metallb-system", label_selector="component=speaker").items
    assert len(speakers) == 3


def test_openelb_default_eip_is_seeded(fake_cluster: FakeCluster, api) -> None:
    fake_cluster.seed(load_balancer="openelb")
    eip = client.CustomObjectsApi(api).get_cluster_custom_object("network.kubesphere.io", "v1alpha2", "eips", "eip-pool")
    assert eip["metadata"]["annotations"]["eip.openelb.kubesphere.io/is-default-eip"] == "true"
    assert (eip["spec"]["protocol"], eip["spec"]["interface"]) == ("layer2", "eth0")
    assert client.CoreV1Api(api).list_namespaced_pod("openelb-system", label_selector="app=openelb").items


def test_pods_are_scheduled_get_an_ip_from_their_node_and_host_network_pods_get_the_node_ip(fake_cluster: FakeCluster,
                                                                                           api) -> None:
    fake_cluster.seed(load_balancer="none")
    v1 = client.CoreV1Api(api)
    v1.create_namespace({"metadata": {"name": "nx-a"}})
    a = v1.create_namespaced_pod("nx-a", agnhost("a", "kind-worker2", {"app": "x"}))
    h = v1.create_namespaced_pod("nx-a", agnhost("h", "kind-worker", {}, host_network=True))
    free = v1.create_namespaced_pod("nx-a", {"metadata": {"name": "free"}, "spec": {"containers": [{"name": "c",
                                                                                                   "image": "i"}]}})
    assert (a.spec.node_name, a.status.phase, a.status.host_ip) == ("kind-worker2", "Running", "172.18.0.4")
    assert a.status.pod_ip.startswith("192.168.2.") and a.status.pod_ip != "192.168.2.0"
    assert all(c.status == "True" for c in a.status.conditions)
    assert a.status.container_statuses[0].ready is True
    assert h.status.pod_ip == "172.18.0.3"
    assert free.spec.node_name in ("kind-worker", "kind-worker2")  # the control plane is tainted


def test_a_never_ready_pod_stays_pending_with_an_event_found_by_field_selector(fake_cluster: FakeCluster, api) -> None:
    fake_cluster.seed(load_balancer="none")
    fake_cluster.pod_never_ready("stuck", "nx-a", event="Back-off pulling image \"agnhost\"", reason="BackOff")
    v1 = client.CoreV1Api(api)
    v1.create_namespace({"metadata": {"name": "nx-a"}})
    v1.create_namespaced_pod("nx-a", agnhost("stuck", "kind-worker", {}))
    v1.create_namespaced_pod("nx-a", agnhost("fine", "kind-worker", {}))
    pod = v1.read_namespaced_pod("stuck", "nx-a")
    assert pod.status.phase == "Pending" and pod.status.pod_ip is None
    ready = {c.type: c for c in pod.status.conditions}
    assert ready["Ready"].status == "False" and ready["ContainersReady"].reason == "ContainersNotReady"
    events = v1.list_namespaced_event("nx-a", field_selector="involvedObject.name=stuck").items
    assert [(e.type, e.reason, e.message, e.involved_object.kind) for e in events] == [
        ("Warning", "BackOff", "Back-off pulling image \"agnhost\"", "Pod")]
    assert v1.read_namespaced_pod("fine", "nx-a").status.phase == "Running"


def test_an_existing_pod_marked_never_ready_turns_not_ready(fake_cluster: FakeCluster, api) -> None:
    fake_cluster.seed(load_balancer="none")
    v1 = client.CoreV1Api(api)
    v1.create_namespace({"metadata": {"name": "nx-a"}})
    v1.create_namespaced_pod("nx-a", agnhost("p", "kind-worker", {}))
    fake_cluster.pod_never_ready("p", "nx-a")
    assert v1.read_namespaced_pod("p", "nx-a").status.phase == "Pending"
    assert fake_cluster.events_for("p", "nx-a")[0]["reason"] == "Failed"


def test_services_get_cluster_ips_node_ports_and_health_check_ports(fake_cluster: FakeCluster, api) -> None:
    fake_cluster.seed(load_balancer="none")
    v1 = client.CoreV1Api(api)
    v1.create_namespace({"metadata": {"name": "nx-a"}})
    cip = v1.create_namespaced_service("nx-a", {"metadata": {"name": "c"}, "spec": {"ports": [{"port": 80}]}})
    np = v1.create_namespaced_service("nx-a", {"metadata": {"name": "n"}, "spec": {"type": "NodePort", "ports": [
        {"name": "a", "port": 80, "targetPort": 8080}, {"name": "b", "port": 81, "nodePort": 31000, "protocol": "UDP"}]}})
    lb = v1.create_namespaced_service("nx-a", {"metadata": {"name": "l"}, "spec": {
        "type": "LoadBalancer", "externalTrafficPolicy": "Local", "ports": [{"port": 80}]}})
    ips = {cip.spec.cluster_ip, np.spec.cluster_ip, lb.spec.cluster_ip}
    assert len(ips) == 3 and all(ip.startswith("10.96.") for ip in ips) and "10.96.0.10" not in ips
    assert cip.spec.type == "ClusterIP" and cip.spec.ports[0].node_port is None and cip.spec.ports[0].target_port == 80
    assert np.spec.ports[0].node_port >= 30000 and np.spec.ports[1].node_port == 31000
    assert np.spec.external_traffic_policy == "Cluster"
    assert lb.spec.health_check_node_port >= 30000 and lb.spec.health_check_node_port != lb.spec.ports[0].node_port
    assert v1.read_namespaced_service("l", "nx-a").status.load_balancer.ingress is None  # no LB implementation


def test_endpoint_slices_follow_selected_ready_pods(fake_cluster: FakeCluster, api) -> None:
    fake_cluster.seed(load_balancer="none")
    v1, disc = client.CoreV1Api(api), client.DiscoveryV1Api(api)
    v1.create_namespace({"metadata": {"name": "nx-a"}})
    v1.create_namespaced_service("nx-a", {"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [
        {"name": "http", "port": 80, "targetPort": "http"}]}})
    p1 = v1.create_namespaced_pod("nx-a", agnhost("w1", "kind-worker", {"app": "web"}))
    v1.create_namespaced_pod("nx-a", agnhost("other", "kind-worker", {"app": "db"}))
    slices = disc.list_namespaced_endpoint_slice("nx-a", label_selector="kubernetes.io/service-name=web").items
    assert len(slices) == 1 and slices[0].metadata.name.startswith("web-")
    assert [(e.addresses, e.node_name, e.conditions.ready, e.target_ref.name) for e in slices[0].endpoints] == [
        ([p1.status.pod_ip], "kind-worker", True, "w1")]
    assert [(p.name, p.port) for p in slices[0].ports] == [("http", 8080)]
    v1.delete_namespaced_pod("w1", "nx-a")
    assert not disc.list_namespaced_endpoint_slice("nx-a").items[0].endpoints


def test_metallb_gives_a_vip_and_a_service_l2_status_for_the_hash_elected_node(fake_cluster: FakeCluster, api) -> None:
    fake_cluster.seed(load_balancer="metallb")
    v1, co = client.CoreV1Api(api), client.CustomObjectsApi(api)
    v1.create_namespace({"metadata": {"name": "nx-a"}})
    v1.create_namespaced_pod("nx-a", agnhost("w1", "kind-worker", {"app": "web"}))
    v1.create_namespaced_service("nx-a", {"metadata": {"name": "web"}, "spec": {
        "type": "LoadBalancer", "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}})
    ingress = v1.read_namespaced_service("web", "nx-a").status.load_balancer.ingress
    assert [(i.ip, i.ip_mode) for i in ingress] == [("172.18.255.200", "VIP")]
    statuses = co.list_namespaced_custom_object("metallb.io", "v1beta1", "metallb-system", "servicel2statuses",
                                                label_selector="metallb.io/service-name=web")["items"]
    assert len(statuses) == 1 and statuses[0]["metadata"]["name"].startswith("l2-")
    # Cluster policy: any node without the exclusion label (the control plane carries it)
    expected = first_by_hash(["kind-worker", "kind-worker2"], "172.18.255.200")
    assert statuses[0]["status"] == {"node": expected, "serviceName": "web", "serviceNamespace": "nx-a"}
    assert statuses[0]["metadata"]["labels"]["metallb.io/node"] == expected


@pytest.mark.parametrize(("requested", "assigned"), [("172.18.255.207", "172.18.255.207"), ("203.0.113.9", None)])
def test_metallb_honours_a_requested_vip_only_inside_its_pools(fake_cluster: FakeCluster, api, requested: str,
                                                               assigned: str | None) -> None:
    """A requested address outside every IPAddressPool stays pending (MetalLB's AllocationFailed), never granted."""
    fake_cluster.seed(load_balancer="metallb")
    v1 = client.CoreV1Api(api)
    v1.create_namespace({"metadata": {"name": "nx-a"}})
    v1.create_namespaced_pod("nx-a", agnhost("w1", "kind-worker", {"app": "web"}))
    v1.create_namespaced_service("nx-a", {"metadata": {"name": "web", "annotations": {
        "metallb.io/loadBalancerIPs": requested}}, "spec": {
        "type": "LoadBalancer", "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}})
    ingress = v1.read_namespaced_service("web", "nx-a").status.load_balancer.ingress or []
    assert [i.ip for i in ingress] == ([assigned] if assigned else [])


def test_metallb_local_policy_announces_only_from_nodes_with_a_ready_endpoint(fake_cluster: FakeCluster, api) -> None:
    fake_cluster.seed(load_balancer="metallb")
    v1, co = client.CoreV1Api(api), client.CustomObjectsApi(api)
    v1.create_namespace({"metadata": {"name": "nx-a"}})
    v1.create_namespaced_service("nx-a", {"metadata": {"name": "web"}, "spec": {
        "type": "LoadBalancer", "externalTrafficPolicy": "Local", "selector": {"app": "web"}, "ports": [{"port": 80}]}})
    assert co.list_namespaced_custom_object("metallb.io", "v1beta1", "metallb-system", "servicel2statuses")["items"] == []
    vip = v1.read_namespaced_service("web", "nx-a").status.load_balancer.ingress[0].ip
    # the endpoint goes where the Cluster election would NOT pick, so Local visibly differs
    loser = next(n for n in ("kind-worker", "kind-worker2") if n != first_by_hash(["kind-worker", "kind-worker2"], vip))
    v1.create_namespaced_pod("nx-a", agnhost("w1", loser, {"app": "web"}))
    statuses = co.list_namespaced_custom_object("metallb.io", "v1beta1", "metallb-system", "servicel2statuses")["items"]
    assert [s["status"]["node"] for s in statuses] == [loser]
    v1.delete_namespaced_service("web", "nx-a")
    assert co.list_namespaced_custom_object("metallb.io", "v1beta1", "metallb-system", "servicel2statuses")["items"] == []


def test_openelb_assigns_from_the_default_eip_only_to_annotated_services(fake_cluster: FakeCluster, api) -> None:
    fake_cluster.seed(load_balancer="openelb")
    v1 = client.CoreV1Api(api)
    v1.create_namespace({"metadata": {"name": "nx-a"}})
    for name, ann in (("plain", {}), ("elb", {"lb.kubesphere.io/v1alpha1": "openelb"})):
        v1.create_namespaced_service("nx-a", {"metadata": {"name": name, "annotations": ann}, "spec": {
            "type": "LoadBalancer", "ports": [{"port": 80}]}})
    assert v1.read_namespaced_service("plain", "nx-a").status.load_balancer.ingress is None
    assert v1.read_namespaced_service("elb", "nx-a").status.load_balancer.ingress[0].ip == "172.18.255.200"
    assert "servicel2statuses" not in str(fake_cluster.store.catalogue().all)


def test_a_slow_pod_turns_ready_on_a_later_poll(fake_cluster: FakeCluster, api) -> None:
    fake_cluster.seed(load_balancer="none")
    fake_cluster.pod_ready_after("slow", "nx-a", polls=3)
    v1 = client.CoreV1Api(api)
    v1.create_namespace({"metadata": {"name": "nx-a"}})
    v1.create_namespaced_pod("nx-a", agnhost("slow", "kind-worker", {}))
    phases = [v1.read_namespaced_pod("slow", "nx-a").status.phase for _ in range(4)]
    assert phases == ["Pending", "Pending", "Running", "Running"]
    assert v1.read_namespaced_pod("slow", "nx-a").status.pod_ip.startswith("192.168.1.")
    assert [e["reason"] for e in fake_cluster.events_for("slow", "nx-a")] == ["Pulling"]


@pytest.mark.parametrize(("mode", "lb"), [("vxlan", "metallb"), ("ipip", "openelb"), ("direct", "none")])
def test_every_served_builtin_object_validates_against_the_kubernetes_openapi_schema(fake_cluster: FakeCluster, api,
                                                                                     mode: str, lb: str) -> None:
    """Seeded objects and what the controllers wrote, as served over HTTP, pass kubernetes-validate (strict)."""
    fake_cluster.seed(encapsulation=mode, load_balancer=lb)
    v1 = client.CoreV1Api(api)
    v1.create_namespace({"metadata": {"name": "nx-a"}})
    v1.create_namespaced_pod("nx-a", agnhost("w1", "kind-worker", {"app": "web"}))
    v1.create_namespaced_service("nx-a", {"metadata": {"name": "web", "annotations": {"lb.kubesphere.io/v1alpha1": "openelb"}},
                                          "spec": {"type": "LoadBalancer", "selector": {"app": "web"},
                                                   "ports": [{"port": 80, "targetPort": 8080}]}})
    fake_cluster.pod_never_ready("stuck", "nx-a")
    v1.create_namespaced_pod("nx-a", agnhost("stuck", "kind-worker", {}))
    checked = 0
    for res in fake_cluster.store.catalogue().all:
        if res.custom or res.plural == "selfsubjectaccessreviews" or (res.group, res.plural) == ("events.k8s.io", "events"):
            continue
        path = f"/api/{res.version}" if not res.group else f"/apis/{res.group}/{res.version}"
        items = api.call_api(*api.param_serialize("GET", f"{path}/{res.plural}",
                                                  auth_settings=["BearerToken"])).read()
        for item in json.loads(items)["items"]:
            item.update(apiVersion=res.api_version, kind=res.kind)
            kubernetes_validate.validate(item, "1.33.0", strict=True)
            checked += 1
    assert checked > 30
