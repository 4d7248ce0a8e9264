"""Batch configs: validation errors name the file and the field; parameter sets expand."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from tcp_lab.batch import BatchConfig, load_batch_config, notebook_parameters, run_batch
from tcp_lab.batch.config import resolve_path
from tcp_lab.errors import ConfigError

ROOT = Path(__file__).parents[2]
DEMO = ROOT / "config" / "batches" / "sma_demo.json"
NB02 = ROOT / "notebooks" / "02_backtest.ipynb"


def _write(tmp_path: Path, data: object, name: str = "cfg.json") -> Path:
    p = tmp_path / name
    p.write_text(data if isinstance(data, str) else json.dumps(data))
    return p


def test_demo_config_expands_to_its_grid_and_matches_the_notebook():
    cfg = load_batch_config(DEMO)
    sets = cfg.parameter_sets()
    assert cfg.batch_name == "sma_demo"
    assert 2 <= len(sets) <= 4
    assert {(s["parameters"]["fast"], s["parameters"]["slow"]) for s in sets} == {
        (f, s) for f in cfg.grid["parameters.fast"] for s in cfg.grid["parameters.slow"]}
    assert all(s["strategy"] == "sma_cross" for s in sets)
    cfg.check_parameters(notebook_parameters(NB02), NB02)  # every name is declared


def test_unknown_field_names_the_file_and_suggests(tmp_path):
    path = _write(tmp_path, {"gird": {"fast": [1]}})
    with pytest.raises(ConfigError) as err:
        load_batch_config(path)
    msg = str(err.value)
    assert str(path) in msg and "unknown field 'gird'" in msg and "did you mean 'grid'" in msg


def test_wrong_type_names_the_nested_field(tmp_path):
    path = _write(tmp_path, {"grid": {"parameters.fast": 5}})
    with pytest.raises(ConfigError) as err:
        load_batch_config(path)
    assert "field 'grid.parameters.fast'" in str(err.value)
    assert "valid list" in str(err.value) and "(got 5)" in str(err.value)


@pytest.mark.parametrize("data, field", [
    ({"runs": []}, "runs"),
    ({"grid": {"fast": []}}, "grid"),
    ({"max_workers": 0}, "max_workers"),
    ({"executor": "dask"}, "executor"),
    ({"runs": [{"a": 1}, 3]}, "runs[1]"),
    ({"name": "has space"}, "name"),
])
def test_invalid_values_name_the_field(data, field):
    with pytest.raises(ConfigError, match=rf"field '{__import__('re').escape(field)}'"):
        load_batch_config(data)


def test_invalid_json_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"invalid JSON at line 1 column"):
        load_batch_config(_write(tmp_path, "{nope"))
    with pytest.raises(ConfigError, match="does not exist"):
        load_batch_config(tmp_path / "missing.json")
    with pytest.raises(ConfigError, match="expected a JSON object, got list"):
        load_batch_config(_write(tmp_path, "[1, 2]"))


def test_runs_times_grid_with_deep_merge():
    cfg = load_batch_config({
        "parameters": {"strategy": "sma_cross", "parameters": {"fast": 5, "slow": 30}},
        "runs": [{"fees": 0.0}, {"fees": 0.002, "parameters": {"slow": 60}}],
        "grid": {"parameters.fast": [5, 10], "symbol": ["BTC/USDT"]},
    })
    sets = cfg.parameter_sets()
    assert len(sets) == 4
    assert sets[0] == {"strategy": "sma_cross", "parameters": {"fast": 5, "slow": 30},
                       "fees": 0.0, "symbol": "BTC/USDT"}
    assert sets[3]["parameters"] == {"fast": 10, "slow": 60} and sets[3]["fees"] == 0.002
    assert cfg.parameters["parameters"] == {"fast": 5, "slow": 30}  # not mutated


def test_no_runs_no_grid_is_one_run():
    assert load_batch_config({"parameters": {"seed": 3}}).parameter_sets() == [{"seed": 3}]


def test_dotted_grid_key_into_a_scalar_is_an_error():
    cfg = load_batch_config({"parameters": {"parameters": 5}, "grid": {"parameters.fast": [1]}})
    with pytest.raises(ConfigError, match="'parameters' is int 5.*not a dict"):
        cfg.parameter_sets()


def test_parameters_are_checked_against_the_notebook():
    declared = {"strategy": {}, "parameters": {}, "fees": {}, "metrics_path": {}}
    cfg = load_batch_config({"runs": [{"strategy": "x"}, {"feez": 0.1}]})
    with pytest.raises(ConfigError) as err:
        cfg.check_parameters(declared, "nb.ipynb")
    msg = str(err.value)
    assert "field 'runs[1]' sets 'feez'" in msg and "did you mean 'fees'" in msg
    with pytest.raises(ConfigError, match="field 'grid' sets 'strategyy'"):
        load_batch_config({"grid": {"strategyy.x": [1]}}).check_parameters(declared, "nb")
    with pytest.raises(ConfigError, match="'metrics_path', which the batch sets itself"):
        load_batch_config({"parameters": {"metrics_path": "x"}}).check_parameters(declared, "nb")


def test_sort_direction_follows_the_metric():
    assert not BatchConfig(metric="sharpe").sort_ascending
    assert BatchConfig(metric="max_drawdown").sort_ascending
    assert BatchConfig(metric="oos_max_drawdown").sort_ascending
    assert not BatchConfig(metric="max_drawdown", ascending=False).sort_ascending


def test_notebook_paths_resolve_from_the_project_root(tmp_path, monkeypatch):
    cfg = load_batch_config(DEMO)
    monkeypatch.chdir(tmp_path)  # elsewhere: found next to the config's project
    assert resolve_path(cfg.notebook, cfg, "notebook") == NB02.resolve()
    with pytest.raises(ConfigError) as err:
        resolve_path("notebooks/nope.ipynb", cfg, "notebook")
    assert "notebook 'notebooks/nope.ipynb' does not exist" in str(err.value)
    assert str(tmp_path) in str(err.value)  # it says where it looked


def test_notebook_without_parameters_cell_is_rejected(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1")]
    path = tmp_path / "plain.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(ConfigError, match="no cell tagged 'parameters'"):
        notebook_parameters(path)


def test_run_batch_rejects_a_bad_config_before_running(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match="does not declare"):
        run_batch({"notebook": str(NB02), "parameters": {"stratgy": "x"}}, output_dir=out)
    assert not out.exists()
