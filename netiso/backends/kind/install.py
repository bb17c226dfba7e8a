"""Runs an :class:`~netiso.backends.kind.addons.InstallPlan` against a cluster: apply, then wait.

Why our own loop: the waits are the part users debug. Each :class:`Wait` is polled with tenacity
until its predicate holds or its timeout passes; the timeout message names the wait, the limit
and the last state seen ("daemonset kube-system/calico-node: every scheduled pod ready: not
ready after 300s (last: 2/3 pods ready)"), which is what a user needs to look at next.

Mirrors ``kubectl apply --server-side --force-conflicts -f`` (field manager ``netiso``) and
``kubectl wait``/``rollout status`` semantics (kubectl pkg/polymorphichelpers/rollout_status.go):
a status counts only once the controller has observed the current spec
(``status.observedGeneration >= metadata.generation``; before that it describes the previous
spec), then a DaemonSet is ready when every scheduled pod is updated and ready, a Deployment when
all its replicas are updated and available, no old replica is left and its ``Available``
condition is True, a Job when ``Complete`` is True, a node when ``Ready`` is True. The
CustomResourceDefinitions of an apply step are waited for until ``Established`` before the next
step (``kubectl wait --for condition=established``): until then the API answers 404 for their kinds.
The API is reached through the official
``kubernetes`` client's DynamicClient (:class:`DynamicApi`); the predicates are plain functions of
the objects, so they are tested on real object shapes without a cluster.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

import yaml
from tenacity import RetryError, Retrying, retry_if_exception, retry_if_result, stop_after_delay, wait_fixed

from netiso.backends.kind.addons import (
    FIELD_MANAGER,
    MARKER_NAME,
    MARKER_NAMESPACE,
    Apply,
    InstallPlan,
    KubeProxySettings,
    Wait,
)

Obj = dict[str, Any]


class AddonNotReady(Exception):
    """A readiness wait ran out of time (the message says which, how long, and the last state)."""


class ClusterApi(Protocol):
    def apply(self, doc: Obj) -> None: ...

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Obj | None: ...

    def list(self, api_version: str, kind: str) -> list[Obj]: ...


# --------------------------------------------------------------------------- predicates


def _condition(obj: Obj, kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status") == "True" for c in (obj.get("status") or {}).get("conditions") or [])


def _observed(obj: Obj) -> bool:
    """The controller has seen the current spec: the status is about it, not about the previous one."""
    generation = (obj.get("metadata") or {}).get("generation")
    observed = (obj.get("status") or {}).get("observedGeneration")
    return generation is None or (observed is not None and int(observed) >= int(generation))


def daemonset_ready(ds: Obj | None) -> tuple[bool, str]:
    """The current spec observed, every scheduled pod updated, ready and available (at least one scheduled)."""
    if ds is None:
        return False, "not created yet"
    if not _observed(ds):
        return False, "spec update not observed yet (status.observedGeneration < metadata.generation)"
    st = ds.get("status") or {}
    want = int(st.get("desiredNumberScheduled") or 0)
    ready = int(st.get("numberReady") or 0)
    updated = int(st.get("updatedNumberScheduled") or 0)
    available = int(st.get("numberAvailable") or 0)
    return (want > 0 and ready == want and updated == want and available >= want), \
        f"{ready}/{want} pods ready, {updated} updated"


def deployment_available(dep: Obj | None) -> tuple[bool, str]:
    """The current spec observed and rolled out (every replica updated and available, no old one left)
    and the ``Available`` condition True: ``kubectl rollout status`` and ``kubectl wait`` together."""
    if dep is None:
        return False, "not created yet"
    st = dep.get("status") or {}
    want = int((dep.get("spec") or {}).get("replicas", 1) or 0)
    updated = int(st.get("updatedReplicas") or 0)
    total = int(st.get("replicas") or 0)
    available = int(st.get("availableReplicas") or 0)
    state = f"{available}/{want} available, {updated} updated"
    if not _observed(dep):
        return False, "spec update not observed yet (status.observedGeneration < metadata.generation)"
    if updated < want or total > updated or available < updated:
        return False, state + (f", {total - updated} old replica(s) left" if total > updated else "")
    return _condition(dep, "Available"), state


def crd_established(crd: Obj | None) -> tuple[bool, str]:
    if crd is None:
        return False, "not created yet"
    return _condition(crd, "Established"), "Established" if _condition(crd, "Established") else "not Established yet"


def job_complete(job: Obj | None) -> tuple[bool, str]:
    if job is None:
        return False, "not created yet"
    st = job.get("status") or {}
    if _condition(job, "Failed"):
        return False, f"failed ({st.get('failed', 0)} failed pods)"
    return _condition(job, "Complete"), f"{st.get('succeeded', 0) or 0} succeeded, {st.get('active', 0) or 0} active"


def nodes_ready(nodes: list[Obj]) -> tuple[bool, str]:
    not_ready = [n["metadata"]["name"] for n in nodes if not _condition(n, "Ready")]
    return (bool(nodes) and not not_ready), (f"not Ready: {', '.join(not_ready)}" if not_ready else f"{len(nodes)} nodes")


def nodes_annotated(nodes: list[Obj], key: str) -> tuple[bool, str]:
    missing = [n["metadata"]["name"] for n in nodes if key not in ((n.get("metadata") or {}).get("annotations") or {})]
    return (bool(nodes) and not missing), (f"missing on {', '.join(missing)}" if missing else f"{len(nodes)} nodes")


def ippool_matches(pool: Obj | None, expect: dict[str, Any]) -> tuple[bool, str]:
    if pool is None:
        return False, "not created yet"
    spec = pool.get("spec") or {}
    wrong = {k: spec.get(k) for k, v in expect.items() if spec.get(k) != v}
    return (not wrong), (f"differs: {wrong}" if wrong else "as expected")


def evaluate(api: ClusterApi, wait: Wait) -> tuple[bool, str]:
    """One poll of ``wait``."""
    if wait.check == "daemonset":
        return daemonset_ready(api.get("apps/v1", "DaemonSet", wait.name, wait.namespace))
    if wait.check == "deployment":
        return deployment_available(api.get("apps/v1", "Deployment", wait.name, wait.namespace))
    if wait.check == "job":
        return job_complete(api.get("batch/v1", "Job", wait.name, wait.namespace))
    if wait.check == "nodes-ready":
        return nodes_ready(api.list("v1", "Node"))
    if wait.check == "node-annotation":
        return nodes_annotated(api.list("v1", "Node"), wait.name)
    if wait.check == "ippool":
        return ippool_matches(api.get("crd.projectcalico.org/v1", "IPPool", wait.name), wait.expect)
    raise ValueError(f"unknown wait {wait.check!r}")


# --------------------------------------------------------------------------- runtime


def wait_for(api: ClusterApi, wait: Wait, interval: float = 2.0, sleep: Callable[[float], None] = time.sleep) -> str:
    """Poll until ready; raise :class:`AddonNotReady` with the last state after ``wait.timeout``."""
    last = {"state": "not polled"}

    def poll() -> bool:
        ok, state = evaluate(api, wait)
        last["state"] = state
        return ok

    retrying = Retrying(
        stop=stop_after_delay(wait.timeout),
        wait=wait_fixed(interval),
        retry=retry_if_result(lambda ok: not ok),
        sleep=sleep,
    )
    try:
        retrying(poll)
    except RetryError:
        raise AddonNotReady(f"{wait.describe()}: not ready after {wait.timeout:.0f}s (last: {last['state']})") from None
    return last["state"]


def _admission_refused(exc: BaseException) -> bool:
    text = str(exc)
    return "webhook" in text or "connection refused" in text or "no endpoints available" in text


CRD_ESTABLISH_S = 120.0


def wait_crds_established(api: ClusterApi, step: Apply, interval: float = 2.0,
                          sleep: Callable[[float], None] = time.sleep) -> None:
    """Poll every CRD ``step`` applied until it is Established (its kinds are served from then on)."""
    for doc in step.documents:
        if doc.get("kind") != "CustomResourceDefinition":
            continue
        name = doc["metadata"]["name"]
        last = {"state": "not polled"}

        def poll(crd_name: str = name, seen: dict[str, str] = last) -> bool:
            ok, seen["state"] = crd_established(api.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", crd_name))
            return ok

        try:
            Retrying(stop=stop_after_delay(CRD_ESTABLISH_S), wait=wait_fixed(interval),
                     retry=retry_if_result(lambda ok: not ok), sleep=sleep)(poll)
        except RetryError:
            raise AddonNotReady(f"{step.name}: CustomResourceDefinition {name}: not Established after "
                                f"{CRD_ESTABLISH_S:.0f}s (last: {last['state']})") from None


def apply_step(api: ClusterApi, step: Apply, interval: float = 2.0, sleep: Callable[[float], None] = time.sleep) -> None:
    if step.until_admitted is None:
        for doc in step.documents:
            api.apply(doc)
        wait_crds_established(api, step, interval, sleep)
        return
    retrying = Retrying(
        stop=stop_after_delay(step.until_admitted),
        wait=wait_fixed(interval),
        retry=retry_if_exception(_admission_refused),
        sleep=sleep,
        reraise=True,
    )
    for doc in step.documents:
        try:
            retrying(api.apply, doc)
        except Exception as exc:
            raise AddonNotReady(
                f"{step.name}: {doc['kind']} {doc['metadata']['name']} not admitted after {step.until_admitted:.0f}s "
                f"(its admission webhook is not answering?): {exc}"
            ) from None
    wait_crds_established(api, step, interval, sleep)


def installed(api: ClusterApi, config_hash: str) -> bool:
    """True when a kept cluster already carries this config's add-ons (the marker ConfigMap)."""
    cm = api.get("v1", "ConfigMap", MARKER_NAME, MARKER_NAMESPACE)
    return bool(cm) and (cm.get("data") or {}).get("hash") == config_hash


