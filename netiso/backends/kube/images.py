"""Every container image the kube backend runs, pinned by ``@sha256`` digest, and registry rewriting.

Why digests: a tag can be re-pushed, a digest cannot, so a conformance run on a user's cluster
today and in CI next month runs the very same agnhost and ingress-nginx bits. Why a registry
override: air-gapped clusters pull from a mirror (``--image-registry mirror.local`` or
``mirror.local/path``); the mirror keeps repository path, tag and digest (that is what
``crane copy``/``skopeo copy --all`` preserve), so only the registry host part is replaced.

Where each digest comes from (read from public sources, never invented):

* agnhost ``2.63.0``: the image promoter manifest of registry.k8s.io, repository
  ``kubernetes/k8s.io``, file ``registry.k8s.io/images/k8s-staging-e2e-test-images/images.yaml``
  (entry ``agnhost``, tag ``2.63.0``). 2.66.1 is the newer tag netiso's lab speaks of
  (``netiso.model.render.AGNHOST_IMAGE``), but the stored promoter manifest ends at 2.63.0 and a
  2.66.1 digest was found only in one third-party repository, so it is not pinned here. 2.63.0
  carries everything the backend uses: ``netexec`` (``/clientip``, ``/hostname``, UDP
  ``clientip``), ``connect``, ``pause``, and the alpine tools (curl, nc).
* ingress-nginx controller ``v1.15.1`` (the project's last release): repository
  ``kubernetes/ingress-nginx``, tag ``controller-v1.15.1``, file
  ``deploy/static/provider/kind/deploy.yaml`` (file sha256
  ``2a3ae008c8786431115502644e77ab398fdebfb721a5d1195ed3089cde3299df``), which pins the
  controller by this digest.

>>> image("agnhost", "mirror.local/k8s")
'mirror.local/k8s/e2e-test-images/agnhost:2.63.0@sha256:a62f40481e05709988fe44e5035b2e0f553cd52bf0ae4e83614928255b00e8c1'
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class PinnedImage:
    """One image: registry host, repository path, tag and digest, and where the digest was read."""

    registry: str
    repository: str
    tag: str
    digest: str
    source: str

    def reference(self, registry: str | None = None) -> str:
        """``REGISTRY/REPOSITORY:TAG@DIGEST``, with ``registry`` replacing the upstream registry."""
        host = (registry or self.registry).rstrip("/")
        return f"{host}/{self.repository}:{self.tag}@{self.digest}"


IMAGES: dict[str, PinnedImage] = {
    "agnhost": PinnedImage(
        registry="registry.k8s.io",
        repository="e2e-test-images/agnhost",
        tag="2.63.0",
        digest="sha256:a62f40481e05709988fe44e5035b2e0f553cd52bf0ae4e83614928255b00e8c1",
        source="kubernetes/k8s.io registry.k8s.io/images/k8s-staging-e2e-test-images/images.yaml (agnhost 2.63.0)",
    ),
    "ingress-nginx-controller": PinnedImage(
        registry="registry.k8s.io",
        repository="ingress-nginx/controller",
        tag="v1.15.1",
        digest="sha256:594ceea76b01c592858f803f9ff4d2cb40542cae2060410b2c95f75907d659e1",
        source="kubernetes/ingress-nginx@controller-v1.15.1 deploy/static/provider/kind/deploy.yaml",
    ),
}

# HOST[:PORT][/PATH...]: a registry host (with a dot, a port or "localhost") and optional path.
_REGISTRY_RE = re.compile(
    r"^(?:localhost|[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*)(?::[0-9]{1,5})?"
    r"(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"
)


def image(name: str, registry: str | None = None) -> str:
    """The pinned reference of image ``name``, pulled from ``registry`` when given.

    ``registry`` is ``HOST[:PORT][/PATH]``; it replaces ``registry.k8s.io`` and keeps the
    repository path, tag and digest.

    >>> image("ingress-nginx-controller").split("@")[0]
    'registry.k8s.io/ingress-nginx/controller:v1.15.1'
    >>> image("agnhost", "https://mirror")
    Traceback (most recent call last):
    ...
    ValueError: --image-registry 'https://mirror' is not HOST[:PORT][/PATH] (e.g. mirror.local/k8s)
    """
    try:
        pinned = IMAGES[name]
    except KeyError:
        raise ValueError(f"unknown image {name!r} (known: {', '.join(sorted(IMAGES))})") from None
    if registry is not None:
        check_registry(registry)
    return pinned.reference(registry)


def check_registry(registry: str) -> str:
    """Validate an ``--image-registry`` value (raises ValueError with the expected form)."""
    if not _REGISTRY_RE.match(registry.rstrip("/")):
        raise ValueError(f"--image-registry {registry!r} is not HOST[:PORT][/PATH] (e.g. mirror.local/k8s)")
    return registry.rstrip("/")


def all_images(registry: str | None = None) -> list[str]:
    """Every image a run may pull (for ``kind load`` and mirror instructions), in a stable order."""
    return [image(name, registry) for name in sorted(IMAGES)]
