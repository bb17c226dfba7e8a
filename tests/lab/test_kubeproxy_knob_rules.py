"""kube-proxy's knobs in the lab's rules, line by line against proxier.go (syncProxyRules).

internalTrafficPolicy (KUBE-SVL as the cluster IP's chain, DROP "has no local endpoints"),
loadBalancerSourceRanges (KUBE-FW, KUBE-PROXY-FIREWALL), masqueradeAll / no local-traffic
detector (the cluster-IP masquerade rule and KUBE-EXT's pod short-circuit) and
nodePortAddresses (KUBE-SERVICES' tail per node address). The shapes follow the expected
iptables-save of upstream TestOverallIPTablesRules (e.g. ``-A KUBE-FW-… -s 203.0.113.0/25 -j
KUBE-EXT-…`` then the comment-only "other traffic … will be dropped by KUBE-PROXY-FIREWALL"
rule). What the kernel does with them is tested on the lab (test_kubeproxy_upstream_lab.py,
scenarios/kube-proxy-knobs.yaml).
"""

from __future__ import annotations

from dataclasses import replace

from netiso.backends.lab.kubeproxy import KubeProxyConfig, render_kube_proxy, service_chains
from netiso.model.types import KubeProxySpec
from tests.lab.test_kubeproxy import NODE_IP, POD_CIDR, chain, pod, rules, service, topology

LOCAL, REMOTE = pod("100.64.1.2"), pod("100.64.2.2", "worker2")


def test_internal_traffic_policy_local_jumps_to_svl_and_drops_without_local_endpoints() -> None:
    svc = replace(service("web", endpoints=(LOCAL, REMOTE)), itp="Local")
    ch = service_chains(svc, svc.ports[0])
    topo = topology(svc)
    nat = rules(topo)
    assert [r for r in chain(nat, "KUBE-SERVICES") if "cluster IP" in r] == [
        f'-m comment --comment "demo/web:http cluster IP" -m tcp -p tcp -d 198.19.0.10 --dport 8080 -j {ch.svl}']
    assert chain(nat, ch.svl)[0].endswith(f"! -s {POD_CIDR} -j KUBE-MARK-MASQ")  # the masquerade rule moves along
    assert not chain(nat, ch.svc)  # a ClusterIP-only service with ITP Local has no KUBE-SVC at all
    assert len([r for r in chain(nat, ch.svl) if "KUBE-SEP-" in r]) == 1
    # worker's only endpoint elsewhere (worker2): the cluster IP is DROPped in filter, nothing DNATs it
    lonely = topology(replace(service("web", endpoints=(REMOTE,)), itp="Local"))
    flt = rules(lonely, table="filter")
    assert [r for r in chain(flt, "KUBE-SERVICES")] == [
        '-m comment --comment "netiso:kube-proxy=demo/web:http no-local-endpoints drop; demo/web:http has no local '
        'endpoints" -m tcp -p tcp -d 198.19.0.10 --dport 8080 -j DROP']
    assert not [r for r in rules(lonely) if "cluster IP" in r]


def test_source_ranges_send_the_vip_through_kube_fw_and_drop_the_rest_in_kube_proxy_firewall() -> None:
    svc = replace(service("web", "LoadBalancer", endpoints=(LOCAL,), node_port=30080, lb_ip="198.18.0.200"),
                  source_ranges=("198.18.0.100/32", "203.0.113.0/25"))
    ch = service_chains(svc, svc.ports[0])
    topo = topology(svc)
    nat, flt = rules(topo), rules(topo, table="filter")
    assert f'-m comment --comment "demo/web:http loadbalancer IP" -m tcp -p tcp -d 198.18.0.200 --dport 8080 ' \
           f'-j {ch.fw}' in chain(nat, "KUBE-SERVICES")
    assert chain(nat, ch.fw) == [
        f'-m comment --comment "demo/web:http loadbalancer IP" -s 198.18.0.100/32 -j {ch.ext}',
        f'-m comment --comment "demo/web:http loadbalancer IP" -s 203.0.113.0/25 -j {ch.ext}',
        '-m comment --comment "other traffic to demo/web:http will be dropped by KUBE-PROXY-FIREWALL"']
    assert chain(flt, "KUBE-PROXY-FIREWALL") == [
        f'-m comment --comment "netiso:kube-proxy=demo/web:http source-ranges drop; demo/web:http traffic not '
        f'accepted by {ch.fw}" -m tcp -p tcp -d 198.18.0.200 --dport 8080 -j DROP']
    # node ports are not subject to source ranges
    assert [r for r in chain(nat, "KUBE-NODEPORTS") if r.endswith(ch.ext)]
    # allowFromNode: a range holding the node's IP also admits traffic from the VIP itself
    with_node = topology(replace(svc, source_ranges=(f"{NODE_IP['worker']}/32",)))
    assert f'-m comment --comment "demo/web:http loadbalancer IP" -s 198.18.0.200 -j {ch.ext}' in chain(
        rules(with_node), ch.fw)
    assert not [r for r in chain(rules(with_node, "worker2"), ch.fw) if "-s 198.18.0.200" in r]


