"""pytest plugin: ``fake_cluster``, a fresh fake Kubernetes API server for each test.

Why: tests of the kube backend must not leak objects, denials or exec handlers into each other;
a server per test costs a few milliseconds (a thread and a listening socket on 127.0.0.1), so
isolation is bought outright rather than by a reset that could forget something.

Use from a conftest: ``pytest_plugins = ["tests.support.kubeapi.fixture"]``. The cluster is empty
(not even namespaces); call ``seed_cluster(fake_cluster, ...)`` or ``fake_cluster.seed(...)`` for a
kind-like cluster.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .cluster import FakeCluster


@pytest.fixture
def fake_cluster(tmp_path: Path) -> Iterator[FakeCluster]:
    directory = tmp_path / "fake-apiserver"  # its own folder: tests may write kubeconfigs of their own
    directory.mkdir()
    cluster = FakeCluster(directory)
    try:
        yield cluster
    finally:
        cluster.stop()
