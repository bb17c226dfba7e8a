"""Readiness predicates on real object shapes, and the install runtime's order, reuse and timeout messages.

The runtime is driven through its own ``ClusterApi`` seam by an in-memory stand-in API
(``MemoryApi`` below: a dict of objects, no Kubernetes client involved); the Kubernetes client
path (``DynamicApi``: server-side apply, discovery refresh after CRDs, reads) is exercised against
the emulated API server in test_kind_end_to_end_emulated.py, and against a real cluster only by the
kind workflow.
"""

from __future__ import annotations

from typing import Any

import pytest

from netiso.backends.kind import install
from netiso.backends.kind.addons import MARKER_NAME, Apply, Wait, install_plan
from netiso.backends.kind.install import AddonNotReady

# status blocks shaped as `kubectl get -o yaml` shows them on a kind cluster
DS_READY = {"status": {"currentNumberScheduled": 3, "desiredNumberScheduled": 3, "numberAvailable": 3,
                       "numberMisscheduled": 0, "numberReady": 3, "observedGeneration": 1, "updatedNumberScheduled": 3}}
DS_ROLLING = {"status": {"currentNumberScheduled": 3, "desiredNumberScheduled": 3, "numberReady": 2,
                         "numberUnavailable": 1, "observedGeneration": 1, "updatedNumberScheduled": 3}}