def run_plan(
    api: ClusterApi,
    plan: InstallPlan,
    progress: Callable[[str], None] | None = None,
    skip_apply: bool = False,
    sleep: Callable[[float], None] = time.sleep,
    interval: float = 2.0,
) -> None:
    """Apply every step in order and wait at each :class:`Wait` (polled every ``interval`` s); with
    ``skip_apply`` only wait."""
    say = progress or (lambda _line: None)
    for step in plan.steps:
        start = time.monotonic()
        if isinstance(step, Apply):
            if skip_apply:
                continue
            say(f"install: {step.name} ({len(step.documents)} objects) ...")
            apply_step(api, step, interval, sleep=sleep)
            say(f"install: {step.name}: applied in {time.monotonic() - start:.1f}s")
        elif isinstance(step, KubeProxySettings):
            if skip_apply:
                continue
            say(f"install: {step.describe()} ...")
            configure_kube_proxy(api, step)
        else:
            say(f"wait: {step.describe()} (at most {step.timeout:.0f}s) ...")
            state = wait_for(api, step, interval, sleep=sleep)
            say(f"wait: {step.describe()}: ready in {time.monotonic() - start:.1f}s ({state})")


PROXY_SETTINGS_ANNOTATION = "netiso.io/kube-proxy-settings"


