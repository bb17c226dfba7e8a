"""One connection to a Kubernetes API server, with every failure turned into a sentence.

Mirrors what ``kubectl`` does with a kubeconfig: the file comes from ``--kubeconfig``, else
``$KUBECONFIG`` (a path list of existing files), else ``~/.kube/config``;
``--context`` picks a context, else the ``current-context`` (several files are merged by the
client's KubeConfigMerger: first definition of a name wins; the context is chosen by kubeconfig.py as kubectl
chooses it, the first file's current-context, and every malformed file is refused there first). Loading, requests and exec
all go through the official ``kubernetes`` Python client (37.x, unpatched):
``config.load_kube_config``, ``ApiClient.param_serialize``/``call_api``/``response_deserialize``
for plain REST calls, ``kubernetes.stream.stream`` over ``connect_get_namespaced_pod_exec`` for
exec (the websocket ``v4/v5.channel.k8s.io`` protocol, exit code from the channel-3 Status).

Why plain REST paths instead of the typed APIs: netiso applies objects given as dicts (the
ones ``netiso render`` emits, the same YAML a user can ``kubectl apply``), so a small table
``(apiVersion, kind) -> (plural, namespaced)`` (:data:`KINDS`) builds the URL like kubectl's
RESTMapper would, without a discovery round trip per kind.

Knowingly different from kubectl: no discovery-based RESTMapper (an unknown kind is a
programming error here, not a lookup), no exec-credential plugins beyond what the Python
client supports, no server-side apply (create + explicit ownership by label instead, see
``cleanup``). Errors (worded in refusals.py) are :class:`BackendUnavailable` for environment problems (no kubeconfig,
unknown context, unreachable server, TLS, 401, 403) and :class:`KubeApiError` for an API
answer the caller may handle (404, 409, ...). A 429 or 5xx carrying ``Retry-After`` (API Priority
and Fairness, an apiserver restarting) was not served and is sent again after the wait, as client-go
does (:func:`retry_after`). Exec reads its exit code from the channel-3 Status itself
(:func:`exit_code`): the client's ``returncode`` raises on a Failure without an ExitCode cause.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import urllib3
from kubernetes import client as kclient
from kubernetes import config as kconfig
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from netiso.backends.base import BackendUnavailable
from netiso.backends.kube.answers import RETRIES, ExecFailure, answer_lost, exit_code, retry_after
from netiso.backends.kube.kubeconfig import resolve as resolve_kubeconfig
from netiso.backends.kube.refusals import AnswerLost, KubeApiError, Target, translate, unreachable

log = logging.getLogger("netiso.kube")

# (apiVersion, kind) -> (plural, namespaced): what netiso reads or writes.
KINDS: dict[tuple[str, str], tuple[str, bool]] = {
    ("v1", "Namespace"): ("namespaces", False),
    ("v1", "Node"): ("nodes", False),
    ("v1", "Pod"): ("pods", True),
    ("v1", "Service"): ("services", True),
    ("v1", "ServiceAccount"): ("serviceaccounts", True),
    ("v1", "ConfigMap"): ("configmaps", True),
    ("v1", "Event"): ("events", True),
    ("apps/v1", "DaemonSet"): ("daemonsets", True),
    ("discovery.k8s.io/v1", "EndpointSlice"): ("endpointslices", True),
    ("networking.k8s.io/v1", "NetworkPolicy"): ("networkpolicies", True),
    ("networking.k8s.io/v1", "Ingress"): ("ingresses", True),
    ("networking.k8s.io/v1", "IngressClass"): ("ingressclasses", False),
    ("rbac.authorization.k8s.io/v1", "Role"): ("roles", True),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): ("rolebindings", True),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): ("clusterroles", False),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): ("clusterrolebindings", False),
    ("coordination.k8s.io/v1", "Lease"): ("leases", True),
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"): ("selfsubjectaccessreviews", False),
    ("crd.projectcalico.org/v1", "IPPool"): ("ippools", False),
    ("crd.projectcalico.org/v1", "BlockAffinity"): ("blockaffinities", False),
    ("projectcalico.org/v3", "IPPool"): ("ippools", False),  # native v3 CRDs (or Calico's aggregated API server)
    ("projectcalico.org/v3", "BlockAffinity"): ("blockaffinities", False),
    ("crd.projectcalico.org/v1", "FelixConfiguration"): ("felixconfigurations", False),  # felix_settings.py
    ("projectcalico.org/v3", "FelixConfiguration"): ("felixconfigurations", False),
    ("metallb.io/v1beta1", "IPAddressPool"): ("ipaddresspools", True),
    ("metallb.io/v1beta1", "L2Advertisement"): ("l2advertisements", True),
    ("metallb.io/v1beta1", "ServiceL2Status"): ("servicel2statuses", True),
    ("network.kubesphere.io/v1alpha2", "Eip"): ("eips", False),
    # --kubesphere controller (kubesphere_controller.py): what a KubeSphere user creates, and its config
    ("network.kubesphere.io/v1alpha1", "NamespaceNetworkPolicy"): ("namespacenetworkpolicies", True),
    ("tenant.kubesphere.io/v1alpha1", "Workspace"): ("workspaces", False),
    ("installer.kubesphere.io/v1alpha1", "ClusterConfiguration"): ("clusterconfigurations", True),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"): ("customresourcedefinitions", False),
}


def resource_of(api_version: str, kind: str) -> tuple[str, bool]:
    """``(plural, namespaced)`` of a kind netiso uses; ValueError for any other."""
    try:
        return KINDS[(api_version, kind)]
    except KeyError:
        raise ValueError(f"netiso does not know the API resource of {api_version} {kind}") from None


def group_of(api_version: str) -> str:
    """The API group of ``apiVersion`` (``""`` for the core group)."""
    return api_version.split("/")[0] if "/" in api_version else ""


def path_of(api_version: str, kind: str, namespace: str | None = None, name: str | None = None) -> str:
    """The REST path of a collection or object, as kubectl's RESTMapper builds it.

    >>> path_of("v1", "Pod", "shop", "web-worker")
    '/api/v1/namespaces/shop/pods/web-worker'
    >>> path_of("crd.projectcalico.org/v1", "IPPool")
    '/apis/crd.projectcalico.org/v1/ippools'
    """
    plural, namespaced = resource_of(api_version, kind)
    root = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    if namespaced and namespace:
        root += f"/namespaces/{quote(namespace, safe='')}"
    root += f"/{plural}"
    if name:
        root += f"/{quote(name, safe='')}"
    return root


def kubeconfig_files(explicit: str | None) -> list[Path]:
    """The kubeconfig files kubectl would read, existing ones only (``--kubeconfig`` must exist)."""
    if explicit:
        return [Path(explicit).expanduser()]
    env = os.environ.get("KUBECONFIG")
    if env:
        return [Path(p).expanduser() for p in env.split(os.pathsep) if p and Path(p).expanduser().is_file()]
    default = Path("~/.kube/config").expanduser()
    return [default] if default.is_file() else []


class Kube:
    """A kubeconfig-loaded API client: REST on dicts, exec, and error translation.

    One :class:`kubernetes.client.ApiClient` per thread (urllib3 pools are thread-safe, but
    ``kubernetes.stream.stream`` swaps ``call_api`` on the client it is given while a websocket
    call runs, so exec always gets a fresh client).
    """

    def __init__(self, configuration: kclient.Configuration, target: Target) -> None:
        self.configuration = configuration
        self.target = target
        self._local = threading.local()

    # ------------------------------------------------------------------ loading

    @classmethod
    def connect(cls, kubeconfig: str | None = None, context: str | None = None) -> Kube:
        """Load the kubeconfig (kubectl's resolution); raises BackendUnavailable with the fix."""
        files = kubeconfig_files(kubeconfig)
        if kubeconfig and not files[0].is_file():
            raise BackendUnavailable(f"--kubeconfig {kubeconfig}: no such file")
        if not files:
            where = f"$KUBECONFIG ({os.environ['KUBECONFIG']})" if os.environ.get("KUBECONFIG") else "~/.kube/config"
            raise BackendUnavailable(
                f"no kubeconfig: {where} does not exist; pass --kubeconfig FILE (and --context NAME) "
                "for the cluster netiso should use")
        path = os.pathsep.join(str(f) for f in files)  # the client merges a path list as kubectl does
        chosen = resolve_kubeconfig(files, context)  # every malformed file is one sentence here (kubeconfig.py)
        configuration = kclient.Configuration()
        try:
            kconfig.load_kube_config(config_file=path, context=chosen, client_configuration=configuration,
                                     persist_config=False)
        except (ConfigException, OSError, ValueError) as exc:
            raise BackendUnavailable(f"kubeconfig {path}, context {chosen!r}: {exc}") from None
        configuration.retries = 1  # a dead server answers in one try; the waits retry on their own
        return cls(configuration, Target(chosen, configuration.host, path))

    @property
    def api(self) -> kclient.ApiClient:
        api = getattr(self._local, "api", None)
        if api is None:
            api = self._local.api = kclient.ApiClient(self.configuration)
        return api

    # ------------------------------------------------------------------ REST

    def request(self, method: str, path: str, *, body: Any = None, query: Mapping[str, Any] | None = None,
                content_type: str | None = None, what: str = "", timeout: float = 30.0, text: bool = False) -> Any:
        """One API call; the decoded JSON answer (a dict), or the body as a string with ``text=True``."""
        api = self.api
        headers = {"Accept": "text/plain, */*" if text else "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        params = [(k, v) for k, v in (query or {}).items() if v is not None]
        what = what or f"{method} {path}"
        # -- begin: Retry-After (H1) --
        # As client-go's rest.Request (checkWait/retryAfterSeconds): a 429 or 5xx that carries Retry-After
        # was not served (API Priority and Fairness, an overloaded or restarting apiserver): wait and send
        # again, up to RETRIES times, each wait capped at MAX_RETRY_WAIT_S.
        for attempt in range(RETRIES + 1):
            try:
                req = api.param_serialize(method=method, resource_path=path, query_params=params, header_params=headers,
                                          body=body, auth_settings=["BearerToken"], collection_formats={})
                resp = api.call_api(*req, _request_timeout=timeout)
                resp.read()
                return api.response_deserialize(resp, {"2XX": "str" if text else "object"}).data
            except ApiException as exc:
                wait = retry_after(exc)
                if wait is None or attempt == RETRIES:
                    raise self.translate(exc, what) from None
                log.info("%s: HTTP %s, Retry-After %s s (attempt %d)", what, exc.status, wait, attempt + 1)
                time.sleep(wait)
            except urllib3.exceptions.HTTPError as exc:
                if answer_lost(exc):  # the request went out; whether it was served is unknown
                    raise AnswerLost(str(self.unreachable(exc))) from None
                raise self.unreachable(exc) from None
        raise AssertionError("unreachable")  # the loop returns or raises
        # -- end: Retry-After (H1) --

    def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """POST ``obj``. A connection lost before the answer is sent once more (-- H1 --): the lost attempt
        may have created it, so a 409 AlreadyExists then, for an object carrying every label ``obj``
        carries (netiso's run label among them), is that object, not a foreign one."""
        meta = obj.get("metadata", {})
        path = path_of(obj["apiVersion"], obj["kind"], meta.get("namespace"))
        what = f"create {obj['kind']} {_ref(meta)}"
        try:
            return self.request("POST", path, body=dict(obj), what=what)
        except AnswerLost as lost:
            log.warning("%s: %s; sending it again", what, lost)
        try:
            return self.request("POST", path, body=dict(obj), what=what)
        except KubeApiError as exc:
            if exc.status != 409 or exc.reason != "AlreadyExists":
                raise
            existing = self.get(obj["apiVersion"], obj["kind"], str(meta.get("name")), meta.get("namespace"))
            labels = dict(meta.get("labels") or {})
            if existing is None or not labels or any(
                    ((existing.get("metadata") or {}).get("labels") or {}).get(k) != v for k, v in labels.items()):
                raise
            log.info("%s: created by the attempt whose answer was lost", what)
            return existing

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        """The object, or None when it does not exist (404)."""
        try:
            return self.request("GET", path_of(api_version, kind, namespace, name),
                                what=f"get {kind} {_ref({'name': name, 'namespace': namespace})}")
        except KubeApiError as exc:
            if exc.status == 404:
                return None
            raise

    def list(self, api_version: str, kind: str, namespace: str | None = None, *,
             label_selector: str | None = None, field_selector: str | None = None) -> list[dict[str, Any]]:
        where = f" in {namespace}" if namespace else ""
        answer = self.request("GET", path_of(api_version, kind, namespace),
                              query={"labelSelector": label_selector, "fieldSelector": field_selector},
                              what=f"list {kind}{where}")
        items = list((answer or {}).get("items") or [])
        for item in items:  # list items carry no apiVersion/kind on a real server
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
        return items

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None, *,
               grace_period_seconds: int | None = None) -> bool:
        """Delete with background propagation; False when it was already gone.

        ``grace_period_seconds``: DeleteOptions.gracePeriodSeconds (0: a pod goes at once, whatever
        its terminationGracePeriodSeconds or a running preStop hook); None: the object's own.
        """
        options: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        if grace_period_seconds is not None:
            options["gracePeriodSeconds"] = grace_period_seconds
        try:
            self.request("DELETE", path_of(api_version, kind, namespace, name), body=options,
                         what=f"delete {kind} {_ref({'name': name, 'namespace': namespace})}")
            return True
        except KubeApiError as exc:
            if exc.status == 404:
                return False
            raise

    def patch(self, api_version: str, kind: str, name: str, patch: Mapping[str, Any],
              namespace: str | None = None) -> dict[str, Any]:
        """A JSON merge patch (RFC 7386), as ``kubectl patch --type merge``."""
        return self.request("PATCH", path_of(api_version, kind, namespace, name), body=dict(patch),
                            content_type="application/merge-patch+json",
                            what=f"patch {kind} {_ref({'name': name, 'namespace': namespace})}")

    def pod_log(self, namespace: str, pod: str, *, tail_lines: int = 5000) -> str:
        """The last lines of a pod's log (``kubectl logs --tail``)."""
        return str(self.request("GET", path_of("v1", "Pod", namespace, pod) + "/log", query={"tailLines": tail_lines},
                                what=f"read the log of pod {namespace}/{pod}", text=True) or "")

    def version(self) -> dict[str, Any]:
        return self.request("GET", "/version", what="read the server version")

    def can_i(self, verb: str, resource: str, group: str = "", namespace: str | None = None,
              subresource: str | None = None) -> tuple[bool, str]:
        """SelfSubjectAccessReview (``kubectl auth can-i``): (allowed, the authorizer's reason)."""
        attrs: dict[str, Any] = {"verb": verb, "resource": resource, "group": group}
        if namespace:
            attrs["namespace"] = namespace
        if subresource:
            attrs["subresource"] = subresource
        review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                  "spec": {"resourceAttributes": attrs}}
        answer = self.request("POST", path_of("authorization.k8s.io/v1", "SelfSubjectAccessReview"), body=review,
                              what="create selfsubjectaccessreviews (kubectl auth can-i)")
        status = (answer or {}).get("status") or {}
        return bool(status.get("allowed")), str(status.get("reason") or "")

    # ------------------------------------------------------------------ exec

    def exec(self, namespace: str, pod: str, argv: Sequence[str], *, container: str | None = None,
             timeout: float = 60.0) -> tuple[str, str, int | None]:
        """Run ``argv`` in a pod through the exec API: (stdout, stderr, exit code or None on timeout)."""
        from kubernetes.stream import stream

        api = kclient.ApiClient(self.configuration)
        core = kclient.CoreV1Api(api)
        kwargs: dict[str, Any] = {"command": list(argv), "stderr": True, "stdin": False, "stdout": True, "tty": False,
                                  "_preload_content": False}
        if container:
            kwargs["container"] = container
        try:
            try:
                resp = stream(core.connect_get_namespaced_pod_exec, pod, namespace, **kwargs)
            except ApiException as exc:
                raise self.translate(exc, f"exec in pod {namespace}/{pod}") from None
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                raise self.unreachable(exc) from None
            try:
                resp.run_forever(timeout=timeout)
                # -- begin: exit status (H1) --
                # timeout=0: read_stdout()/read_stderr() without it block until a frame arrives on that
                # channel, i.e. forever for a command still running that writes nothing to stderr
                out, err = resp.read_stdout(timeout=0), resp.read_stderr(timeout=0)
                # not resp.returncode: it raises on a Failure Status without an ExitCode cause (a CRI
                # error, InternalError) and on a stream closed without any status
                try:
                    rc = None if resp.is_open() else exit_code(_text(resp.read_channel(3)))
                except ExecFailure as failure:
                    raise KubeApiError(failure.code, failure.reason, failure.message,
                                       f"exec in pod {namespace}/{pod}") from None
                # -- end: exit status (H1) --
            finally:
                resp.close()
        finally:
            api.close()
        return _text(out), _text(err), rc

    # ------------------------------------------------------------------ errors (refusals.py)

    def translate(self, exc: ApiException, what: str) -> Exception:
        """ApiException -> BackendUnavailable (401/403/transport) or KubeApiError (anything else)."""
        return translate(exc, what, self.target)

    def unreachable(self, exc: BaseException) -> BackendUnavailable:
        """A transport failure (refused, DNS, TLS, timeout) as one sentence naming the server."""
        return unreachable(exc, self.target)


def _ref(meta: Mapping[str, Any]) -> str:
    ns = meta.get("namespace")
    return f"{ns}/{meta.get('name')}" if ns else str(meta.get("name"))


def _text(data: Any) -> str:
    if data is None:
        return ""
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
