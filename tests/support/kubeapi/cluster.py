"""FakeCluster: one fake API server, its store, its controllers, and a kubeconfig pointing at it.

Why: the kube backend's tests want "a cluster" as one object: seed it, hand its kubeconfig to the
code under test, decide what exec answers and which permissions are missing, then assert on the
objects left behind and on the requests received in order. This is that object; the HTTP side is
server.py, state is store.py, controller emulation is controllers.py, kind-like content is
seed.py.

Mirrors a kubeconfig as ``kind get kubeconfig`` writes it (one cluster, one user, one context,
``current-context`` set), except that the user authenticates with a bearer token over plain
HTTP instead of client certificates over TLS. ``add`` seeds any object directly into the store
(no authorisation, status kept, the namespace created when missing), running the same controller
emulation as an API create, as an object that is "already there" (it never waits, see below).

Time (lifecycle.py): what a client creates or deletes through the API moves on only as the client
reads it again (pods start, workloads roll out, CRDs get Established, namespaces and pods terminate);
``timing`` tunes each step per test, ``instant()`` switches them all off for a test that wants the
old everything-at-once behaviour (and says why).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml

from .controllers import Controllers
from .exec_ws import ExecHandler
from .lifecycle import Lifecycle, Timing
from .rbac import DEFAULT_BINDING, Subject
from .resources import Resource
from .seed import seed_cluster
from .selectors import labels_dict_selector
from .server import KubeApiServer, RecordedRequest
from .store import Store
from .workloads import WorkloadControllers
from .writes import Strictness

CONTEXT = "netiso-test"


class FakeCluster:
    def __init__(self, directory: Path | None = None, *, token: str = "netiso-test-token",
                 user: str = "netiso-tester", timing: Timing | None = None) -> None:
        self._tmp = None if directory is not None else tempfile.TemporaryDirectory(prefix="fake-kube-")
        self.directory = Path(directory if directory is not None else self._tmp.name)  # type: ignore[union-attr]
        self.store = Store()
        self.controllers = Controllers(self.store)
        self.workloads: WorkloadControllers | None = None
        self.timing = timing or Timing()
        self.lifecycle = Lifecycle(self.store, self.controllers, self.timing)
        self.server = KubeApiServer(self.store, token=token, user=user)
        self.server.lifecycle = self.lifecycle
        self.url: str = self.server.start()
        self.token = token
        self.kubeconfig: Path = self.directory / "kubeconfig"
        self.kubeconfig.write_text(yaml.safe_dump(self.kubeconfig_dict()))

    def kubeconfig_dict(self, context: str = CONTEXT) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Config", "preferences": {}, "current-context": context,
                "clusters": [{"name": context, "cluster": {"server": self.url}}],
                "users": [{"name": context, "user": {"token": self.token}}],
                "contexts": [{"name": context, "context": {"cluster": context, "user": context}}]}

    # -- what tests read ----------------------------------------------------------------------
    @property
    def requests(self) -> list[RecordedRequest]:
        return self.server.requests

    def writes(self) -> list[RecordedRequest]:
        """The mutating requests (POST/PUT/PATCH/DELETE) in the order received."""
        return [r for r in self.requests if r.method in ("POST", "PUT", "PATCH", "DELETE")]

    @property
    def exec_handler(self) -> ExecHandler:
        return self.server.exec_handler

    @exec_handler.setter
    def exec_handler(self, handler: ExecHandler) -> None:
        self.server.exec_handler = handler

    def _resource(self, api_version: str, kind: str) -> Resource:
        res = self.store.catalogue().by_kind(api_version, kind)
        if res is None:
            raise KeyError(f"the fake cluster serves no {kind} in {api_version} (add its CRD first)")
        return res

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict | None:
        return self.store.get(self._resource(api_version, kind), namespace, name)

    def list(self, api_version: str, kind: str, namespace: str | None = None,
             labels: dict | None = None) -> list[dict]:
        return self.store.list(self._resource(api_version, kind), namespace, labels_dict_selector(labels))

    def events_for(self, pod: str, namespace: str) -> list[dict]:
        return [e for e in self.list("v1", "Event", namespace) if e["involvedObject"].get("name") == pod]

    # -- what tests change --------------------------------------------------------------------
    def add(self, obj: dict) -> dict:
        res = self._resource(obj["apiVersion"], obj["kind"])
        namespace = (obj.get("metadata") or {}).get("namespace")
        with self.lifecycle.seeding():  # already there: a seeded pod runs, a seeded CRD is served
            if res.namespaced:
                namespace = namespace or "default"
                ns_res = self._resource("v1", "Namespace")
                if self.store.get(ns_res, None, namespace) is None:
                    self.store.create(ns_res, None, {"apiVersion": "v1", "kind": "Namespace",
                                                     "metadata": {"name": namespace}})
            return self.store.create(res, namespace, obj, keep_status=True)

    def instant(self) -> FakeCluster:
        """No time from now on: pods start, workloads roll out, CRDs are Established at their write,
        deleted namespaces and pods vanish at once, exec output comes in one frame."""
        for name, value in vars(Timing.instant()).items():
            setattr(self.timing, name, value)
        return self

    def deny(self, verb: str, resource: str, group: str = "") -> None:
        """From now on SelfSubjectAccessReview answers allowed=false for (verb, group, resource) and
        real requests get 403 Forbidden. ``resource`` may name a subresource (``pods/exec``); ``"*"``
        matches any verb, resource or group. Done in RBAC (rbac.py): the test user's cluster-admin
        binding is pointed at a ClusterRole granting every served resource but the denied ones."""
        self.server.deny(verb, resource, group)

    @property
    def strict(self) -> Strictness:
        """The real-server behaviours in force (writes.py): validation, admission, server-side apply and
        RBAC are on by default; ``strict.pod_security_default`` is the cluster-wide Pod Security level."""
        return self.server.strict

    def bind_rbac(self, documents: list[dict], service_account: tuple[str, str] = ("netiso-system", "netiso")) -> None:
        """Store ``documents`` (e.g. cluster-configs/kube/rbac.yaml), drop the test user's cluster-admin
        binding, and from now on authenticate the kubeconfig's token as that ServiceAccount, so every
        request and review is decided by the rules those documents bind to it."""
        for doc in documents:
            self.add(doc)
        bindings = self._resource("rbac.authorization.k8s.io/v1", "ClusterRoleBinding")
        if self.store.get(bindings, None, DEFAULT_BINDING) is not None:
            self.store.delete(bindings, None, DEFAULT_BINDING)
        who = Subject.service_account(*service_account)
        self.server.user, self.server.groups = who.user, who.groups

    def service_account_lag(self, namespace: str, refusals: int) -> None:
        """The next ``refusals`` pod creates in ``namespace`` are refused as the ServiceAccount
        admission plugin refuses them while the namespace's ``default`` ServiceAccount does not exist
        yet (a fresh namespace on a real cluster, for a few milliseconds)."""
        self.server.service_account_lag[namespace] = refusals

    def pod_never_ready(self, name: str, namespace: str | None = None,
                        event: str = 'Failed to pull image "registry.k8s.io/e2e-test-images/agnhost:2.53": '
                                      "rpc error: code = NotFound desc = failed to pull and unpack image",
                        reason: str = "Failed") -> None:
        """That pod (in ``namespace``, or in any namespace) never gets Ready, and a Warning Event with
        ``reason``/``event`` naming it is recorded when it is created (or now, if it exists).

        By ``reason``: ``Unhealthy`` (event e.g. ``Readiness probe failed: ...``) = Running, its container
        started, Ready False (the kubelet's prober); ``FailedScheduling`` (event e.g. ``0/3 nodes are
        available: ...``) = no node for a pod not pinned by ``nodeName``, from the default-scheduler;
        anything else (``Failed``, ``BackOff``) = Pending, its containers waiting (an image pull)."""
        self.controllers.never_ready[(namespace, name)] = (reason, event)
        pods = self._resource("v1", "Pod")
        for pod in self.store.list(pods, namespace, lambda p: p["metadata"]["name"] == name):
            self.store.replace(pods, pod["metadata"]["namespace"], name,
                               {**pod, "status": self.controllers.pod_status(pod)}, "status")

    def pod_ready_after(self, name: str, namespace: str, polls: int) -> None:
        """That pod, when created through the API, is Pending and not Ready (with a Normal "Pulling" event)
        and turns Running and Ready on the ``polls``-th read of it that follows (its own ``pod_start``)."""
        self.lifecycle.start_after[(namespace, name)] = max(0, polls - 1)

    def enable_workload_controllers(self) -> WorkloadControllers:
        """From now on DaemonSets, Deployments and Jobs get pods and status, calico-node acts and the
        load-balancer add-ons start serving when installed (workloads.py); for clusters that start
        empty, as a fresh kind cluster does (``seed_fresh_kind``)."""
        if self.workloads is None:
            self.workloads = WorkloadControllers(self.store, self.controllers, self.server.pod_logs,
                                                 gradual=lambda: self.lifecycle.gradual_rollouts)
            self.lifecycle.workloads = self.workloads
        return self.workloads

    def set_namespace_linger(self, reads: int) -> None:
        """Deleted namespaces stay visible in phase Terminating for ``reads`` reads of them (GET or LIST)."""
        self.timing.namespace_finalize = reads

    def drop_answers(self, posts: int) -> None:
        """The next ``posts`` POSTs are served (the object is created) but the connection closes before
        the answer, as when a load balancer in front of the apiserver resets it: the client cannot know."""
        self.server.drop_answers = posts

    def throttle(self, requests: int, *, code: int = 429, retry_after: int = 1, method: str | None = None) -> None:
        """The next ``requests`` API requests (of ``method``, or any) are refused before they are served:
        429 as API Priority and Fairness refuses them, or 503 (``code=503``) as an overloaded apiserver
        does, with ``Retry-After``."""
        self.server.throttled += [(code, retry_after, method)] * requests

    def seed(self, **kwargs: Any) -> FakeCluster:
        seed_cluster(self, **kwargs)
        return self

    def stop(self) -> None:
        self.server.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> FakeCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
