"""Reading a kubeconfig the way kubectl does, and saying exactly what is wrong with a bad one.

Why here and not in the ``kubernetes`` client: the client's loader (config/kube_config.py)
raises ``yaml`` errors, ``KeyError`` and ``TypeError`` straight out of a malformed file, and
reports ``--context NAME`` missing from the file as a missing ``current-context``. A new user's
first mistake is a kubeconfig, so every shape error is found here first and becomes one
sentence naming the file and what to fix (exit 2), before the client loads the same file.

Mirrors client-go (k8s.io/client-go/tools/clientcmd): loader.go's precedence (``--kubeconfig``,
else ``$KUBECONFIG`` - a path list whose missing entries are skipped - else ``~/.kube/config``)
and merge (the first file to define a cluster, user or context name wins; the first file to set
``current-context`` wins); validation.go's checks of the context in use (the context exists,
names a defined cluster and user; the cluster has a server; certificate-authority,
client-certificate and client-key files are readable; a client certificate comes with its key);
relative file paths resolve against the directory of the file that holds them.

Knowingly different: the ``kubernetes`` Python client merges ``current-context`` from the *last*
file, so :func:`resolve` always hands it the context chosen here by name; base64 in ``*-data``
fields is checked strictly (client-go would fail later, at the TLS handshake); exec and auth
provider plugins are left to the client.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from netiso.backends.base import BackendUnavailable

SECTIONS = (("clusters", "cluster"), ("users", "user"), ("contexts", "context"))
CLUSTER_FILES = ("certificate-authority",)
USER_FILES = ("client-certificate", "client-key")


@dataclass
class Merged:
    """The merged view: name -> (entry body, file that defined it), per section, and the current context."""

    files: list[Path]
    entries: dict[str, dict[str, tuple[dict[str, Any], Path]]] = field(default_factory=dict)
    current: tuple[str, Path] | None = None

    @property
    def where(self) -> str:
        return os.pathsep.join(str(f) for f in self.files)

    def names(self, section: str) -> list[str]:
        return list(self.entries.get(section, {}))


def _bad(path: Path | str, what: str) -> BackendUnavailable:
    return BackendUnavailable(f"kubeconfig {path}: {what}")


def read_file(path: Path) -> dict[str, Any]:
    """One kubeconfig file as a mapping, or a refusal saying why it is not one."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise _bad(path, f"cannot read it ({exc.strerror or exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise _bad(path, f"not valid YAML{where} ({problem}); a kubeconfig is a YAML mapping with clusters, users "
                         "and contexts (kubectl config view shows one)") from None
    if data is None:
        raise _bad(path, "the file is empty; a kubeconfig holds clusters, users and contexts")
    if not isinstance(data, dict):
        raise _bad(path, f"not a kubeconfig: the top level is a {type(data).__name__}, expected a mapping with "
                         "clusters, users and contexts")
    for section, body in SECTIONS:
        items = data.get(section)
        if items is None:
            continue
        if not isinstance(items, list):
            raise _bad(path, f"{section} is a {type(items).__name__}, expected a list of {{name, {body}}}")
        for i, item in enumerate(items):
            if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item.get("name"):
                raise _bad(path, f"{section}[{i}] has no name (each entry is {{name: NAME, {body}: {{...}}}})")
            if not isinstance(item.get(body) or {}, dict):
                raise _bad(path, f"{section}[{i}] ({item['name']}): {body} is not a mapping")
    current = data.get("current-context")
    if current is not None and not isinstance(current, str):
        raise _bad(path, "current-context is not a string (the name of one of its contexts)")
    return data


def merge(files: Sequence[Path]) -> Merged:
    """client-go's merge: first definition of a name wins, first non-empty ``current-context`` wins."""
    merged = Merged(list(files), {section: {} for section, _ in SECTIONS})
    for path in files:
        data = read_file(path)
        for section, body in SECTIONS:
            for item in data.get(section) or []:
                merged.entries[section].setdefault(item["name"], (dict(item.get(body) or {}), path))
        if data.get("current-context") and merged.current is None:
            merged.current = (str(data["current-context"]), path)
    return merged


def choose_context(merged: Merged, context: str | None) -> str:
    """The context in use: ``--context``, else ``current-context``; each way of missing it said apart."""
    contexts = merged.names("contexts")
    have = ", ".join(contexts) or "none"
    if context:
        if context not in contexts:
            raise _bad(merged.where, f"no context {context!r} (--context {context}; it has: {have})")
        return context
    if not contexts:
        raise _bad(merged.where, "it defines no contexts; add one (kubectl config set-context) or use the kubeconfig "
                                 "your cluster's installer wrote")
    if merged.current is None:
        raise _bad(merged.where, f"it has no current-context; pass --context NAME (one of: {have})")
    name, path = merged.current
    if name not in contexts:
        raise _bad(path, f"current-context {name!r} names no context of the kubeconfig (it has: {have}); pass "
                         "--context NAME or fix current-context")
    return name


def _file_field(body: Mapping[str, Any], key: str, owner: str, path: Path) -> None:
    """A ``key`` file path (relative to the kubeconfig's directory) must be a readable file."""
    value = body.get(key)
    if not value:
        return
    target = Path(str(value)).expanduser()
    if not target.is_absolute():
        target = path.parent / target
    try:
        with target.open("rb"):
            pass
    except OSError as exc:
        raise _bad(path, f"{owner}: {key} {target}: {exc.strerror or exc} (fix the path, or embed the file "
                         f"as {key}-data)") from None


def _data_field(body: Mapping[str, Any], key: str, owner: str, path: Path) -> None:
    value = body.get(f"{key}-data")
    if not value:
        return
    try:
        base64.b64decode(str(value).encode(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _bad(path, f"{owner}: {key}-data is not valid base64 ({exc}); it holds the PEM file base64-encoded "
                         f"(base64 -w0 FILE)") from None


def check_context(merged: Merged, name: str) -> None:
    """The chosen context names a defined cluster (with a server) and user, and their files are usable."""
    body, ctx_path = merged.entries["contexts"][name]
    cluster_name, user_name = body.get("cluster"), body.get("user")
    if not cluster_name:
        raise _bad(ctx_path, f"context {name!r} names no cluster (contexts[].context.cluster)")
    clusters = merged.entries["clusters"]
    if not clusters:
        raise _bad(merged.where, f"it defines no clusters (context {name!r} needs cluster {cluster_name!r} with its "
                                 "server URL)")
    if cluster_name not in clusters:
        raise _bad(ctx_path, f"context {name!r} names cluster {cluster_name!r}, which is not defined (clusters: "
                             f"{', '.join(clusters)})")
    cluster, cluster_path = clusters[cluster_name]
    owner = f"cluster {cluster_name!r}"
    if not cluster.get("server"):
        raise _bad(cluster_path, f"{owner} has no server (clusters[].cluster.server: the API server URL, e.g. "
                                 "https://HOST:6443)")
    for key in CLUSTER_FILES:
        _file_field(cluster, key, owner, cluster_path)
        _data_field(cluster, key, owner, cluster_path)
    if user_name:
        users = merged.entries["users"]
        if user_name not in users:
            raise _bad(ctx_path, f"context {name!r} names user {user_name!r}, which is not defined (users: "
                                 f"{', '.join(users) or 'none'})")
        user, user_path = users[user_name]
        owner = f"user {user_name!r}"
        for key in USER_FILES:
            _file_field(user, key, owner, user_path)
            _data_field(user, key, owner, user_path)
        has_cert = bool(user.get("client-certificate") or user.get("client-certificate-data"))
        has_key = bool(user.get("client-key") or user.get("client-key-data"))
        if has_cert != has_key:
            missing = "client-key" if has_cert else "client-certificate"
            raise _bad(user_path, f"{owner} has a client {'certificate' if has_cert else 'key'} without its "
                                  f"{missing} ({missing} or {missing}-data)")


def resolve(files: Sequence[Path], context: str | None) -> str:
    """Validate the kubeconfig ``files`` (merged) for ``context``; returns the context to load."""
    merged = merge(files)
    chosen = choose_context(merged, context)
    check_context(merged, chosen)
    return chosen
