"""The kube backend's docstring examples run (each module's examples are part of its manual)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["vips", "probe_running", "probing", "refusals", "client", "naming", "plan"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_hold(name: str) -> None:
    module = importlib.import_module(f"netiso.backends.kube.{name}")
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
