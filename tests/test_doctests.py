"""Docstring examples in the framework-free core are executable specifications."""

import doctest
import importlib
import pkgutil

import pytest

import smtp_routing.tools

MODULES = sorted(info.name for info in pkgutil.iter_modules(smtp_routing.tools.__path__))


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    module = importlib.import_module(f"smtp_routing.tools.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
