"""The examples in the model's and the oracle's docstrings run and say what the code does.

Why: style.md asks every public function of the model and the oracle for a docstring with a tiny
example; an example nobody runs drifts (two had, silently, when this test was added).
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import netiso.model
import netiso.oracle

MODULES = sorted(f"{pkg.__name__}.{m.name}" for pkg in (netiso.model, netiso.oracle)
                 for m in pkgutil.iter_modules(pkg.__path__))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_of_the_model_and_the_oracle_hold(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} docstring examples failed"
