"""The examples in the package's docstrings are tests too (run against the installed package)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import patroni_citus

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(patroni_citus.__path__, prefix="patroni_citus.")
    if not info.name.endswith("__main__")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} doctest example(s) failed in {name}"
