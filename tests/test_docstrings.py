"""Every docstring example of the package runs as written: what a user sees with ``?`` in a
notebook is true (examples marked ``# doctest: +SKIP`` need a store, a bus or a network)."""

from __future__ import annotations

import doctest
import importlib
import io
import pkgutil

import pytest

import tcp_lab

MODULES = sorted(m.name for m in pkgutil.walk_packages(tcp_lab.__path__, "tcp_lab.")
                 if not m.name.endswith("__main__"))
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def test_modules_are_found():
    assert {"tcp_lab.bots.portfolio_bot", "tcp_lab.execution.sizing"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    out = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    for test in finder.find(module, name, globs=dict(vars(module))):
        if test.examples and test.name.startswith(name):  # the module's own, not imported
            runner.run(test, out=out.write)
    failed, _ = runner.summarize(verbose=False)
    assert failed == 0, f"{name}: a docstring example fails:\n{out.getvalue()[-4000:]}"
