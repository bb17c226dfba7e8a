"""The realization's policy phase: netiso's own policies, or KubeSphere's controller writing them.

Without ``--kubesphere controller`` phase ``policies`` creates every NetworkPolicy netiso's compiler
derived (manifests.policy_objects), with the addresses discovery found. With it, phase
``kubesphere`` creates instead what a KubeSphere user creates - the Workspaces and every
NamespaceNetworkPolicy (the Namespaces already carry KubeSphere's labels and the isolation
annotation, manifests.namespace_objects), plus the scenario's raw ``networkPolicies``, which are the
user's own - then waits, bounded by ``Timeouts.controller_policies``, until ks-controller-manager's
nsnetworkpolicy controller has written its ``nsnp-*`` NetworkPolicies (kubesphere/kubesphere
release-3.4 pkg/controller/network/nsnetworkpolicy/nsnetworkpolicy_controller.go), and diffs them
against the compiler's (kubesphere_controller.diff_policies). The probes that follow measure what
the controller wrote; the oracle keeps predicting from netiso's compiler (the realized topology's
``policies``), so a controller difference that changes a flow is a mismatch as well as a
``controllerDiff`` entry.

Knowingly: the diff is taken once, before probing; a controller that rewrites its policies later
is seen only through the probes. A wait that does not settle is a scenario warning and the diff
names what is missing. A mixin of ``KubeRealization``: it reads ``kube``, ``names``, ``target``,
``topo``, ``planned``, ``timeouts``, ``timings`` and ``backend`` from it, and uses its ``_step``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from netiso.backends.kube import kubesphere_controller as ksc
from netiso.backends.kube import manifests

log = logging.getLogger("netiso.kube")


class PolicyPhase:
    """Phase ``policies`` (netiso writes them) or ``kubesphere`` (KubeSphere's controller writes them)."""

    kube: Any
    names: Any
    target: Any
    topo: Any
    planned: Any
    timeouts: Any
    timings: dict[str, float]
    backend: Any
    node_map: dict[str, str]  # scenario node -> cluster node
    controller_diff: list[ksc.PolicyFinding] | None = None  # None: not in controller mode (or not built yet)

    if TYPE_CHECKING:
        def _step(self, phase: str, objects: Sequence[dict[str, Any]]) -> None: ...

    @property
    def controller_mode(self) -> bool:
        return self.backend.options.kubesphere == "controller"

    def apply_policies(self) -> None:
        """Create the policies (or KubeSphere's objects, wait for its controller and diff); after discovery."""
        policies = manifests.policy_objects(self.topo, self.target)
        if not self.controller_mode:
            self._step("policies", policies)
            return
        info = self.backend.findings.kubesphere if self.backend.findings else None
        nodes = self.kube.list("v1", "Node")  # generateNodeRule's input: every node's snat-node-ips
        for note in (ksc.allowed_namespaces_note(info, self.topo, self.names),
                     ksc.snat_ips_note(ksc.cluster_snat_ips(nodes), self.topo, self.node_map)):
            if note:
                self.topo.warnings.append(note)
        self._step("kubesphere", [*ksc.controller_objects(self.topo, self.names),
                                  *ksc.raw_policies(self.topo, policies)])
        expected = ksc.expected_policies(self.topo, self.names)
        namespaces = [self.names.namespace(p.name) for p in self.topo.scenario.projects]
        self.backend.progress(f"{self.planned.name}: waiting for KubeSphere's controller to write "
                              f"{len(expected)} nsnp-* NetworkPolicies")
        observed, seconds, settled = ksc.wait_for_policies(self.kube, expected, namespaces,
                                                           timeout_s=self.timeouts.controller_policies,
                                                           poll_s=self.timeouts.poll)
        self.timings["controller_policies_s"] = seconds
        if not settled:
            self.topo.warnings.append(
                f"KubeSphere's controller had not written (or kept changing) its nsnp-* NetworkPolicies after "
                f"{self.timeouts.controller_policies:g} s: probed and diffed what was there")
        self.controller_diff = ksc.diff_policies(expected, observed, self.names)
        for finding in self.controller_diff:
            log.warning("%s: %s", self.planned.name, finding.line())

    def findings(self) -> dict[str, Any]:
        """``controllerDiff`` (an empty list: compared, no difference) in controller mode; nothing otherwise."""
        if self.controller_diff is None:
            return {}
        return {"controllerDiff": [f.json() for f in self.controller_diff]}

    def finding_problems(self) -> list[str]:
        """One line per controller difference; in controller mode, a diff that never ran is a problem
        too (a run that skipped the comparison must not pass the suites' controller test vacuously)."""
        if self.controller_mode and self.controller_diff is None:
            return ["--kubesphere controller: KubeSphere's policies were never compared with netiso's compiler"]
        return [f.line() for f in self.controller_diff or []]
