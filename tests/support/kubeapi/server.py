"""A real HTTP server on 127.0.0.1 that speaks the Kubernetes API well enough for the official client.

Why: netiso's kube backend must be tested with the official ``kubernetes`` client unpatched, and
this machine has no cluster. The server runs aiohttp in a thread of its own (the client is
synchronous), on a random port, and records every request in order so tests can assert what a
backend sent and in which order.

Mirrors kube-apiserver 1.33's REST surface: discovery (discovery_docs.py: ``/api``, ``/api/v1``, ``/apis``,
``/apis/<g>``, ``/apis/<g>/<v>`` with CRD groups), ``/version``, ``/healthz``; the resource URL
grammar (``/api/v1/namespaces/<ns>/<plural>/<name>/<sub>``); verbs get/list/watch/create/update/
patch/delete/deletecollection; labelSelector and fieldSelector; List kinds with items without
``kind``/``apiVersion`` for built-ins (custom resource lists keep them, as the apiextensions server
does); watch as a chunked stream of ``{"type","object"}`` lines with ``timeoutSeconds`` (watching.py); bearer-token
authentication (401); authorisation by the stored RBAC objects (rbac.py), both by 403 Forbidden on real
requests and by ``SelfSubjectAccessReview`` (``status.allowed``, ``reason``), worded like the RBAC
authorizer; every create/update/patch through writes.py (validation.py 400/422, server-side apply
and managedFields in apply.py, RBAC escalation, Pod Security admission in admission.py, each
switchable per test through ``strict``), with ``Warning`` headers for dropped unknown fields;
``pods/exec`` websockets (see exec_ws.py); DELETE answering with the deleted object for the
registries that set ``ReturnDeletedObject`` (pods, services, serviceaccounts), the namespace in phase
Terminating, the CRD, and a ``Status`` Success for every other kind, as the generic registry does
(k8s.io/apiserver pkg/registry/generic/registry/store.go finalizeDelete).

Why not kmock: kmock 0.8 (``KubernetesEmulator``) was evaluated first. It serves CRUD, watch and
discovery, but lists ignore labelSelector/fieldSelector, error bodies carry kmock's own reasons
(``Object Already Exists``) and a Python traceback instead of the apiserver's reasons and messages,
discovery derives kinds by capitalising plurals (``Networkpolicies``) unless each resource is
declared, it sets no uid/resourceVersion/creationTimestamp nor the namespace from the URL, and it
is async-only; replacing those pieces would have meant overriding most of it, so this server is
written directly on aiohttp.

Time (lifecycle.py): GETs and LISTs are observations that move objects on (pods start and
terminate gracefully, workloads roll out, CRDs are served only once Established, deleted namespaces
linger Terminating); ``throttled`` refuses the next requests with 429 (plain text, as
maxinflight.go/APF) or 503 and ``Retry-After``.

Knowingly absent: TLS and client certificates (token auth over plain HTTP), protobuf and CBOR,
aggregated discovery v2, dry-run, pagination (``limit`` is ignored, ``continue`` never returned),
admission beyond Pod Security and the ServiceAccount lag, most defaulting, API priority and fairness beyond
``throttled``.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml
from aiohttp import web

from . import exec_ws, status
from .discovery_docs import discovery_document
from .exec_ws import ExecHandler
from .rbac import Rbac, Request, Subject
from .resources import Resource
from .selectors import SelectorError, field_selector, label_selector
from .store import Store
from .watching import stream_watch
from .writes import Strictness, Writes

SELF_REVIEW = ("authorization.k8s.io", "selfsubjectaccessreviews")
# registries with ReturnDeletedObject (pods, services, serviceaccounts), namespaces (finalized later:
# the Terminating object) and CRDs (held by their cleanup finalizer); every other kind answers Status
RETURNS_DELETED = {("", "pods"), ("", "services"), ("", "serviceaccounts"), ("", "namespaces"),
                   ("apiextensions.k8s.io", "customresourcedefinitions")}


@dataclass
class RecordedRequest:
    """One request as the server received it. ``query`` maps a name to its value; ``command``
    (repeated for exec) is always a list. ``status`` is the HTTP code answered."""

    method: str
    path: str
    query: dict[str, Any]
    body: Any
    content_type: str = ""
    status: int = 0
    verb: str = ""


@dataclass
class Target:
    resource: Resource
    namespace: str | None
    name: str | None
    subresource: str | None


@dataclass
class KubeApiServer:
    store: Store
    token: str | None = "netiso-test-token"
    user: str = "netiso-tester"
    exec_handler: ExecHandler = exec_ws.no_handler
    exec_protocols: tuple[str, ...] = (exec_ws.V5, exec_ws.V4)
    requests: list[RecordedRequest] = field(default_factory=list)
    pod_logs: dict[tuple[str, str], str] = field(default_factory=dict)  # (namespace, pod) -> log text
    groups: tuple[str, ...] = ("system:authenticated",)
    strict: Strictness = field(default_factory=Strictness)
    service_account_lag: dict[str, int] = field(default_factory=dict)  # namespace -> pod creates refused (no default SA yet)
    url: str = ""
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _runner: web.AppRunner | None = None
    on_request: list[Callable[[RecordedRequest], None]] = field(default_factory=list)
    lifecycle: Any = None  # lifecycle.Lifecycle: reads through the API are what makes time pass
    # (429|503, Retry-After s, method or None = any) refusing the next requests, in order
    throttled: list[tuple[int, int, str | None]] = field(default_factory=list)
    drop_answers: int = 0  # the next POSTs are served, then their connection is closed before the answer

    def __post_init__(self) -> None:
        self.rbac = Rbac(self.store)
        self.rbac.bootstrap(self.user)
        self.writes = Writes(self.store, self.rbac, self.strict)

    @property
    def subject(self) -> Subject:
        return Subject(self.user, self.groups)

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> str:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._start_site())
            except BaseException as exc:  # reported to the starting thread
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-kube-apiserver", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self.url

    async def _start_site(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/api/v1/namespaces/{ns}/pods/{name}/exec", self._exec)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        """Ends open watches and exec sessions, closes the socket, ends the thread."""
        loop = self._loop
        if loop is None or self._thread is None or not self._thread.is_alive():
            return
        with self.store.lock:
            for w in self.store.watchers:
                w.loop.call_soon_threadsafe(w.queue.put_nowait, None)  # wakes the stream, which then ends
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(timeout=10)

    # -- authorisation ------------------------------------------------------------------------
    def deny(self, verb: str, resource: str, group: str = "") -> None:
        """The test user loses (verb, resource, group) from its RBAC grant (rbac.py ``Rbac.deny``)."""
        self.rbac.deny(self.user, verb, resource, group)

    def allowed(self, verb: str, group: str, resource: str, namespace: str | None = None, name: str = "") -> bool:
        """The RBAC decision for the caller (``resource`` may carry a subresource: ``pods/exec``)."""
        return self.authorize(verb, group, resource, namespace, name)[0]

    def authorize(self, verb: str, group: str, resource: str, namespace: str | None = None,
                  name: str = "") -> tuple[bool, str]:
        if not self.strict.authorization:
            return True, "authorization switched off for this test"
        base, _, sub = resource.partition("/")
        return self.rbac.authorize(self.subject, Request(verb, group, base, sub, namespace or "", name))

    # -- request plumbing ---------------------------------------------------------------------
    async def _record(self, request: web.Request) -> RecordedRequest:
        raw = await request.read() if request.can_read_body else b""
        body: Any = None
        ctype = request.headers.get("Content-Type", "")
        if raw:
            try:
                body = yaml.safe_load(raw) if "yaml" in ctype else json.loads(raw)
            except (ValueError, yaml.YAMLError):
                body = raw.decode(errors="replace")
        query: dict[str, Any] = {k: request.query.get(k) for k in request.query}
        if "command" in request.query:
            query["command"] = request.query.getall("command")
        rec = RecordedRequest(request.method, request.path, query, body, ctype)
        self.requests.append(rec)
        for hook in self.on_request:
            hook(rec)
        return rec

    def _authenticate(self, request: web.Request) -> None:
        if self.token is not None and request.headers.get("Authorization") != f"Bearer {self.token}":
            raise status.unauthorized()

    @staticmethod
    def _json(body: Any, code: int = 200, warnings: list[str] | None = None) -> web.Response:
        resp = web.Response(status=code, text=json.dumps(body), content_type="application/json")
        for text in warnings or []:  # RFC 7234 warn-code 299, as the apiserver's warning recorder writes them
            resp.headers.add("Warning", f'299 - "{text}"')
        return resp

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        rec = await self._record(request)
        try:
            self._authenticate(request)
            if self.throttled and self.throttled[0][2] in (None, request.method):
                code, after, _ = self.throttled.pop(0)  # refused before any handler: nothing served (maxinflight.go)
                rec.status = code
                if code == 429:
                    return web.Response(status=429, text=status.too_many_requests(), headers={"Retry-After": str(after)})
                return web.Response(status=code, headers={"Retry-After": str(after)}, content_type="application/json",
                                    text=json.dumps(status.ApiError(code, "ServiceUnavailable", "the server is currently "
                                                                    "unable to handle the request",
                                                                    {"retryAfterSeconds": after}).body()))
            parts = [p for p in request.path.split("/") if p]
            if self.lifecycle is not None and len(parts) >= 2 and parts[0] == "apis":
                self.lifecycle.observe_group(parts[1])  # asking about a group: time passes for its new CRDs
            resp = await self._dispatch(request, rec)
            if self.drop_answers > 0 and request.method == "POST" and request.transport is not None:
                self.drop_answers -= 1  # a proxy or the apiserver dropping the connection after the write
                rec.status = -resp.status
                request.transport.close()
                return resp
        except status.ApiError as err:
            resp = self._json(err.body(), err.code)
        except SelectorError as err:
            resp = self._json(status.bad_request(str(err)).body(), 400)
        rec.status = resp.status
        return resp

    async def _exec(self, request: web.Request) -> web.StreamResponse:
        rec = await self._record(request)
        rec.verb = "create" if request.method == "POST" else "get"
        ns, name = request.match_info["ns"], request.match_info["name"]
        try:
            self._authenticate(request)
            upgrade = request.headers.get("Upgrade", "").lower() == "websocket"
            if not self.allowed(rec.verb, "", "pods/exec", ns, name) or (
                    upgrade and not self.allowed("create", "", "pods/exec", ns, name)):
                verb = rec.verb if not self.allowed(rec.verb, "", "pods/exec", ns, name) else "create"
                raise status.forbidden(self.user, verb, "", "pods/exec", name, ns)
            pods = self.store.catalogue().find("", "v1", "pods")
            assert pods is not None
            resp = await exec_ws.serve(request, self.store.get(pods, ns, name), self.exec_handler, self.exec_protocols,
                                       self.lifecycle.timing if self.lifecycle is not None else None)
            rec.status = 101 if isinstance(resp, web.WebSocketResponse) else resp.status  # else the kubelet refused
            return resp
        except status.ApiError as err:
            rec.status = err.code
            return self._json(err.body(), err.code)

    # -- routing ------------------------------------------------------------------------------
    def _parse(self, path: str) -> tuple[str, str, list[str]] | None:
        parts = [p for p in path.split("/") if p]
        if len(parts) >= 3 and parts[0] == "api":
            return "", parts[1], parts[2:]
        if len(parts) >= 4 and parts[0] == "apis":
            return parts[1], parts[2], parts[3:]
        return None

    def _target(self, group: str, version: str, rest: list[str]) -> Target:
        cat = self.store.served_catalogue()  # a CRD's kinds answer 404 until it is Established
        namespace = None
        if rest[0] == "namespaces" and len(rest) >= 3 and not (len(rest) == 3 and rest[2] in ("status", "finalize")):
            namespace, rest = rest[1], rest[2:]
        res = cat.find(group, version, rest[0])
        if res is None or len(rest) > 3 or (namespace is not None and not res.namespaced):
            raise status.page_not_found()
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if sub is not None and sub not in res.subresources:
            raise status.page_not_found()
        return Target(res, namespace, name, sub)

    async def _dispatch(self, request: web.Request, rec: RecordedRequest) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        if request.method == "GET":
            doc = discovery_document(self.store.served_catalogue(), path)  # Established CRDs only
            if doc is not None:
                return self._json(doc)
            if path in ("/healthz", "/readyz", "/livez"):
                return web.Response(text="ok")
        parsed = self._parse(path)
        if parsed is None:
            raise status.page_not_found()
        t = self._target(*parsed)
        res, q = t.resource, request.query
        verb = {"GET": "get" if t.name else ("watch" if q.get("watch") in ("true", "1") else "list"),
                "POST": "create", "PUT": "update", "PATCH": "patch",
                "DELETE": "delete" if t.name else "deletecollection"}.get(request.method)
        if verb is None or (verb not in res.verbs and not t.subresource):
            raise status.method_not_allowed(request.method, res.group, res.plural)
        rec.verb = verb
        rbac_resource = f"{res.plural}/{t.subresource}" if t.subresource else res.plural
        agent = request.headers.get("User-Agent", "")
        body = rec.body
        if (res.group, res.plural) != SELF_REVIEW and not self.allowed(verb, res.group, rbac_resource, t.namespace,
                                                                        t.name or ""):
            # the authorizer sees no name on create and collection verbs, so the message names none
            raise status.forbidden(self.user, verb, res.group, rbac_resource, t.name or "", t.namespace)
        if verb == "create" and (res.group, res.plural) == SELF_REVIEW:
            return self._json(self._review(body), 201)
        if verb in ("list", "watch"):
            match = self._selectors(q)
            if verb == "watch":
                return await stream_watch(request, self.store, t.resource, t.namespace, match)
            items = self._observed_list(res, t.namespace, match)
            if not res.custom:
                for item in items:
                    item.pop("apiVersion", None)
                    item.pop("kind", None)
            return self._json({"kind": f"{res.kind}List", "apiVersion": res.api_version,
                               "metadata": {"resourceVersion": self.store.last_rv}, "items": items})
        if verb == "get":
            obj = self._observed_get(res, t.namespace, t.name or "")
            if obj is None:
                raise status.not_found(res.group, res.plural, t.name or "")
            if t.subresource == "log":  # plain text, as the kubelet streams it
                return web.Response(text=self.pod_logs.get((t.namespace or "", t.name or ""), ""),
                                    content_type="text/plain")
            return self._json(obj)
        if verb == "create":
            if not isinstance(body, dict):
                raise status.bad_request("the body of the request was not a JSON object")
            self._check_kind(res, body)
            if (res.group, res.plural) == ("", "pods") and self.service_account_lag.get(t.namespace or "", 0) > 0:
                self.service_account_lag[t.namespace or ""] -= 1  # the ServiceAccount controller has not caught up
                raise status.service_account_missing(str((body.get("metadata") or {}).get("name", "")), t.namespace or "")
            obj, warned = self.writes.create(res, t.namespace, body, self.subject, q, agent)
            return self._json(obj, 201, warned)
        if verb == "update":
            if not isinstance(body, dict):
                raise status.bad_request("the body of the request was not a JSON object")
            obj, warned = self.writes.update(res, t.namespace, t.name or "", body, t.subresource, self.subject, q, agent)
            return self._json(obj, 200, warned)
        if verb == "patch":
            ctype = request.headers.get("Content-Type", "")
            if "apply-patch" in ctype and isinstance(body, dict):
                self._check_kind(res, body)
            obj, code, warned = self.writes.patch(res, t.namespace, t.name or "", body, ctype, t.subresource,
                                                  self.subject, q, agent)
            return self._json(obj, code, warned)
        if verb == "delete":
            graceful = None
            if (res.group, res.plural) == ("", "pods") and self.lifecycle is not None:
                graceful = self.lifecycle.delete_pod(res, t.namespace or "", t.name or "",
                                                     body if isinstance(body, dict) else None)
            obj = graceful or self.store.delete(res, t.namespace, t.name or "")
            if (res.group, res.plural) in RETURNS_DELETED:
                return self._json(obj)
            return self._json(status.success(t.name or "", res.group, res.plural, obj["metadata"]["uid"]))
        # deletecollection
        gone = [self.store.delete(res, t.namespace, o["metadata"]["name"])
                for o in self.store.list(res, t.namespace, self._selectors(q))]
        return self._json({"kind": f"{res.kind}List", "apiVersion": res.api_version,
                           "metadata": {"resourceVersion": self.store.last_rv}, "items": gone})

    def _observed_get(self, res: Resource, namespace: str | None, name: str) -> dict[str, Any] | None:
        """A GET: the client observes the object (time passes for it), then gets it as it is now."""
        if self.lifecycle is not None:
            self.lifecycle.observe(res, [self.store.get(res, namespace, name)])
        return self.store.get(res, namespace, name)

    def _observed_list(self, res: Resource, namespace: str | None, match: Callable[[dict[str, Any]], bool]) -> list[dict]:
        """A LIST: every item is observed, then the list is read as it is now."""
        if self.lifecycle is not None:
            self.lifecycle.observe(res, self.store.list(res, namespace, match))
        return self.store.list(res, namespace, match)

    @staticmethod
    def _check_kind(res: Resource, body: dict[str, Any]) -> None:
        if body.get("apiVersion") not in (None, res.api_version):
            raise status.bad_request(f"the API version in the data ({body['apiVersion']}) does not match the expected "
                                     f"API version ({res.api_version})")
        if body.get("kind") not in (None, res.kind):
            raise status.bad_request(f"the kind in the data ({body['kind']}) does not match the expected kind ({res.kind})")

    @staticmethod
    def _selectors(q: Any) -> Callable[[dict[str, Any]], bool]:
        by_label, by_field = label_selector(q.get("labelSelector")), field_selector(q.get("fieldSelector"))
        return lambda obj: by_label(obj) and by_field(obj)

    def _review(self, body: Any) -> dict[str, Any]:
        spec = (body or {}).get("spec") or {}
        attrs = spec.get("resourceAttributes")
        if attrs is None:
            allowed = True  # nonResourceAttributes: /healthz and the like are open
        else:
            resource = attrs.get("resource", "")
            if attrs.get("subresource"):
                resource = f"{resource}/{attrs['subresource']}"
            allowed, reason = self.authorize(attrs.get("verb", ""), attrs.get("group", ""), resource,
                                             attrs.get("namespace"), attrs.get("name") or "")
        out = {"kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
               "metadata": {"creationTimestamp": None}, "spec": spec, "status": {"allowed": allowed}}
        if allowed and attrs is not None:
            out["status"]["reason"] = reason
        return out
