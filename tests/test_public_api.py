"""The public API: every exported name resolves, and importing tcp_lab stays light."""

from __future__ import annotations

import subprocess
import sys

import pytest

import tcp_lab


@pytest.mark.parametrize("name", sorted(tcp_lab.__all__))
def test_every_exported_name_resolves(name):
    assert getattr(tcp_lab, name) is not None


def test_portfolio_out_of_sample_names_are_public():
    from tcp_lab import portfolio

    for name in ("walk_forward_portfolio", "PortfolioWalkForwardResult", "portfolio_returns"):
        assert name in tcp_lab.__all__
        assert getattr(tcp_lab, name) is getattr(portfolio, name)
    assert issubclass(tcp_lab.PortfolioWalkForwardResult, tcp_lab.WalkForwardResult)


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        tcp_lab.nope  # noqa: B018


def test_import_is_light_and_reads_nothing():
    code = ("import sys, tcp_lab; heavy = [m for m in ('vectorbt', 'ccxt', 'duckdb', "
            "'psycopg2', 'redis', 'numba', 'distributed') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, env={"TCP_LAB_DATABASE_URL": "bad://", "PATH": ""})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
