"""Bot definitions: one JSON file per bot in ``config/bots/<name>.json``.

A bot config names the strategy and its parameters, the market it trades
(exchange, symbol, timeframe) and the paper account (initial balance, fee,
slippage, position size). The file's stem is the bot's name (its id in the
store and on the bus) unless the file sets ``"name"``.

>>> cfg = BotConfig(name="sma-btc", strategy="sma_cross", parameters={"fast": 10, "slow": 30},
...                 exchange="binance", symbol="BTC/USDT", timeframe="1m")
>>> cfg.window, cfg.fees
(51, 0.001)

The trading options have the names of :class:`~tcp_lab.execution.TradingOptions`
(``fees``, ``slippage``, ``init_cash``, ``size``, ``size_type``, ``direction``,
``stop_loss``, ``take_profit``, ``trailing_stop``). Files written for tcp_lab
0.1 (``fee``, ``initial_balance``, ``position_size``) still load; a warning
names the new key.
"""

from __future__ import annotations

import difflib
import json
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tcp_lab.errors import ConfigError, StrategyError
from tcp_lab.execution import TradingOptions
from tcp_lab.execution.sizing import Sizing, check_vol_window, parse_sizing
from tcp_lab.settings import project_root
from tcp_lab.strategies import BaseStrategy, get_strategy
from tcp_lab.timeframes import parse_timeframe, to_utc_timestamp

__all__ = ["BotConfig", "market_label", "load_bot_config", "find_bot_config", "default_config_dir",
           "DEFAULT_CONFIG_DIR"]

#: Where ``tcp-lab bots start NAME`` looks for ``NAME.json``.
DEFAULT_CONFIG_DIR = Path("config") / "bots"


def default_config_dir() -> Path:
    """``<project root>/config/bots`` (see :func:`tcp_lab.settings.project_root`)."""
    return project_root() / DEFAULT_CONFIG_DIR
#: A bot name is used in channel names and keys: no spaces, no glob characters.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")
_START_WORDS = ("latest", "earliest")
log = logging.getLogger(__name__)


