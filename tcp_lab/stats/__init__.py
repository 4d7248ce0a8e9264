"""Overfitting statistics: is a backtest's edge real, or the best of many tries?

Pure NumPy (and the standard library's normal distribution); each function
documents its paper's formula and conventions.

=================================  ==================================================
function                           question it answers
=================================  ==================================================
:func:`probabilistic_sharpe`       P(true Sharpe > benchmark), given the track record's
                                   length, skewness and kurtosis (Bailey & López de
                                   Prado 2012)
:func:`deflated_sharpe`            the same against the best Sharpe that N trials of
                                   luck would give (Bailey & López de Prado 2014)
:func:`pbo`                        how often the in-sample winner of many trials is
                                   below the median out of sample (CSCV; Bailey,
                                   Borwein, López de Prado & Zhu 2015)
:func:`purged_kfold`,              cross-validation splits without label leakage
:func:`combinatorial_purged_cv`    (López de Prado, AFML ch. 7 and 12)
=================================  ==================================================

Sharpe ratios here are **per period** (not annualised) and kurtosis is
**non-excess** (3 for normal returns); :func:`sharpe_moments` computes both from
returns.

>>> from tcp_lab.stats import deflated_sharpe, pbo
"""

from __future__ import annotations

from tcp_lab.stats.cv import CPCVSplit, combinatorial_purged_cv, cpcv_paths, purged_kfold
from tcp_lab.stats.pbo import METRICS, Degradation, PBOResult, pbo
from tcp_lab.stats.sharpe import (
    EULER_MASCHERONI,
    SharpeMoments,
    deflated_sharpe,
    expected_max_sharpe,
    probabilistic_sharpe,
    sharpe_moments,
)

__all__ = [
    "probabilistic_sharpe",
    "deflated_sharpe",
    "expected_max_sharpe",
    "sharpe_moments",
    "SharpeMoments",
    "EULER_MASCHERONI",
    "pbo",
    "PBOResult",
    "Degradation",
    "METRICS",
    "purged_kfold",
    "combinatorial_purged_cv",
    "cpcv_paths",
    "CPCVSplit",
]
