"""Bot configs: the shipped files load; errors name the file and the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from tcp_lab.bots import BotConfig, find_bot_config, load_bot_config
from tcp_lab.errors import ConfigError

ROOT = Path(__file__).parents[2]
BASE = {"strategy": "sma_cross", "parameters": {"fast": 10, "slow": 30}, "exchange": "binance",
        "symbol": "BTC/USDT", "timeframe": "1m"}


def write(tmp_path, data, name="my-bot.json") -> Path:
    p = tmp_path / name
    p.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return p


@pytest.mark.parametrize("path", sorted((ROOT / "config" / "bots").glob("*.json")),
                         ids=lambda p: p.name)
def test_shipped_configs_load(path):
    config = load_bot_config(path)
    assert config.name == path.stem
    assert config.window >= config.build_strategy().warmup


def test_defaults_name_from_the_file_and_canonical_parameters(tmp_path):
    config = load_bot_config(write(tmp_path, BASE | {"parameters": {"fast": 5.0}}))
    assert config.name == "my-bot"
    assert config.parameters == {"fast": 5, "slow": 30}  # coerced, defaults filled in
    assert (config.fees, config.slippage, config.size, config.size_type,
            config.direction, config.start) == (0.001, 0.0, 1.0, "percent", "long", "latest")
    assert BotConfig.model_validate(config.to_json()) == config
    with pytest.raises(ValidationError):
        config.fees = 0.5  # frozen


def test_old_key_names_load_with_a_deprecation_message(tmp_path, caplog):
    old = BASE | {"fee": 0.002, "initial_balance": 500.0, "position_size": 0.5}
    with caplog.at_level("WARNING"):
        config = load_bot_config(write(tmp_path, old))
    assert (config.fees, config.init_cash, config.size) == (0.002, 500.0, 0.5)
    for old_key, new_key in (("fee", "fees"), ("initial_balance", "init_cash"),
                             ("position_size", "size")):
        assert f"{old_key!r} is deprecated, use {new_key!r}" in caplog.text
    with pytest.raises(ConfigError, match="both 'fee' and 'fees'"):
        load_bot_config(write(tmp_path, BASE | {"fee": 0.002, "fees": 0.001}))


def test_trading_options_are_the_backtests(tmp_path):
    config = load_bot_config(write(tmp_path, BASE | {"stop_loss": 0.02, "trailing_stop": 0.05}))
    opts = config.trading_options()
    assert (opts.stop_loss, opts.trailing_stop, opts.take_profit) == (0.02, 0.05, None)
    assert opts.price == "close" and opts.init_cash == config.init_cash


@pytest.mark.parametrize(("change", "field", "words"), [
    ({"parametrs": {}}, "'parametrs'", "did you mean 'parameters'"),
    ({"parameters": {"fast": 50, "slow": 30}}, "field 'parameters'", "less than"),
    ({"parameters": {"fats": 3}}, "field 'parameters'", "did you mean 'fast'"),
    ({"strategy": "sma_cros"}, "field 'strategy'", "did you mean 'sma_cross'"),
    ({"timeframe": "7m"}, "field 'timeframe'", "7m"),
    ({"fees": 2}, "field 'fees'", "less than 1"),
    ({"size": 2}, "field 'size'", "(0, 1]"),
    ({"size": 0.5, "direction": "longshort"}, "field 'size'", "reverse"),
    ({"stop_loss": 1.5}, "field 'stop_loss'", "less than 1"),
    ({"direction": "short"}, "field 'direction'", "long"),
    ({"start": "2024-01-01"}, "field 'start'", "zone"),
    ({"name": "my bot"}, "field 'name'", "not a valid bot name"),
    ({"symbol": None}, "field 'symbol'", "or 'symbols' (a portfolio bot"),
    ({"symbols": ["ETH/USDT"]}, "field 'symbol'", "both are set"),
])
def test_errors_name_file_and_field(tmp_path, change, field, words):
    path = write(tmp_path, BASE | change)
    with pytest.raises(ConfigError) as info:
        load_bot_config(path)
    text = str(info.value)
    assert str(path) in text and field in text and words in text


def test_missing_field_missing_file_and_bad_json(tmp_path):
    with pytest.raises(ConfigError, match="field 'symbol': set either 'symbol'"):
        load_bot_config(write(tmp_path, {k: v for k, v in BASE.items() if k != "symbol"}))
    with pytest.raises(ConfigError, match="does not exist"):
        load_bot_config(tmp_path / "nope.json")
    with pytest.raises(ConfigError, match="invalid JSON at line 1"):
        load_bot_config(write(tmp_path, "{not json"))
    with pytest.raises(ConfigError, match="expected a JSON object"):
        load_bot_config(write(tmp_path, "[1, 2]"))


def test_find_bot_config(tmp_path):
    write(tmp_path, BASE, "alpha.json")
    assert find_bot_config("alpha", tmp_path) == tmp_path / "alpha.json"
    assert find_bot_config(str(tmp_path / "alpha.json")) == tmp_path / "alpha.json"
    with pytest.raises(ConfigError, match="did you mean 'alpha'"):
        find_bot_config("alpah", tmp_path)
