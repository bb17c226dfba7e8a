"""The examples in the kind backend's docstrings are true."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["configs", "images", "addons", "tools", "cluster", "install", "backend", "plan", "trace", "leftovers"]


@pytest.mark.parametrize("name", MODULES)
def test_kind_module_docstring_examples_hold(name: str) -> None:
    module = importlib.import_module(f"netiso.backends.kind.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