def test_masquerade_all_and_no_local_detector_change_the_cluster_ip_and_external_rules() -> None:
    svc = service("web", "NodePort", "Local", endpoints=(LOCAL, REMOTE), node_port=30080)
    ch = service_chains(svc, svc.ports[0])
    topo = topology(svc)
    cip = '-m comment --comment "demo/web:http cluster IP" -m tcp -p tcp -d 198.19.0.10 --dport 8080'
    default = rules(topo)
    assert f"{cip} ! -s {POD_CIDR} -j KUBE-MARK-MASQ" in chain(default, ch.svc)
    assert any(f"-s {POD_CIDR} -j {ch.svc}" in r for r in chain(default, ch.ext))  # pod short-circuit
    masq_all = rules(topo, cfg=KubeProxyConfig(masquerade_all=True))
    assert f"{cip} -j KUBE-MARK-MASQ" in chain(masq_all, ch.svc)
    blind = rules(topo, cfg=KubeProxyConfig.of(KubeProxySpec(detectLocalMode="None")))
    assert not [r for r in chain(blind, ch.svc) if "KUBE-MARK-MASQ" in r]
    assert not [r for r in chain(blind, ch.ext) if f"-s {POD_CIDR}" in r]
    assert chain(blind, ch.ext)[-1] == f"-j {ch.svl}"


def test_node_port_addresses_replace_the_dst_type_local_tail_by_the_nodes_own_addresses() -> None:
    topo = topology(service("web", "NodePort", endpoints=(LOCAL,), node_port=30080))
    tail = '-m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain"'
    assert chain(rules(topo), "KUBE-SERVICES")[-1] == f"{tail} -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS"
    cfg = KubeProxyConfig(node_port_addresses=("198.18.0.11/32",))
    assert chain(rules(topo, "worker", cfg=cfg), "KUBE-SERVICES")[-1] == f"{tail} -d 198.18.0.11 -j KUBE-NODEPORTS"
    assert not [r for r in chain(rules(topo, "worker2", cfg=cfg), "KUBE-SERVICES") if "KUBE-NODEPORTS" in r]
    # the scenario's setting reaches the rules without a config argument
    spec = replace(topo.scenario.cluster, kubeProxy=KubeProxySpec(nodePortAddresses=("198.18.0.0/24",)))
    scoped = replace(topo, scenario=replace(topo.scenario, cluster=spec))
    assert chain(render_kube_proxy(scoped, "worker2").table("nat").rules, "KUBE-SERVICES")[-1] == \
        f"{tail} -d 198.18.0.12 -j KUBE-NODEPORTS"


def test_session_affinity_checks_recent_lists_before_the_ladder_and_sets_them_at_the_dnat() -> None:
    """writeServiceToEndpointRules: one ``--rcheck --seconds T --reap`` jump per endpoint ahead of the
    random ladder; each KUBE-SEP's DNAT rule records the source (``--set``) in its own list."""
    svc = replace(service("web", endpoints=(LOCAL, REMOTE)), affinity_timeout=600)
    ch = service_chains(svc, svc.ports[0])
    nat = rules(topology(svc))
    svc_rules = chain(nat, ch.svc)
    seps = [r.split("-j ")[-1] for r in svc_rules if "--rcheck" in r]
    assert len(seps) == 2 and all(s.startswith("KUBE-SEP-") for s in seps)
    for sep in seps:
        assert f"-m recent --name {sep} --rcheck --seconds 600 --reap -j {sep}" in " ".join(svc_rules)
        dnat = [r for r in chain(nat, sep) if "DNAT" in r]
        assert len(dnat) == 1 and f"-m recent --name {sep} --set" in dnat[0]
    first_random = next(i for i, r in enumerate(svc_rules) if "statistic" in r)
    assert max(i for i, r in enumerate(svc_rules) if "--rcheck" in r) < first_random
    plain = rules(topology(service("web", endpoints=(LOCAL, REMOTE))))
    assert not [r for r in plain if "recent" in r]


def test_external_ips_are_captured_into_kube_ext_and_filtered_like_node_ports() -> None:
    """proxier.go "Capture externalIPs": ``-d <externalIP> --dport P -j KUBE-EXT`` in nat KUBE-SERVICES
    when there are endpoints; KUBE-EXTERNAL-SERVICES REJECTs without any, DROPs with ETP Local and
    none on this node. Any Service type: here a ClusterIP Service gets a KUBE-EXT chain for it."""
    svc = replace(service("web", endpoints=(LOCAL, REMOTE)), external_ips=("203.0.113.50",))
    ch = service_chains(svc, svc.ports[0])
    nat = rules(topology(svc))
    assert [r for r in chain(nat, "KUBE-SERVICES") if "external IP" in r] == [
        f'-m comment --comment "demo/web:http external IP" -m tcp -p tcp -d 203.0.113.50 --dport 8080 -j {ch.ext}']
    assert chain(nat, ch.ext) == [
        '-m comment --comment "masquerade traffic for demo/web:http external destinations" -j KUBE-MARK-MASQ',
        f"-j {ch.svc}"]
    empty = replace(service("web", endpoints=()), external_ips=("203.0.113.50",))
    assert not [r for r in rules(topology(empty)) if "203.0.113.50" in r]
    assert [r for r in chain(rules(topology(empty), table="filter"), "KUBE-EXTERNAL-SERVICES")
            if "203.0.113.50" in r] == [
        '-m comment --comment "netiso:kube-proxy=demo/web:http no-endpoints reject; demo/web:http has no endpoints" '
        "-m tcp -p tcp -d 203.0.113.50 --dport 8080 -j REJECT"]
    remote_only = replace(service("web", "NodePort", endpoints=(REMOTE,), node_port=30080),
                          etp="Local", external_ips=("203.0.113.50",))
    assert next(r for r in chain(rules(topology(remote_only), table="filter"), "KUBE-EXTERNAL-SERVICES")
                if "203.0.113.50" in r).endswith("-d 203.0.113.50 --dport 8080 -j DROP")