DEPLOY_AVAILABLE = {"status": {"availableReplicas": 1, "readyReplicas": 1, "replicas": 1, "updatedReplicas": 1, "conditions": [
    {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
    {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]}}
DEPLOY_PROGRESSING = {"status": {"replicas": 1, "unavailableReplicas": 1, "conditions": [
    {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"}]}}
JOB_DONE = {"status": {"succeeded": 1, "conditions": [{"type": "SuccessCriteriaMet", "status": "True"},
                                                     {"type": "Complete", "status": "True"}]}}
JOB_FAILED = {"status": {"failed": 6, "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]}}


def node(name: str, ready: bool, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name, "annotations": annotations or {}},
            "status": {"conditions": [{"type": "MemoryPressure", "status": "False"},
                                      {"type": "Ready", "status": "True" if ready else "False",
                                       "reason": "KubeletReady" if ready else "KubeletNotReady"}]}}


def test_daemonset_ready_only_when_every_scheduled_pod_is_ready() -> None:
    assert install.daemonset_ready(DS_READY) == (True, "3/3 pods ready, 3 updated")
    assert install.daemonset_ready(DS_ROLLING)[0] is False
    assert install.daemonset_ready({"status": {"desiredNumberScheduled": 0}})[0] is False
    assert install.daemonset_ready(None) == (False, "not created yet")


def test_deployment_and_job_follow_their_conditions() -> None:
    assert install.deployment_available(DEPLOY_AVAILABLE)[0] is True
    assert install.deployment_available(DEPLOY_PROGRESSING) == (False, "0/1 available, 0 updated, 1 old replica(s) left")
    assert install.job_complete(JOB_DONE)[0] is True
    assert install.job_complete(JOB_FAILED) == (False, "failed (6 failed pods)")


def test_nodes_ready_and_tunnel_annotations_name_the_laggards() -> None:
    key = "projectcalico.org/IPv4VXLANTunnelAddr"
    nodes = [node("c-control-plane", True, {key: "100.64.12.0"}), node("c-worker", False)]
    assert install.nodes_ready(nodes) == (False, "not Ready: c-worker")
    assert install.nodes_annotated(nodes, key) == (False, "missing on c-worker")
    assert install.nodes_ready([]) [0] is False


def test_ippool_must_match_the_mode() -> None:
    pool = {"spec": {"cidr": "100.64.0.0/16", "ipipMode": "Always", "vxlanMode": "Never", "natOutgoing": True}}
    assert install.ippool_matches(pool, {"ipipMode": "Always", "vxlanMode": "Never"})[0] is True
    ok, state = install.ippool_matches(pool, {"ipipMode": "Never", "vxlanMode": "Always"})
    assert not ok and "'ipipMode': 'Always'" in state


class MemoryApi:
    """In-memory stand-in for the ClusterApi seam: objects by (kind, namespace, name)."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str | None, str], dict[str, Any]] = {}
        self.applied: list[tuple[str, str]] = []
        self.refuse: dict[str, int] = {}  # kind -> number of webhook refusals before admitting

    def apply(self, doc: dict[str, Any]) -> None:
        if self.refuse.get(doc["kind"], 0) > 0:
            self.refuse[doc["kind"]] -= 1
            raise RuntimeError('Internal error occurred: failed calling webhook "ipaddresspoolvalidationwebhook.metallb.io": '
                               'dial tcp 10.96.61.4:443: connect: connection refused')
        meta = doc["metadata"]
        key = (doc["kind"], meta.get("namespace"), meta["name"])
        status = (self.objects.get(key) or {}).get("status")  # like a server: apply never writes status
        if doc["kind"] == "CustomResourceDefinition" and status is None:  # Established only on a later read
            status = {"conditions": [{"type": "Established", "status": "False"}]}
        self.objects[key] = {**doc, **({"status": status} if status else {})}
        self.applied.append((doc["kind"], meta["name"]))

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        obj = self.objects.get((kind, namespace, name))
        if obj is not None and kind == "CustomResourceDefinition":  # time passes: the next read sees it Established
            self.objects[(kind, namespace, name)] = {**obj, "status": {"conditions": [
                {"type": "Established", "status": "True"}]}}
        return obj

    def list(self, api_version: str, kind: str) -> list[dict[str, Any]]:
        return [o for (k, _, _), o in self.objects.items() if k == kind]


def ready_world(api: MemoryApi, enc: str) -> None:
    key = {"ipip": "projectcalico.org/IPv4IPIPTunnelAddr", "vxlan": "projectcalico.org/IPv4VXLANTunnelAddr"}.get(enc)
    for n in ("c-control-plane", "c-worker", "c-worker2"):
        api.objects[("Node", None, n)] = node(n, True, {key: "100.64.1.0"} if key else {})
    for ns, name in [("kube-system", "calico-node"), ("metallb-system", "speaker")]:
        api.objects[("DaemonSet", ns, name)] = DS_READY
    for ns, name in [("kube-system", "calico-kube-controllers"), ("metallb-system", "controller")]:
        api.objects[("Deployment", ns, name)] = DEPLOY_AVAILABLE
    modes = {"direct": ("Never", "Never"), "ipip": ("Always", "Never"), "vxlan": ("Never", "Always")}[enc]
    api.objects[("IPPool", None, "default-ipv4-ippool")] = {
        "spec": {"cidr": "100.64.0.0/16", "ipipMode": modes[0], "vxlanMode": modes[1], "natOutgoing": True}}


def test_run_plan_applies_every_object_in_plan_order_and_passes_every_wait() -> None:
    api = MemoryApi()
    plan = install_plan("vxlan", "metallb", "100.64.0.0/16", "172.18.0.0/16", "c", "abcd1234", timeout=5)
    ready_world(api, "vxlan")
    api.refuse["IPAddressPool"] = 2
    lines: list[str] = []
    install.run_plan(api, plan, lines.append, sleep=lambda s: None)
    assert api.applied == [(d["kind"], d["metadata"]["name"]) for d in plan.documents()]
    assert any(line.startswith("wait: every node annotated projectcalico.org/IPv4VXLANTunnelAddr") and "ready in" in line
               for line in lines)
    assert install.installed(api, "abcd1234") and not install.installed(api, "ffffffff")


def test_run_plan_on_a_marked_cluster_only_waits() -> None:
    api = MemoryApi()
    ready_world(api, "ipip")
    plan = install_plan("ipip", "metallb", "100.64.0.0/16", "172.18.0.0/16", "c", "abcd1234", timeout=5)
    install.run_plan(api, plan, skip_apply=True, sleep=lambda s: None)
    assert api.applied == []


def test_wait_timeout_message_names_the_wait_the_limit_and_the_last_state() -> None:
    api = MemoryApi()
    api.objects[("DaemonSet", "kube-system", "calico-node")] = DS_ROLLING
    with pytest.raises(AddonNotReady) as info:
        install.wait_for(api, Wait("daemonset", "calico-node", "kube-system", timeout=0), sleep=lambda s: None)
    assert str(info.value) == (
        "daemonset kube-system/calico-node: every scheduled pod ready: not ready after 0s (last: 2/3 pods ready, 3 updated)"
    )


def test_wait_returns_once_the_state_turns_ready() -> None:
    api = MemoryApi()
    polls = {"n": 0}

    class Turning(MemoryApi):
        def list(self, api_version: str, kind: str) -> list[dict[str, Any]]:
            polls["n"] += 1
            return [node("c-worker", polls["n"] >= 3)]

    assert install.wait_for(Turning(), Wait("nodes-ready", "nodes", timeout=60), interval=0, sleep=lambda s: None) == "1 nodes"
    assert polls["n"] == 3
    assert api.applied == []


def test_webhook_that_never_admits_gives_a_clear_message() -> None:
    api = MemoryApi()
    api.refuse["Eip"] = 10**6
    step = Apply("openelb eip", "generated", ({"kind": "Eip", "metadata": {"name": "netiso-eip"}},), until_admitted=0)
    with pytest.raises(AddonNotReady, match=r"Eip netiso-eip not admitted after 0s .*admission webhook"):
        install.apply_step(api, step, sleep=lambda s: None)


def test_other_apply_errors_are_not_retried() -> None:
    class Broken(MemoryApi):
        def apply(self, doc: dict[str, Any]) -> None:
            raise ValueError("field spec.addresses: Invalid value")

    step = Apply("pool", "generated", ({"kind": "IPAddressPool", "metadata": {"name": "p"}},), until_admitted=60)
    with pytest.raises(AddonNotReady, match="Invalid value"):
        install.apply_step(Broken(), step, sleep=lambda s: None)


def test_marker_name_is_the_one_the_plan_writes() -> None:
    plan = install_plan("direct", "openelb", "100.64.0.0/16", "172.18.0.0/16", "c", "h")
    assert plan.documents()[-1]["metadata"]["name"] == MARKER_NAME