def proxy_config_text(current: str, step: KubeProxySettings) -> str:
    """kube-proxy's ``config.conf`` with the step's settings written in, every other field kept.

    >>> text = proxy_config_text("clusterCIDR: 10.244.0.0/16\\nmode: iptables\\n",
    ...     KubeProxySettings(True, False, ("198.18.0.11/32",), "10.244.0.0/16", "t"))
    >>> print(text.strip())
    clusterCIDR: ''
    mode: iptables
    iptables:
      masqueradeAll: true
    detectLocalMode: ClusterCIDR
    nodePortAddresses:
    - 198.18.0.11/32
    """
    conf = yaml.safe_load(current) if current else {}
    if not isinstance(conf, dict):
        raise AddonNotReady("ConfigMap kube-system/kube-proxy: config.conf is not a KubeProxyConfiguration")
    conf.setdefault("iptables", {})
    conf["iptables"] = {**(conf["iptables"] or {}), "masqueradeAll": step.masquerade_all}
    conf["clusterCIDR"] = step.pod_subnet if step.detect_local else ""  # "" = kube-proxy's no-op detector
    conf["detectLocalMode"] = "ClusterCIDR"
    conf["nodePortAddresses"] = list(step.node_port_addresses) or None
    return yaml.safe_dump(conf, sort_keys=False)