class BotConfig(BaseModel):
    """What one paper-trading bot trades and how (immutable; unknown keys rejected).

    Attributes
    ----------
    name
        The bot's id: letters, digits, ``_ . -`` (default: the file's stem).
    strategy, parameters
        A registered strategy name (or dotted path) and its parameters,
        validated by the strategy's own declaration.
    exchange, symbol, timeframe
        The candle series it trades, e.g. ``binance``, ``BTC/USDT``, ``1m``.
    symbols
        Instead of ``symbol``: several symbols traded from one account with shared
        cash (a **portfolio bot**, :class:`~tcp_lab.bots.portfolio_bot.PortfolioBot`):
        what :func:`tcp_lab.run_portfolio` does on the same candles, one close time
        at a time. Stops and targets are resolved on the candles (the OHLC rule).
    sizing, max_positions, vol_window, leverage, maintenance_margin
        A portfolio bot's sizing (``all_in`` by default; ``size`` is the sizing's
        size), cap on open positions, volatility window and margin, as for
        :func:`tcp_lab.run_portfolio`.
    init_cash
        Starting cash of the paper account (quote currency).
    fees, slippage
        Fractions per fill, as in :func:`tcp_lab.backtest.run_backtest`.
    size, size_type
        ``percent``: fraction of the equity per entry (1.0 = all in); ``value``:
        quote amount per entry; ``amount``: base units per entry.
    direction
        ``long`` or ``longshort`` (exits open shorts, entries cover them).
    stop_loss, take_profit, trailing_stop
        Fractions of the entry fill price (None: off), resolved at each closed
        candle on that candle's market trades (the trades rule) from the live
        stream (``trades:{symbol}``) or the store, or by the OHLC rule when
        neither has them, as the backtest does.
    latency_ms, max_volume_share
        How a triggered stop fills on market trades (see
        :class:`~tcp_lab.execution.TradingOptions`).
    start
        Which candles to trade on first start: ``latest`` (only candles that
        close after the newest stored one), ``earliest`` (every stored candle)
        or an ISO time (candles closing after it).
    window_margin
        Extra candles on top of the strategy's warm-up in the trailing window.
    isolation
        ``shared`` (default): the bot runs in a bot host with other bots of its
        symbol; ``process``: in a host process of its own (untrusted or heavy
        code: its crash, hang or memory cannot touch other bots).
    description
        Free text.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    strategy: str
    parameters: dict[str, Any] = Field(default_factory=dict)
    exchange: str
    symbol: str | None = None
    symbols: tuple[str, ...] | None = None
    timeframe: str
    init_cash: float = Field(10_000.0, gt=0, allow_inf_nan=False)
    fees: float = Field(0.001, ge=0, lt=1)
    slippage: float = Field(0.0, ge=0, lt=1)
    size: float = Field(1.0, gt=0, allow_inf_nan=False)
    size_type: Literal["percent", "value", "amount"] = "percent"
    direction: Literal["long", "longshort"] = "long"
    stop_loss: float | None = Field(None, gt=0, lt=1)
    take_profit: float | None = Field(None, gt=0, lt=1)
    trailing_stop: float | None = Field(None, gt=0, lt=1)
    latency_ms: float | None = Field(None, ge=0, allow_inf_nan=False)
    max_volume_share: float | None = Field(None, gt=0, le=1)
    start: str = "latest"
    window_margin: int = Field(20, ge=0, le=100_000)
    isolation: Literal["shared", "process"] = "shared"
    sizing: str | None = None
    max_positions: int | None = Field(None, ge=1)
    vol_window: int | None = Field(None, ge=2, le=100_000)
    leverage: float = Field(1.0, ge=1, allow_inf_nan=False)
    maintenance_margin: float = Field(0.005, ge=0, lt=1)
    description: str = ""

    @model_validator(mode="before")
    @classmethod
    def _old_names(cls, data: Any) -> Any:
        if isinstance(data, dict) and any(k in data for k in RENAMED_KEYS):
            return _renamed(data, str(data.get("name", "")))
        return data

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.fullmatch(v):
            raise ValueError(
                f"{v!r} is not a valid bot name: use letters, digits, '_', '.' or '-' "
                "(at most 100 characters, starting with a letter or digit)"
            )
        return v

    @field_validator("exchange", "symbol")
    @classmethod
    def _market(cls, v: str | None) -> str | None:
        if v is not None and (not v or any(c.isspace() or c in "*?[]\\" for c in v)):
            raise ValueError(f"{v!r} must be non-empty, without spaces or * ? [ ] \\")
        return v

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, v: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if v is None:
            return v
        if not v:
            raise ValueError("a portfolio bot needs at least one symbol")
        for sym in v:
            cls._market(sym)
        twice = sorted({sym for sym in v if v.count(sym) > 1})
        if twice:
            raise ValueError(f"{', '.join(twice)} listed twice")
        return tuple(sorted(v))  # the portfolio's order: by symbol name

    @field_validator("timeframe")
    @classmethod
    def _timeframe(cls, v: str) -> str:
        return parse_timeframe(v).name  # DataError is a ValueError

    @field_validator("start")
    @classmethod
    def _start(cls, v: str) -> str:
        if v in _START_WORDS:
            return v
        try:
            return to_utc_timestamp(v, name="start").isoformat()
        except ValueError as e:
            raise ValueError(
                f"{v!r} is neither 'latest', 'earliest' nor a time with a zone "
                f"(e.g. '2024-03-01T00:00Z'): {e}"
            ) from None

    @model_validator(mode="after")
    def _consistent(self) -> BotConfig:
        # Messages start with the field they blame ("field: ..."), see from_mapping().
        _check_market(self)
        try:
            self.trading_options()
        except ConfigError as e:  # the one validation of trading options; names the field
            field = next((f for f in ("size", "direction") if f"{f}=" in e.message), "size")
            raise ValueError(f"{field}: {e.message.removeprefix('bot config: ')}") from None
        try:
            get_strategy(self.strategy)
        except StrategyError as e:
            raise ValueError(f"strategy: {e}") from None
        try:
            strategy = get_strategy(self.strategy, self.parameters)
        except StrategyError as e:
            raise ValueError(f"parameters: {e}") from None
        # Canonical parameters (defaults filled in, types coerced) so every reader agrees.
        object.__setattr__(self, "parameters", dict(strategy.params))
        return self

    # -- derived ---------------------------------------------------------------------------
    @property
    def is_portfolio(self) -> bool:
        """True for a bot of several symbols (``symbols``) from one account."""
        return self.symbols is not None

    @property
    def universe(self) -> tuple[str, ...]:
        """The symbols the bot trades (``symbols``, or its one ``symbol``)."""
        return self.symbols if self.symbols is not None else (str(self.symbol),)

    @property
    def series(self) -> tuple[tuple[str, str, str], ...]:
        """(exchange, symbol, timeframe) of each symbol of :attr:`universe`."""
        return tuple((self.exchange, s, self.timeframe) for s in self.universe)

    @property
    def market(self) -> str:
        """What it trades, for people (:func:`market_label`)."""
        return market_label(self.to_json())

    def portfolio_sizing(self) -> Sizing:
        """A portfolio bot's :class:`~tcp_lab.execution.sizing.Sizing` (``size`` only when
        the file sets it)."""
        sizing = self.sizing or "all_in"
        size = self.size if "size" in self.model_fields_set else None
        if sizing in _UNSIZED and size == BotConfig.model_fields["size"].default:
            size = None  # the default, as to_json() writes it back
        return parse_sizing(sizing, size, self.max_positions, len(self.universe),
                            leverage=self.leverage)

    def trading_options(self) -> TradingOptions:
        """The bot's :class:`~tcp_lab.execution.TradingOptions` (fills at the close; a
        portfolio bot's size and size type are its sizing's)."""
        values = {k: getattr(self, k) for k in ("fees", "slippage", "init_cash", "size",
                                                "size_type", "direction", "stop_loss",
                                                "take_profit", "trailing_stop", "latency_ms",
                                                "max_volume_share")}
        if self.is_portfolio:
            sz = self.portfolio_sizing()
            values |= {"size": sz.size, "size_type": sz.size_type}
        return TradingOptions.from_mapping(values, owner="bot config")

    def build_strategy(self) -> BaseStrategy:
        """A fresh strategy object with this bot's parameters."""
        return get_strategy(self.strategy, self.parameters)

    @property
    def window(self) -> int:
        """Closed candles the bot feeds its strategy: warm-up plus margin."""
        return int(self.build_strategy().warmup) + self.window_margin

    @property
    def start_after(self) -> pd.Timestamp | None:
        """The explicit ``start`` time, or None for ``latest``/``earliest``."""
        return None if self.start in _START_WORDS else pd.Timestamp(self.start).as_unit("us")

    def to_json(self) -> dict[str, Any]:
        """The config as a JSON-ready dict (what the store keeps with the bot)."""
        return self.model_dump(mode="json")

    @classmethod
    def from_mapping(cls, data: Any, *, source: str, default_name: str | None = None) -> BotConfig:
        """Validate a mapping (a parsed JSON file) into a config; errors name ``source``.

        Raises
        ------
        ConfigError
            Not an object, an unknown key (with a did-you-mean), a missing or
            invalid field, or invalid strategy parameters. The message names
            ``source`` and the field.
        """
        if not isinstance(data, dict):
            raise ConfigError(f"bot config {source}: expected a JSON object, "
                              f"got {type(data).__name__}")
        known = list(cls.model_fields)
        data = _renamed(data, source)
        for key in data:
            if key not in known:
                guess = difflib.get_close_matches(str(key), known, n=1)
                dym = f"; did you mean {guess[0]!r}?" if guess else ""
                raise ConfigError(f"bot config {source}: unknown field {key!r}{dym}",
                                  hint="fields: " + ", ".join(known))
        values = dict(data)
        if default_name is not None:
            values.setdefault("name", default_name)
        try:
            return cls(**values)
        except ValidationError as e:
            err = e.errors()[0]
            field = ".".join(str(p) for p in err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            hint = None
            if not field:  # a model-level rule: its message names the field
                head, _, rest = msg.partition(": ")
                if head in known:
                    field, msg = head, rest
                cause = e.errors()[0].get("ctx", {}).get("error")
                if isinstance(cause, ValueError) and isinstance(cause.__context__, StrategyError):
                    msg, hint = cause.__context__.message, cause.__context__.hint
            where = f"field {field!r}" if field else "config"
            given = f" (got {err['input']!r})" if err["type"] != "value_error" and field and \
                not isinstance(err.get("input"), dict) else ""
            raise ConfigError(f"bot config {source}: {where}: {msg}{given}",
                              hint=hint or _hint(field)) from None


#: Keys of a portfolio bot only; and keys of a bot of one symbol only (each set to
#: something other than its default: :meth:`BotConfig.to_json` writes every key).
_PORTFOLIO_KEYS = ("sizing", "max_positions", "vol_window", "leverage", "maintenance_margin")
_SINGLE_KEYS = ("size_type", "latency_ms", "max_volume_share")
_UNSIZED = ("all_in", "equal")  # sizings without a size


def _set(c: BotConfig, keys: tuple[str, ...]) -> list[str]:
    return [k for k in keys if getattr(c, k) != BotConfig.model_fields[k].default]


def _check_market(c: BotConfig) -> None:
    """``symbol`` xor ``symbols``, and the keys that belong to one kind of bot only."""
    if (c.symbol is None) == (c.symbols is None):
        raise ValueError("symbol: set either 'symbol' (one symbol) or 'symbols' (a portfolio "
                         "bot of several): " + ("both are set" if c.symbol else "neither is"))
    if c.symbols is None:
        extra = _set(c, _PORTFOLIO_KEYS)
        if extra:
            raise ValueError(f"{extra[0]}: only a portfolio bot ('symbols') has {extra[0]!r}")
        return
    extra = _set(c, _SINGLE_KEYS)
    if extra:
        raise ValueError(f"{extra[0]}: a portfolio bot sizes its entries by 'sizing' and "
                         f"resolves stops on candles; {extra[0]!r} is for a bot of one symbol")
    try:
        c.portfolio_sizing()
        check_vol_window(c.vol_window, c.sizing or "all_in")
    except ConfigError as e:
        field = ("vol_window" if "vol_window" in e.message else
                 "sizing" if "unknown sizing" in e.message else "size")
        raise ValueError(f"{field}: {e.message.removeprefix('run_portfolio: ')}") from None


#: Keys of tcp_lab 0.1 bot configs and their names now (the trading options' names).
RENAMED_KEYS = {"fee": "fees", "initial_balance": "init_cash", "position_size": "size"}


def _renamed(data: dict[str, Any], source: str) -> dict[str, Any]:
    """``data`` with old keys renamed; each old key logs a deprecation warning."""
    out = {}
    for key, value in data.items():
        new = RENAMED_KEYS.get(key)
        if new is None:
            out[key] = value
            continue
        if new in data:
            raise ConfigError(f"bot config {source}: both {key!r} and {new!r} are set",
                              hint=f"{key!r} is the old name of {new!r}: keep {new!r}")
        log.warning("bot config %s: %r is deprecated, use %r (same meaning)", source, key, new)
        out[new] = value
    return out


def _hint(field: str) -> str | None:
    return {
        "parameters": "see `tcp-lab strategy list` for each strategy's parameters",
        "strategy": "see `tcp-lab strategy list`",
        "timeframe": None,  # the timeframe error says what is allowed
        "fees": "a fraction: 0.001 is 0.1 % per fill",
        "slippage": "a fraction: 0.0005 is 0.05 % against us per fill",
    }.get(field.split(".")[0], "fix the field in the JSON file")


def market_label(config: Mapping[str, Any]) -> str:
    """What a stored bot config (:meth:`BotConfig.to_json`) trades, for people:
    ``binance BTC/USDT 1m``, or ``binance BTC/USDT,ETH/USDT 1m`` for a portfolio bot.

    >>> market_label({"exchange": "binance", "symbols": ["BTC/USDT", "ETH/USDT"],
    ...               "timeframe": "1h"})
    'binance BTC/USDT,ETH/USDT 1h'
    """
    symbols = config.get("symbols") or [config.get("symbol", "?")]
    return f"{config.get('exchange', '?')} {','.join(map(str, symbols))} " \
           f"{config.get('timeframe', '?')}"


def load_bot_config(path: str | Path) -> BotConfig:
    """Read and validate a bot config file.

    Parameters
    ----------
    path
        A JSON file such as ``config/bots/sma-btc.json``; its stem is the
        bot's name unless it sets ``"name"``.

    Returns
    -------
    BotConfig

    Raises
    ------
    ConfigError
        Missing file, invalid JSON, unknown or invalid fields, invalid
        strategy parameters; the message names the file and the field.

    Examples
    --------
    >>> cfg = load_bot_config("config/bots/sma-btc.json")   # doctest: +SKIP
    >>> cfg.strategy, cfg.parameters                         # doctest: +SKIP
    ('sma_cross', {'fast': 10, 'slow': 30})
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"bot config {p} does not exist",
                          hint=f"create it (examples: {DEFAULT_CONFIG_DIR}/*.json)") from None
    except OSError as e:
        raise ConfigError(f"bot config {p}: cannot read it ({e})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(
            f"bot config {p}: invalid JSON at line {e.lineno} column {e.colno} ({e.msg})"
        ) from None
    return BotConfig.from_mapping(data, source=str(p), default_name=p.stem)


def find_bot_config(name: str, config_dir: str | Path | None = None) -> Path:
    """The file of the bot called ``name``: ``name`` itself if it is a path, else
    ``<config_dir>/<name>.json``.

    Raises
    ------
    ConfigError
        No such file (with the names that do exist).
    """
    direct = Path(name)
    if direct.suffix == ".json" and direct.is_file():
        return direct
    folder = Path(config_dir) if config_dir is not None else default_config_dir()
    p = folder / f"{name}.json"
    if p.is_file():
        return p
    known = sorted(q.stem for q in folder.glob("*.json")) if folder.is_dir() else []
    guess = difflib.get_close_matches(name, known, n=1)
    dym = f"; did you mean {guess[0]!r}?" if guess else ""
    raise ConfigError(f"no bot config {p}{dym}",
                      hint="bots: " + (", ".join(known) or f"(none in {folder})"))
