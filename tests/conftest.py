"""Project tests: unit tests run anywhere; ``lab`` tests need root and build real namespaces."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="lab test: needs root (CAP_NET_ADMIN) to build network namespaces")
    for item in items:
        if "lab" in item.keywords:
            item.add_marker(skip)
