"""Image references of a kind run: parse, mirror (``--image-registry``), and the form ``kind load`` needs.

Why the tag form for ``kind load``: ``kind load docker-image`` saves the image with
``docker save`` and imports it into each node with ``ctr images import``. With a digest in the
reference docker saves no tag, so the node gets the image under no usable name
(kubernetes-sigs/kind issues #1140 "kind load docker-image doesn't include tag when a sha256 is
specified", #2394 "Kind Load Image Digest Doesn't Work", #4028 "Loading images with digest
sometimes does not work", all open or closed as won't-fix). netiso therefore pulls every image
*by digest* when it has one (so the bits are the pinned ones: docker verifies the digest),
tags it with its plain ``REPO:TAG`` and loads that tag. A pod spec that names ``REPO:TAG``
(``IfNotPresent``: the add-on manifests, which upstream pins by tag only) uses the loaded copy,
whose bits the digest pull fixed. A pod spec that names ``REPO:TAG@DIGEST`` is pulled by the
node's containerd whatever was loaded: containerd keeps no repo digest for an imported image, so
it never serves a digest reference from it (kind #2734). netiso's own pods (agnhost, the
ingress-nginx controller) name their images by digest, so they are **not** pre-loaded
(:func:`preloaded`): each node pulls them by digest, and containerd verifies the digest, which
keeps the pin real. Referencing them by the loaded tag instead was considered and left: checking
in the node that a loaded tag holds the pinned image needs a digest the node does not keep (the
image ID ``crictl inspecti`` shows is the config digest, while ``docker image inspect``'s ``Id`` is
the config digest with Docker's classic store and the index digest with its containerd store), so
the check would be unsound on one store or refuse the other.

Mirroring mirrors ``netiso.backends.kube.images``: the registry host is replaced, repository
path, tag and digest are kept (what ``crane copy`` / ``skopeo copy --all`` preserve). Docker Hub
references (``kindest/node``, ``kubesphere/openelb-speaker``) keep their Docker Hub path.

>>> split_reference("kindest/node:v1.36.1@sha256:ab")
('docker.io', 'kindest/node', 'v1.36.1', 'sha256:ab')
>>> mirror_reference("quay.io/calico/node:v3.32.1", "mirror.local/k8s")
'mirror.local/k8s/calico/node:v3.32.1'
>>> load_reference("registry.k8s.io/x/y:1.0@sha256:ab")
'registry.k8s.io/x/y:1.0'
"""

from __future__ import annotations

import re

_IMAGE_LINE = re.compile(r"^\s*(?:-\s+)?image:\s*[\"']?([^\s\"']+)[\"']?\s*$", re.MULTILINE)


def split_reference(ref: str) -> tuple[str, str, str | None, str | None]:
    """``(registry, repository, tag, digest)`` of an image reference (Docker's normalisation)."""
    rest, _, digest = ref.partition("@")
    first, slash, remainder = rest.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        registry, path = first, remainder
    else:
        registry, path = "docker.io", rest
        if "/" not in path:
            path = f"library/{path}"
    tag: str | None = None
    last = path.rsplit("/", 1)[-1]
    if ":" in last:
        path, tag = path.rsplit(":", 1)
    return registry, path, tag, (digest or None)


def join_reference(registry: str, repository: str, tag: str | None, digest: str | None) -> str:
    ref = f"{registry}/{repository}"
    if tag:
        ref += f":{tag}"
    if digest:
        ref += f"@{digest}"
    return ref


def mirror_reference(ref: str, registry: str | None) -> str:
    """``ref`` pulled from ``registry`` (``HOST[:PORT][/PATH]``) instead of its own; unchanged when None."""
    if not registry:
        return ref
    from netiso.backends.kube.images import check_registry

    host = check_registry(registry)
    _, repository, tag, digest = split_reference(ref)
    return join_reference(host, repository, tag, digest)


def load_reference(ref: str) -> str:
    """The ``REPO:TAG`` under which an image is tagged and ``kind load``-ed (digest dropped)."""
    registry, repository, tag, _ = split_reference(ref)
    if ref.split("/")[0] == registry or registry != "docker.io":
        return join_reference(registry, repository, tag, None)
    # keep Docker Hub references in their short form (what manifests and docker show)
    short = repository.removeprefix("library/")
    return f"{short}:{tag}" if tag else short


def named_by_digest(ref: str) -> bool:
    """Whether a pod naming ``ref`` names a digest (then containerd pulls it whatever was loaded, kind #2734).

    >>> named_by_digest("registry.k8s.io/x/y:1.0@sha256:ab"), named_by_digest("quay.io/calico/node:v3.32.1")
    (True, False)
    """
    return split_reference(ref)[3] is not None


def preloaded(addon_images: list[str] | tuple[str, ...], pod_images: list[str]) -> list[str]:
    """What ``kind load`` is worth running for: the add-on images (pulled by digest, named by tag in their
    manifests) and any pod image named by tag; never one the pods name by digest.

    >>> preloaded(["quay.io/calico/node:v3.32.1@sha256:ab"], ["registry.k8s.io/x/y:1.0@sha256:cd", "a/b:1"])
    ['quay.io/calico/node:v3.32.1@sha256:ab', 'a/b:1']
    """
    return list(dict.fromkeys([*addon_images, *(r for r in pod_images if not named_by_digest(r))]))


def images_in_manifest(text: str) -> list[str]:
    """Every ``image:`` value of a manifest, first-seen order, duplicates removed."""
    return list(dict.fromkeys(_IMAGE_LINE.findall(text)))
