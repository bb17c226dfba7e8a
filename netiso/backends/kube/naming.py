"""Names of everything the kube backend creates in a cluster, derived from one run id.

A real cluster is shared: other people's namespaces, maybe a real KubeSphere, maybe an earlier
netiso run that crashed. So every name netiso creates carries the run id (``nx`` + 6 lowercase
hex, the same shape as the lab's run prefix) and every object carries the run label; the janitor
finds a run's objects by that label and the run's Lease in ``{run}-netiso``, and the reverse map
(:meth:`RunNames.project_of`) turns a namespace seen in the cluster back into the scenario's
project, so reports speak the scenario's names.

Limits enforced here (Kubernetes API validation, k8s.io/apimachinery/pkg/util/validation):
namespace and pod names are DNS-1123 labels (63 characters; a pod name longer than 63 would also
be truncated as the pod's hostname, which netexec's ``/hostname`` reports); label values are at
most 63 characters. A name that breaks a limit is a ``ValueError`` that names the scenario
object, raised while planning, before anything is created.

>>> names = RunNames(run="nx0a1b2c")
>>> names.namespace("shop"), names.system_namespace, names.project_of("nx0a1b2c-shop")
('nx0a1b2c-shop', 'nx0a1b2c-netiso', 'shop')
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from netiso.model.types import PodInfo

RUN_LABEL = "netiso.io/run"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "netiso"
LEASE_NAME = "netiso-run"
SYSTEM_SUFFIX = "netiso"

RUN_RE = re.compile(r"^nx[0-9a-f]{6}$")
_DNS_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
DNS_LABEL_MAX = 63
LABEL_VALUE_MAX = 63


def check_dns_label(value: str, what: str) -> str:
    """``value`` if it is a DNS-1123 label (<= 63 chars, lowercase alphanumerics and '-'); else ValueError.

    >>> try:
    ...     check_dns_label("Shop", "namespace for project 'Shop'")
    ... except ValueError as exc:
    ...     print(str(exc)[:60])
    namespace for project 'Shop': 'Shop' is not a DNS label (low
    """
    if len(value) > DNS_LABEL_MAX:
        raise ValueError(f"{what}: {value!r} is {len(value)} characters, more than the {DNS_LABEL_MAX} "
                         "Kubernetes allows")
    if not _DNS_LABEL_RE.match(value):
        raise ValueError(f"{what}: {value!r} is not a DNS label (lowercase letters, digits and '-', "
                         "starting and ending with an alphanumeric)")
    return value


def check_label_value(value: str, what: str) -> str:
    """``value`` if it is a valid label value (<= 63 chars); else ValueError naming ``what``."""
    if len(value) > LABEL_VALUE_MAX or not _LABEL_VALUE_RE.match(value):
        raise ValueError(f"{what}: {value!r} is not a valid label value (at most {LABEL_VALUE_MAX} characters: "
                         "alphanumerics, '-', '_', '.', starting and ending with an alphanumeric)")
    return value


@dataclass(frozen=True)
class RunNames:
    """Every name of one run: ``RunNames.new()`` for a real run, ``RunNames(run="nx0a1b2c")`` in tests."""

    run: str

    def __post_init__(self) -> None:
        if not RUN_RE.match(self.run):
            raise ValueError(f"run id {self.run!r} must be 'nx' followed by 6 lowercase hex digits")

    @classmethod
    def new(cls) -> RunNames:
        """A fresh random run id (``nx`` + 6 hex), like the lab's run prefix."""
        return cls(run="nx" + secrets.token_hex(3))

    # ------------------------------------------------------------------ namespaces

    def namespace(self, project: str) -> str:
        """The cluster namespace of scenario project ``project``: ``{run}-{project}``.

        >>> try:
        ...     RunNames("nx0a1b2c").namespace("a-very-long-project-name-" * 3)
        ... except ValueError as exc:
        ...     print(str(exc).split(": ")[0])
        namespace for project 'a-very-long-project-name-a-very-long-project-name-a-very-long-project-name-'
        """
        return check_dns_label(f"{self.run}-{project}", f"namespace for project {project!r}")

    @property
    def system_namespace(self) -> str:
        """``{run}-netiso``: node-probe pods and the run Lease live here."""
        return f"{self.run}-{SYSTEM_SUFFIX}"

    def project_of(self, namespace: str) -> str | None:
        """The scenario project of a cluster namespace of this run; None if not ours (or the system one).

        >>> names = RunNames("nx0a1b2c")
        >>> names.project_of("nx0a1b2c-netiso"), names.project_of("nx999999-shop"), names.project_of("shop")
        (None, None, None)
        """
        prefix = f"{self.run}-"
        if not namespace.startswith(prefix) or namespace == self.system_namespace:
            return None
        return namespace[len(prefix):] or None

    def workspace(self, workspace: str) -> str:
        """The ``kubesphere.io/workspace`` label value of a scenario workspace: ``{run}-{workspace}``."""
        return check_label_value(f"{self.run}-{workspace}", f"workspace label for workspace {workspace!r}")

    # ------------------------------------------------------------------ labels

    @property
    def labels(self) -> dict[str, str]:
        """The labels every object of the run carries (a fresh dict each time)."""
        return {RUN_LABEL: self.run, MANAGED_BY_LABEL: MANAGED_BY}

    @property
    def selector(self) -> str:
        """The label selector of this run's objects: ``netiso.io/run=<run>``."""
        return f"{RUN_LABEL}={self.run}"

    # ------------------------------------------------------------------ pods

    def pod_name(self, pod: PodInfo) -> str:
        """A workload replica's pod name: ``{workload}-{scenario node}`` as the lab and render name it.

        Scenario node names, not cluster node names: the pod name is how answers map back to
        the scenario (netexec ``/hostname`` returns it), independent of the node map.
        """
        return check_dns_label(pod.name, f"pod name of {pod.symbol}")

    def node_pod(self, node: str) -> str:
        """The hostNetwork probe pod standing for scenario node ``node``: ``node-{node}``."""
        return check_dns_label(f"node-{node}", f"probe pod name for node:{node}")

    def node_of_pod(self, pod_name: str) -> str | None:
        """Reverse of :meth:`node_pod`: the scenario node of a node-probe pod name, else None."""
        return pod_name[len("node-"):] if pod_name.startswith("node-") and len(pod_name) > 5 else None

    # ------------------------------------------------------------------ ingress-nginx

    @property
    def ingress_class(self) -> str:
        """The IngressClass of this run (and ``--ingress-class`` of its controllers)."""
        return f"netiso-{self.run}"

    @property
    def controller_class(self) -> str:
        """``spec.controller`` of the IngressClass and ``--controller-class`` of the controllers."""
        return f"netiso.io/{self.run}"

    @property
    def ingress_rbac(self) -> str:
        """Name of the controllers' ServiceAccount, Role(Binding) and ClusterRole(Binding)."""
        return f"netiso-{self.run}-ingress-nginx"

    @staticmethod
    def election_id(service_name: str) -> str:
        """The leader-election Lease of one controller (per controller Service, in its namespace)."""
        return f"{service_name}-leader"
