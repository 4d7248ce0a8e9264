"""Binance spot wire format: error bodies, parameter rules, and JSON shapes of the model's data.

Everything here is plain Python/numpy turned into the JSON Binance sends: integers for
ids and epoch-ms times, decimal strings with 8 decimals for prices and quantities.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tcp_lab.data.emulator.market import Klines, MarketModel, Trades
from tcp_lab.data.emulator.specs import SymbolSpec

__all__ = ["BinanceError", "int_param", "symbol_param", "kline_rows", "agg_trade_rows",
           "trade_rows", "trade_event", "agg_trade_event", "exchange_info", "RATE_LIMITS"]

#: What ``exchangeInfo`` advertises (Binance's figures at the time of writing).
RATE_LIMITS = [
    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
    {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
    {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
]


class BinanceError(Exception):
    """An error answered in Binance's shape: HTTP ``status`` and ``{"code": …, "msg": …}``."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code, self.msg, self.status = code, msg, status

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "msg": self.msg}


def int_param(query: Mapping[str, str], name: str, *, required: bool = False,
              minimum: int | None = None) -> int | None:
    """Read an integer query parameter the way Binance validates it."""
    raw = query.get(name)
    if raw is None or raw == "":
        if required:
            raise BinanceError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, "
                                      "or malformed.")
        return None
    try:
        value = int(raw)
    except ValueError:
        raise BinanceError(-1100, f"Illegal characters found in parameter '{name}'; legal range "
                                  "is '^[0-9]{1,20}$'.") from None
    if minimum is not None and value < minimum:
        raise BinanceError(-1100, f"Illegal characters found in parameter '{name}'; legal range "
                                  "is '^[0-9]{1,20}$'.")
    return value


def symbol_param(query: Mapping[str, str], market: MarketModel) -> SymbolSpec:
    """The spec of the ``symbol`` parameter; -1102 when missing, -1121 when unknown."""
    raw = query.get("symbol")
    if not raw:
        raise BinanceError(-1102, "Mandatory parameter 'symbol' was not sent, was empty/null, "
                                  "or malformed.")
    spec = market.spec_by_id(raw.upper()) if raw.isalnum() else None
    if spec is None:
        raise BinanceError(-1121, "Invalid symbol.")
    return spec


def _dec(x: float) -> str:
    return f"{x:.8f}"


def kline_rows(k: Klines) -> list[list[Any]]:
    """``[openTime, "o", "h", "l", "c", "v", closeTime, "quoteVolume", n, "takerBuyBase",
    "takerBuyQuote", "0"]`` per kline."""
    return [
        [int(k.open_time[i]), _dec(k.open[i]), _dec(k.high[i]), _dec(k.low[i]), _dec(k.close[i]),
         _dec(k.volume[i]), int(k.close_time[i]), _dec(k.quote_volume[i]), int(k.count[i]),
         _dec(k.taker_buy_volume[i]), _dec(k.taker_buy_quote_volume[i]), "0"]
        for i in range(len(k))
    ]


def agg_trade_rows(t: Trades) -> list[dict[str, Any]]:
    """REST ``aggTrades`` objects. Each aggregate trade is one trade here: ``f == l == a``."""
    return [
        {"a": int(t.id[i]), "p": _dec(t.price[i]), "q": _dec(t.amount[i]), "f": int(t.id[i]),
         "l": int(t.id[i]), "T": int(t.time[i]), "m": bool(t.buyer_maker[i]), "M": True}
        for i in range(len(t))
    ]


def trade_rows(t: Trades) -> list[dict[str, Any]]:
    """REST ``trades`` / ``historicalTrades`` objects."""
    return [
        {"id": int(t.id[i]), "price": _dec(t.price[i]), "qty": _dec(t.amount[i]),
         "quoteQty": _dec(t.price[i] * t.amount[i]), "time": int(t.time[i]),
         "isBuyerMaker": bool(t.buyer_maker[i]), "isBestMatch": True}
        for i in range(len(t))
    ]


def trade_event(market_id: str, t: Trades, i: int, event_ms: int) -> dict[str, Any]:
    """The ``<symbol>@trade`` stream event for trade ``i`` of ``t``."""
    return {"e": "trade", "E": int(event_ms), "s": market_id, "t": int(t.id[i]),
            "p": _dec(t.price[i]), "q": _dec(t.amount[i]), "T": int(t.time[i]),
            "m": bool(t.buyer_maker[i]), "M": True}


def agg_trade_event(market_id: str, t: Trades, i: int, event_ms: int) -> dict[str, Any]:
    """The ``<symbol>@aggTrade`` stream event for trade ``i`` of ``t``."""
    return {"e": "aggTrade", "E": int(event_ms), "s": market_id, "a": int(t.id[i]),
            "p": _dec(t.price[i]), "q": _dec(t.amount[i]), "f": int(t.id[i]),
            "l": int(t.id[i]), "T": int(t.time[i]), "m": bool(t.buyer_maker[i]), "M": True}


def _symbol_info(s: SymbolSpec) -> dict[str, Any]:
    tick, step = f"{s.tick:.8f}", f"{s.step:.8f}"
    return {
        "symbol": s.market_id, "status": "TRADING",
        "baseAsset": s.base, "baseAssetPrecision": 8,
        "quoteAsset": s.quote, "quotePrecision": 8, "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8, "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT",
                       "TAKE_PROFIT", "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": True, "ocoAllowed": True, "otoAllowed": True,
        "quoteOrderQtyMarketAllowed": True, "allowTrailingStop": True,
        "cancelReplaceAllowed": True, "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": tick, "maxPrice": "1000000.00000000",
             "tickSize": tick},
            {"filterType": "LOT_SIZE", "minQty": step, "maxQty": "9000.00000000",
             "stepSize": step},
            {"filterType": "ICEBERG_PARTS", "limit": 10},
            {"filterType": "MARKET_LOT_SIZE", "minQty": "0.00000000", "maxQty": "100.00000000",
             "stepSize": "0.00000000"},
            {"filterType": "NOTIONAL", "minNotional": _dec(5.0 * s.median_notional / 60.0),
             "applyMinToMarket": True, "maxNotional": "9000000.00000000",
             "applyMaxToMarket": False, "avgPriceMins": 5},
            {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5},
        ],
        "permissions": [], "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    }


def exchange_info(market: MarketModel, now_ms: int,
                  only: list[SymbolSpec] | None = None) -> dict[str, Any]:
    """``GET /api/v3/exchangeInfo`` for all symbols (or ``only`` those)."""
    specs = only if only is not None else [market.spec(s) for s in market.symbols]
    return {"timezone": "UTC", "serverTime": int(now_ms), "rateLimits": RATE_LIMITS,
            "exchangeFilters": [], "symbols": [_symbol_info(s) for s in specs]}