def configure_kube_proxy(api: ClusterApi, step: KubeProxySettings) -> None:
    """Write ``step``'s settings into ConfigMap kube-system/kube-proxy and roll the DaemonSet (the
    Wait that follows in the plan sees every kube-proxy pod updated and ready)."""
    cm = api.get("v1", "ConfigMap", "kube-proxy", "kube-system")
    if cm is None:
        raise AddonNotReady("ConfigMap kube-system/kube-proxy does not exist: kind did not install kube-proxy?")
    data = dict(cm.get("data") or {})
    data["config.conf"] = proxy_config_text(str(data.get("config.conf") or ""), step)
    api.apply({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "kube-proxy", "namespace": "kube-system"}, "data": data})
    api.apply({"apiVersion": "apps/v1", "kind": "DaemonSet",
               "metadata": {"name": "kube-proxy", "namespace": "kube-system"},
               "spec": {"template": {"metadata": {"annotations": {PROXY_SETTINGS_ANNOTATION: step.tag}}}}})


class DynamicApi:
    """:class:`ClusterApi` through the official client's DynamicClient (server-side apply)."""

    def __init__(self, kubeconfig: str, context: str | None = None) -> None:
        from kubernetes import config as kconfig
        from kubernetes.dynamic import DynamicClient

        api_client = kconfig.new_client_from_config(config_file=kubeconfig, context=context)
        self._dyn = DynamicClient(api_client)

    def _resource(self, api_version: str, kind: str) -> Any:
        from kubernetes.dynamic.exceptions import ResourceNotFoundError

        try:
            return self._dyn.resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError:  # a CRD applied moments ago: refresh discovery once
            self._dyn.resources.invalidate_cache()
            return self._dyn.resources.get(api_version=api_version, kind=kind)

    def apply(self, doc: Obj) -> None:
        """Server-side apply; a 429/5xx with Retry-After (not served) is sent again after the wait, as
        client-go does (the official client's urllib3 retries no PATCH by itself)."""
        from kubernetes.client.exceptions import ApiException

        from netiso.backends.kube.answers import RETRIES, retry_after

        res = self._resource(doc["apiVersion"], doc["kind"])
        meta = doc["metadata"]
        for attempt in range(RETRIES + 1):
            try:
                res.server_side_apply(
                    body=doc,
                    name=meta["name"],
                    namespace=meta.get("namespace") if res.namespaced else None,
                    field_manager=FIELD_MANAGER,
                    force_conflicts=True,
                )
                return
            except ApiException as exc:
                wait = retry_after(exc)
                if wait is None or attempt == RETRIES:
                    raise
                time.sleep(wait)

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Obj | None:
        from kubernetes.dynamic.exceptions import NotFoundError, ResourceNotFoundError

        try:
            obj = self._resource(api_version, kind).get(name=name, namespace=namespace)
        except (NotFoundError, ResourceNotFoundError):
            return None
        return obj.to_dict()

    def list(self, api_version: str, kind: str) -> list[Obj]:
        return list(self._resource(api_version, kind).get().to_dict().get("items") or [])
