"""Per-symbol constants of the emulated market: start price, tick, lot step, volatility, activity.

Well-known assets get realistic figures (BTC about 42,000 USDT on 2024-01-01, ETH
about 2,300); any other asset gets figures derived from a stable hash of its name, so
``"FOO/USDT"`` always looks the same. Prices are quoted in the quote asset: the
USD value of the base divided by the USD value of the quote (stablecoins are 1).
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from typing import Any

from tcp_lab.errors import ConfigError

__all__ = ["SymbolSpec", "make_spec", "parse_symbol", "stable_hash"]

_USD_VALUE = {
    "BTC": 42_000.0, "ETH": 2_300.0, "BNB": 310.0, "SOL": 100.0, "XRP": 0.62,
    "ADA": 0.60, "DOGE": 0.09, "AVAX": 38.0, "DOT": 8.2, "LINK": 15.0, "LTC": 72.0,
}
_STABLE = {"USDT", "USDC", "BUSD", "FDUSD", "TUSD", "DAI", "USD"}
# annualised volatility and mean aggregate trades per minute of the busiest pairs
_VOL = {"BTC": 0.55, "ETH": 0.65}
_RATE = {"BTC": 60.0, "ETH": 40.0}
_SYMBOL = re.compile(r"^([A-Z0-9]{2,12})/([A-Z0-9]{2,12})$")


def stable_hash(text: str) -> int:
    """A 32-bit hash of ``text`` that is the same in every process (unlike ``hash``)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=4).digest(), "big")


def parse_symbol(symbol: str) -> tuple[str, str]:
    """Split ``"BTC/USDT"`` into ``("BTC", "USDT")``.

    Raises
    ------
    ConfigError
        When ``symbol`` is not ``BASE/QUOTE`` in upper case.
    """
    m = _SYMBOL.match(symbol) if isinstance(symbol, str) else None
    if not m:
        raise ConfigError(
            f"symbol {symbol!r} is not of the form BASE/QUOTE",
            hint="use a ccxt unified spot symbol such as 'BTC/USDT'",
        )
    return m.group(1), m.group(2)


def _usd_value(asset: str) -> float:
    if asset in _STABLE:
        return 1.0
    if asset in _USD_VALUE:
        return _USD_VALUE[asset]
    # 10^U(-2, 3): anything from 0.01 to 1000 USD, fixed per asset name
    return float(10 ** (-2 + 5 * (stable_hash("usd:" + asset) % 10_000) / 10_000))


def _scale(n: Any, unit: float) -> Any:
    # n / 10**k is correctly rounded (n * 0.01 is not: 4323677 * 0.01 = 43236.770000000004)
    return n / round(1 / unit) if unit < 1 else n * unit


def _pow10_floor(x: float) -> int:
    return math.floor(math.log10(x))


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    """Constants of one emulated spot market.

    Attributes
    ----------
    symbol, market_id, base, quote
        ``"BTC/USDT"``, ``"BTCUSDT"``, ``"BTC"``, ``"USDT"``.
    start_price
        Price at the genesis time, in the quote asset.
    tick, step
        Price tick and quantity step (powers of ten); every trade price is a whole
        number of ticks and every quantity a whole number of steps.
    annual_vol
        Annualised volatility of the log price.
    trades_per_minute
        Mean number of aggregate trades per minute (before the hour-of-day profile).
    median_notional
        Median trade size in quote units.
    first_id
        Aggregate trade id of the first trade after genesis.
    key
        32-bit hash of the symbol, mixed into every random seed.
    """

    symbol: str
    market_id: str
    base: str
    quote: str
    start_price: float
    tick: float
    step: float
    annual_vol: float
    trades_per_minute: float
    median_notional: float
    first_id: int
    key: int

    def prices(self, ticks: Any) -> Any:
        """Prices from whole ticks, as the floats nearest their decimal values."""
        return _scale(ticks, self.tick)

    def amounts(self, lots: Any) -> Any:
        """Quantities from whole steps, as the floats nearest their decimal values."""
        return _scale(lots, self.step)

    @property
    def price_decimals(self) -> int:
        """Decimals of the tick (``0.01`` -> 2)."""
        return max(0, -_pow10_floor(self.tick))

    @property
    def qty_decimals(self) -> int:
        """Decimals of the quantity step (``0.00001`` -> 5)."""
        return max(0, -_pow10_floor(self.step))


def make_spec(symbol: str, *, trade_rate: float = 1.0) -> SymbolSpec:
    """The :class:`SymbolSpec` of ``symbol`` (deterministic; no randomness besides its name).

    Parameters
    ----------
    symbol
        ccxt unified symbol, e.g. ``"BTC/USDT"``.
    trade_rate
        Multiplier of the mean trade count (``0.1`` for a quiet market in tests).

    Examples
    --------
    >>> s = make_spec("BTC/USDT")
    >>> (s.market_id, s.start_price, s.tick, s.step)
    ('BTCUSDT', 42000.0, 0.01, 1e-05)
    """
    base, quote = parse_symbol(symbol)
    if not trade_rate > 0:
        raise ConfigError(f"trade_rate must be > 0, got {trade_rate!r}")
    key = stable_hash(symbol)
    price = _usd_value(base) / _usd_value(quote)
    tick = 10.0 ** (_pow10_floor(price) - 5)
    tick = min(tick, 0.01)  # Binance quotes even the dearest pairs to the cent
    step = 10.0 ** (_pow10_floor(10.0 / _usd_value(base)) - 1)  # ~10 USD in 10-100 steps
    step = min(step, 1.0)
    tick, step = float(f"{tick:.0e}"), float(f"{step:.0e}")
    frac = (key % 1000) / 1000
    vol = _VOL.get(base, 0.75 + 0.35 * frac)
    rate = _RATE.get(base, 6.0 + 18.0 * ((key // 1000) % 1000) / 1000)
    notional = 60.0 / _usd_value(quote)
    return SymbolSpec(
        symbol=symbol, market_id=base + quote, base=base, quote=quote,
        start_price=price, tick=tick, step=step, annual_vol=vol,
        trades_per_minute=rate * trade_rate, median_notional=notional,
        first_id=(100 + key % 900) * 1_000_000, key=key,
    )
