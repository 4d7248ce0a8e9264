"""Where a candle series came from, and where a repair of it goes.

The collector records each series' *source* when it first writes it: the
provider's ``source``, the base URL of the exchange (``https://api.binance.com``)
or emulator (``http://127.0.0.1:8765``), redacted (see
:meth:`~tcp_lab.store.Store.save_series_source`). Imported dumps record none.

``tcp-lab data check --repair`` follows one rule (:func:`plan_repair`):

- with ``--exchange-url URL`` it repairs from ``URL`` (the real exchange when
  ``URL`` is its REST host); a series recorded elsewhere, or with no source,
  says so in one line (:func:`source_note`);
- without it, each series is repaired from its recorded source; a series with
  none is not repaired, and one line says what to pass. Nothing goes to the
  real exchange unless the series came from there or ``--exchange-url`` says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from tcp_lab.errors import ConfigError

__all__ = ["RepairPlan", "plan_repair", "source_note", "real_source"]


@dataclass(frozen=True)
class RepairPlan:
    """Where to repair one series from.

    Attributes
    ----------
    go
        Whether to repair it (False: no usable source; ``note`` says why).
    exchange_url
        What :class:`~tcp_lab.data.collector.DataCollector` gets: an emulator's
        URL, or None for the real exchange.
    note
        One line for the user when the series is not repaired; else empty
        (:func:`source_note` covers a repair from elsewhere).
    """

    go: bool
    exchange_url: str | None = None
    note: str = ""


def real_source(exchange: str) -> str:
    """The real exchange's REST host, as recorded with the series collected from it.

    Raises
    ------
    ConfigError
        ``exchange`` is not a ccxt exchange id.
    """
    from tcp_lab.data.providers.ccxt_client import exchange_source

    return exchange_source(exchange)


def source_note(series: str, recorded: str | None, used: str) -> str:
    """One line when ``series`` is repaired from ``used`` but was recorded elsewhere (or
    has no recorded source); empty when they agree.

    Examples
    --------
    >>> source_note("binance BTC/USDT 1m", "http://127.0.0.1:8765", "https://api.binance.com")
    'binance BTC/USDT 1m: collected from http://127.0.0.1:8765, repaired from https://api.binance.com'
    >>> source_note("binance BTC/USDT 1m", "https://api.binance.com", "https://api.binance.com")
    ''
    """
    if recorded is None:
        return (f"{series}: no recorded source (imported from files, or collected before "
                f"tcp_lab recorded sources), repaired from {used}")
    if recorded != used:
        return f"{series}: collected from {recorded}, repaired from {used}"
    return ""


def plan_repair(exchange: str, symbol: str, timeframe: str, recorded: str | None,
                exchange_url: str | None = None) -> RepairPlan:
    """Where ``tcp-lab data check --repair`` repairs a series from (see the module docstring).

    Parameters
    ----------
    exchange, symbol, timeframe
        The series.
    recorded
        Its recorded source (None: none).
    exchange_url
        ``--exchange-url``, when given.

    Raises
    ------
    ConfigError
        ``exchange_url`` is not an http(s) URL, or ``exchange`` is not a ccxt id.

    Examples
    --------
    >>> plan_repair("binance", "BTC/USDT", "1m", "http://127.0.0.1:8765")
    RepairPlan(go=True, exchange_url='http://127.0.0.1:8765', note='')
    >>> plan_repair("binance", "BTC/USDT", "1m", "https://api.binance.com")
    RepairPlan(go=True, exchange_url=None, note='')
    >>> plan_repair("binance", "BTC/USDT", "1m", None).go
    False
    """
    from tcp_lab.data.providers.ccxt_client import exchange_source

    series = f"{exchange} {symbol} {timeframe}"
    if exchange_url is not None:
        given = exchange_source(exchange, exchange_url)  # a malformed URL: one line
        return RepairPlan(True, None if given == real_source(exchange) else exchange_url)
    if recorded is None:
        try:
            real = f"{real_source(exchange)} for the real exchange"
        except ConfigError:
            real = "the exchange's REST URL"
        return RepairPlan(False, note=(
            f"{series}: not repaired: no recorded source (imported from files, or collected "
            f"before tcp_lab recorded sources); pass --exchange-url URL (the emulator's, or "
            f"{real})"))
    if "***" in recorded:
        return RepairPlan(False, note=(
            f"{series}: not repaired: its recorded source {recorded} needs a credential "
            "tcp_lab does not store; pass --exchange-url with it"))
    try:
        real = real_source(exchange)
    except ConfigError:
        real = None
    return RepairPlan(True, None if recorded == real else recorded)
