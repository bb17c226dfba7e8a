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
emulation as an API create.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml

from .controllers import Controllers
from .exec_ws import ExecHandler
from .resources import Resource
from .seed import seed_cluster
from .selectors import labels_dict_selector
from .server import KubeApiServer, RecordedRequest
from .store import Store
from .workloads import WorkloadControllers

CONTEXT = "netiso-test"


class FakeCluster:
    def __init__(self, directory: Path | None = None, *, token: str = "netiso-test-token",
                 user: str = "netiso-tester") -> None:
        self._tmp = None if directory is not None else tempfile.TemporaryDirectory(prefix="fake-kube-")
        self.directory = Path(directory if directory is not None else self._tmp.name)  # type: ignore[union-attr]
        self.store = Store()
        self.controllers = Controllers(self.store)
        self.workloads: WorkloadControllers | None = None
        self.server = KubeApiServer(self.store, token=token, user=user)
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
        if res.namespaced:
            namespace = namespace or "default"
            ns_res = self._resource("v1", "Namespace")
            if self.store.get(ns_res, None, namespace) is None:
                self.store.create(ns_res, None, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        return self.store.create(res, namespace, obj, keep_status=True)

    def deny(self, verb: str, resource: str, group: str = "") -> None:
        """From now on SelfSubjectAccessReview answers allowed=false for (verb, group, resource) and
        real requests get 403 Forbidden. ``resource`` may name a subresource (``pods/exec``); ``"*"``
        matches any verb, resource or group."""
        self.server.deny(verb, resource, group)

    def service_account_lag(self, namespace: str, refusals: int) -> None:
        """The next ``refusals`` pod creates in ``namespace`` are refused as the ServiceAccount
        admission plugin refuses them while the namespace's ``default`` ServiceAccount does not exist
        yet (a fresh namespace on a real cluster, for a few milliseconds)."""
        self.server.service_account_lag[namespace] = refusals

    def pod_never_ready(self, name: str, namespace: str | None = None,
                        event: str = 'Failed to pull image "registry.k8s.io/e2e-test-images/agnhost:2.53": '
                                      "rpc error: code = NotFound desc = failed to pull and unpack image",
                        reason: str = "Failed") -> None:
        """That pod (in ``namespace``, or in any namespace) stays Pending and not Ready, and a Warning
        Event with ``reason``/``event`` naming it is recorded when it is created (or now, if it exists)."""
        self.controllers.never_ready[(namespace, name)] = (reason, event)
        pods = self._resource("v1", "Pod")
        for pod in self.store.list(pods, namespace, lambda p: p["metadata"]["name"] == name):
            self.store.replace(pods, pod["metadata"]["namespace"], name,
                               {**pod, "status": self.controllers.pod_status(pod)}, "status")

    def pod_ready_after(self, name: str, namespace: str, polls: int) -> None:
        """That pod is created Pending and not Ready (with a Normal "Pulling" event) and turns Running and
        Ready on the ``polls``-th GET/list of pods that follows, as a slow image pull would look to a
        client polling it."""
        self.controllers.never_ready[(namespace, name)] = ("Pulling", 'Pulling image "registry.k8s.io/e2e-test-images/'
                                                                     'agnhost:2.53"')
        left = [polls]
        pods = self._resource("v1", "Pod")

        def count(rec: RecordedRequest) -> None:
            if left[0] <= 0 or rec.method != "GET" or "/pods" not in rec.path or rec.path.endswith("/exec"):
                return
            left[0] -= 1
            if left[0] == 0:
                self.controllers.never_ready.pop((namespace, name), None)
                pod = self.store.get(pods, namespace, name)
                if pod is not None:
                    self.store.replace(pods, namespace, name, {**pod, "status": self.controllers.pod_status(pod)}, "status")

        self.server.on_request.append(count)

    def enable_workload_controllers(self) -> WorkloadControllers:
        """From now on DaemonSets, Deployments and Jobs get pods and status, calico-node acts and the
        load-balancer add-ons start serving when installed (workloads.py); for clusters that start
        empty, as a fresh kind cluster does (``seed_fresh_kind``)."""
        if self.workloads is None:
            self.workloads = WorkloadControllers(self.store, self.controllers, self.server.pod_logs)
        return self.workloads

    def set_namespace_linger(self, reads: int) -> None:
        """Deleted namespaces stay visible in phase Terminating for ``reads`` GETs of them."""
        self.store.namespace_linger = reads

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
