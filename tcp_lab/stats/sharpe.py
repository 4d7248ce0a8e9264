"""The probabilistic and the deflated Sharpe ratio (Bailey & López de Prado).

Conventions shared by every function here:

* ``sharpe`` is the **per-period** Sharpe ratio of the returns the track record is
  made of (per candle, per day…): ``mean(r) / std(r, ddof=1)``, risk-free rate 0.
  It is **not annualised**: divide an annualised figure by ``sqrt(periods per
  year)`` first (2.5 a year on daily returns, 250 a year, is ``2.5 / sqrt(250)``).
* ``n_obs`` is the number of returns the Sharpe ratio was estimated on.
* ``skew`` is the skewness ``γ3 = m3 / m2**1.5`` and ``kurtosis`` the
  **non-excess** kurtosis ``γ4 = m4 / m2**2`` (3 for normal returns), as in the
  papers. An excess kurtosis (``scipy.stats.kurtosis``'s default, pandas'
  ``.kurt()``) must have 3 added. :func:`sharpe_moments` returns all four from
  returns, in these conventions.

Probabilities come from the standard normal distribution of :mod:`statistics`
(``NormalDist``): no scipy.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any, NamedTuple

import numpy as np

from tcp_lab.errors import DataError

__all__ = [
    "EULER_MASCHERONI",
    "SharpeMoments",
    "sharpe_moments",
    "probabilistic_sharpe",
    "expected_max_sharpe",
    "deflated_sharpe",
]

#: The Euler–Mascheroni constant γ.
EULER_MASCHERONI = 0.5772156649015329

_NORMAL = NormalDist()
_KURTOSIS_HINT = ("pass the non-excess kurtosis (3 for normal returns): excess kurtosis + 3, "
                  "e.g. scipy.stats.kurtosis(r, fisher=False), or use sharpe_moments(r)")


class SharpeMoments(NamedTuple):
    """What the probabilistic Sharpe ratio needs, from one return series (or one per column)."""

    sharpe: Any
    """Per-period Sharpe ratio ``mean / std(ddof=1)`` (not annualised)."""
    n_obs: int
    """Number of returns."""
    skew: Any
    """Skewness ``m3 / m2**1.5``."""
    kurtosis: Any
    """Non-excess kurtosis ``m4 / m2**2`` (3 for normal returns)."""


def sharpe_moments(returns: Any) -> SharpeMoments:
    """Per-period Sharpe ratio, count, skewness and non-excess kurtosis of returns.

    ``probabilistic_sharpe(*sharpe_moments(r))`` is the PSR of ``r`` against 0.
    The skewness and kurtosis are the plain (biased) sample moments
    ``m3 / m2**1.5`` and ``m4 / m2**2`` with ``mk = mean((r - mean(r))**k)``,
    as in Bailey & López de Prado (2012); the Sharpe ratio uses ``std(ddof=1)``
    like :func:`tcp_lab.backtest.metrics.sharpe` (not annualised here).

    Parameters
    ----------
    returns
        Per-period returns: a 1-D array or Series, or a 2-D array or DataFrame of
        one column per strategy (periods in rows).

    Returns
    -------
    SharpeMoments
        ``(sharpe, n_obs, skew, kurtosis)``; floats for 1-D input, arrays (one
        value per column) for 2-D input. A series without volatility gives ``nan``
        moments.

    Raises
    ------
    DataError
        Fewer than 2 returns, or a NaN or infinite return.

    Examples
    --------
    >>> m = sharpe_moments([0.01, -0.02, 0.015, 0.005, -0.01, 0.02])
    >>> round(m.sharpe, 4), m.n_obs, round(m.skew, 4), round(m.kurtosis, 4)
    (0.2167, 6, -0.5148, 1.824)
    """
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim not in (1, 2):
        raise DataError(f"sharpe_moments: returns must be 1-D or 2-D (periods × strategies), "
                        f"got shape {r.shape}")
    n = r.shape[0]
    if n < 2:
        raise DataError(f"sharpe_moments: {n} return(s), at least 2 are needed")
    if not np.isfinite(r).all():
        bad = np.argwhere(~np.isfinite(r))[0]
        raise DataError(f"sharpe_moments: returns hold NaN or infinite values, first at "
                        f"position {tuple(int(i) for i in bad)}",
                        hint="fill periods without a position with 0.0")
    d = r - r.mean(axis=0)
    m2 = np.mean(d * d, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        sharpe = r.mean(axis=0) / np.sqrt(m2 * n / (n - 1))
        skew = np.mean(d**3, axis=0) / m2**1.5
        kurt = np.mean(d**4, axis=0) / m2**2
    no_vol = np.sqrt(m2) <= 1e-13
    sharpe, skew, kurt = (np.where(no_vol, np.nan, x) for x in (sharpe, skew, kurt))
    if r.ndim == 1:
        return SharpeMoments(float(sharpe), n, float(skew), float(kurt))
    return SharpeMoments(sharpe, n, skew, kurt)


def probabilistic_sharpe(
    sharpe: Any, n_obs: Any, skew: Any, kurtosis: Any, benchmark: Any = 0.0
) -> Any:
    r"""Probabilistic Sharpe ratio: the probability that the true Sharpe exceeds ``benchmark``.

    .. math::

        PSR(SR^*) = \Phi\left(\frac{(\widehat{SR} - SR^*)\sqrt{n - 1}}
                    {\sqrt{1 - \gamma_3 \widehat{SR} + \frac{\gamma_4 - 1}{4}\widehat{SR}^2}}\right)

    with :math:`\widehat{SR}` the observed per-period Sharpe ratio, :math:`n` the
    number of returns, :math:`\gamma_3` their skewness, :math:`\gamma_4` their
    **non-excess** kurtosis and :math:`\Phi` the standard normal CDF.

    Parameters
    ----------
    sharpe
        Observed Sharpe ratio **per period** (not annualised; see the module notes).
    n_obs
        Number of returns it was estimated on (a whole number >= 2).
    skew
        Skewness :math:`\gamma_3` of the returns.
    kurtosis
        **Non-excess** kurtosis :math:`\gamma_4` of the returns (3 for normal
        returns; add 3 to an excess kurtosis). It must be at least
        ``1 + skew**2``, which every distribution satisfies (Pearson).
    benchmark
        The Sharpe ratio :math:`SR^*` to beat, per period (default 0).

    All arguments may be arrays that broadcast together (one PSR per strategy).

    Returns
    -------
    float or numpy.ndarray
        A probability in [0, 1]; 0.5 when ``sharpe == benchmark``.

    Raises
    ------
    DataError
        An argument that is not finite, ``n_obs`` < 2 or not whole, or a
        ``kurtosis`` below ``1 + skew**2`` (the usual sign of an excess kurtosis).

    References
    ----------
    Bailey, D. H. and López de Prado, M. (2012). "The Sharpe Ratio Efficient
    Frontier". Journal of Risk 15(2), 3–44. https://ssrn.com/abstract=1821643

    Examples
    --------
    >>> round(probabilistic_sharpe(0.1, 250, -0.5, 5.0), 4)
    0.9373
    >>> probabilistic_sharpe(0.05, 100, 0.0, 3.0, benchmark=0.05)
    0.5
    """
    sr = _finite("probabilistic_sharpe", "sharpe", sharpe)
    n = _count("probabilistic_sharpe", "n_obs", n_obs, minimum=2)
    g3 = _finite("probabilistic_sharpe", "skew", skew)
    g4 = _finite("probabilistic_sharpe", "kurtosis", kurtosis)
    ref = _finite("probabilistic_sharpe", "benchmark", benchmark)
    _pearson("probabilistic_sharpe", g3, g4)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (sr - ref) * np.sqrt(n - 1.0) / np.sqrt(1.0 - g3 * sr + (g4 - 1.0) / 4.0 * sr**2)
    return _scalar(_norm_cdf(z))


def expected_max_sharpe(n_trials: int, trials_sharpe_std: float) -> float:
    r"""Expected maximum of ``n_trials`` Sharpe ratios whose true value is 0: the DSR's SR0.

    .. math::

        SR_0 = \sqrt{V[\{\widehat{SR}_n\}]}
               \left((1 - \gamma)\,\Phi^{-1}\!\left(1 - \frac{1}{N}\right)
                     + \gamma\,\Phi^{-1}\!\left(1 - \frac{1}{N e}\right)\right)

    with :math:`\gamma` the Euler–Mascheroni constant and :math:`N` the number of
    independent trials (the false strategy theorem; Bailey & López de Prado 2014,
    eq. 7). For ``n_trials == 1`` it is 0 (the expectation of a single trial).

    Parameters
    ----------
    n_trials
        Number of independent trials :math:`N` (a whole number >= 1; round an
        estimated effective number of trials).
    trials_sharpe_std
        Standard deviation across the trials of their per-period Sharpe ratios,
        :math:`\sqrt{V[\{\widehat{SR}_n\}]}` (same units as ``sharpe``).

    Returns
    -------
    float
        Per-period Sharpe ratio.

    Raises
    ------
    DataError
        ``n_trials`` < 1 or not whole; ``trials_sharpe_std`` negative or not finite.

    Examples
    --------
    >>> round(expected_max_sharpe(100, 1.0), 4)
    2.5306
    """
    n = _count("expected_max_sharpe", "n_trials", n_trials, minimum=1)
    sd = _finite("expected_max_sharpe", "trials_sharpe_std", trials_sharpe_std)
    if n.ndim or sd.ndim:
        raise DataError("expected_max_sharpe: n_trials and trials_sharpe_std must be scalars")
    if sd < 0:
        raise DataError(f"expected_max_sharpe: trials_sharpe_std={float(sd)!r} is negative; "
                        "it is a standard deviation of Sharpe ratios")
    big_n = int(n)
    if big_n == 1:
        return 0.0
    g = EULER_MASCHERONI
    z = ((1 - g) * _NORMAL.inv_cdf(1 - 1 / big_n)
         + g * _NORMAL.inv_cdf(1 - 1 / (big_n * math.e)))
    return float(sd) * z


def deflated_sharpe(
    sharpe: Any, n_trials: int, trials_sharpe_std: float, n_obs: Any, skew: Any, kurtosis: Any
) -> Any:
    r"""Deflated Sharpe ratio: the PSR against the best Sharpe ratio luck alone would give.

    .. math::

        DSR = PSR(SR_0), \qquad
        SR_0 = \sqrt{V[\{\widehat{SR}_n\}]}
               \left((1 - \gamma)\,\Phi^{-1}\!\left(1 - \frac{1}{N}\right)
                     + \gamma\,\Phi^{-1}\!\left(1 - \frac{1}{N e}\right)\right)

    :math:`SR_0` is :func:`expected_max_sharpe`: the expected maximum of
    :math:`N` Sharpe ratios with true value 0 and the dispersion of the trials;
    :func:`probabilistic_sharpe` then corrects for the track-record length and the
    non-normality of the selected strategy's returns.

    Parameters
    ----------
    sharpe
        Observed per-period Sharpe ratio of the selected strategy (not annualised).
    n_trials
        Number of independent trials the selection was made from (>= 1).
    trials_sharpe_std
        Standard deviation of the per-period Sharpe ratios across all trials.
    n_obs, skew, kurtosis
        Number of returns, skewness and **non-excess** kurtosis of the selected
        strategy's returns (as for :func:`probabilistic_sharpe`).

    Returns
    -------
    float or numpy.ndarray
        A probability in [0, 1]: that the selected strategy's true Sharpe ratio is
        positive once the selection is accounted for (0.95 is the usual bar).

    Raises
    ------
    DataError
        As for :func:`probabilistic_sharpe` and :func:`expected_max_sharpe`.

    References
    ----------
    Bailey, D. H. and López de Prado, M. (2014). "The Deflated Sharpe Ratio:
    Correcting for Selection Bias, Backtest Overfitting and Non-Normality".
    Journal of Portfolio Management 40(5), 94–107. https://ssrn.com/abstract=2460551

    Examples
    --------
    The paper's numerical example: 100 trials, annualised Sharpe 2.5 on five years
    of daily returns (250 a year), variance of the annualised trial Sharpes 1/2,
    skewness -3, kurtosis 10:

    >>> import math
    >>> round(deflated_sharpe(2.5 / math.sqrt(250), 100, math.sqrt(0.5 / 250), 1250, -3, 10), 4)
    0.9004
    """
    sr0 = expected_max_sharpe(n_trials, trials_sharpe_std)
    return probabilistic_sharpe(sharpe, n_obs, skew, kurtosis, benchmark=sr0)


# -- helpers -----------------------------------------------------------------


def _finite(func: str, name: str, value: Any) -> np.ndarray:
    try:
        x = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise DataError(f"{func}: {name}={value!r} is not a number") from e
    if not np.isfinite(x).all():
        raise DataError(f"{func}: {name}={_first(x, ~np.isfinite(x))} is not finite")
    return x


def _count(func: str, name: str, value: Any, *, minimum: int) -> np.ndarray:
    x = _finite(func, name, value)
    bad = (x < minimum) | (x != np.round(x))
    if bad.any():
        shown = repr(value) if x.ndim == 0 else _first(x, bad)
        raise DataError(f"{func}: {name}={shown} must be a whole number >= {minimum}")
    return x


def _pearson(func: str, skew: np.ndarray, kurt: np.ndarray) -> None:
    # Every distribution has kurtosis >= 1 + skew**2 (and sample moments obey it too); an
    # excess kurtosis passed by mistake is 3 lower and usually falls below the bound.
    g3, g4 = np.broadcast_arrays(skew, kurt)
    bad = g4 < 1.0 + g3**2 - 1e-9
    if bad.any():
        i = np.flatnonzero(bad.ravel())[0]
        k, s = float(g4.ravel()[i]), float(g3.ravel()[i])
        raise DataError(f"{func}: kurtosis={k!r} is below 1 + skew**2 = {1 + s * s!r}, "
                        "the least any distribution has", hint=_KURTOSIS_HINT)


def _first(x: np.ndarray, mask: np.ndarray) -> str:
    return repr(float(x[mask].ravel()[0]) if x.ndim else float(x))


def _norm_cdf(z: np.ndarray) -> np.ndarray:
    # Φ(z) = erfc(-z / √2) / 2: accurate in both tails.
    return np.vectorize(lambda v: 0.5 * math.erfc(-v / math.sqrt(2.0)), otypes=[float])(z)


def _scalar(x: np.ndarray) -> Any:
    return float(x) if np.ndim(x) == 0 else x
