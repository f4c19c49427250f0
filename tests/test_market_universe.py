"""Issue 13: a point-in-time universe from the market store (no look-ahead, no survivorship, EQ only)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from strategy_engine.calendar import nse_calendar
from strategy_engine.market.bhavcopy import synthetic_market, write_bhavcopy
from strategy_engine.market.store import ingest_files, read_market_bars, read_market_field
from strategy_engine.market.universe import (
    check_point_in_time,
    series_eligible,
    store_universe,
    top_by_traded_value,
)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    d = tmp_path_factory.mktemp("market")
    days = nse_calendar().sessions("2024-01-01", "2024-06-28")
    for k, rows in enumerate(synthetic_market(days, n_symbols=60, seed=5, other_series=3)):
        if k >= 80: rows = rows[rows["symbol"] != "SYM00007"]          # delisted after 80 sessions
        write_bhavcopy(rows, d / "in")
    uri = f"duckdb:///{d / 'w.duckdb'}"
    assert ingest_files([d / "in"], uri).ok
    return uri


def test_store_universe_is_point_in_time_and_eq_only(store):
    mask = store_universe(store, n=10, window=20)
    series = read_market_field(store, "series")
    assert (mask.sum(axis=1).iloc[25:] == 10).all()
    assert not (mask & series.ne("EQ")).to_numpy().any()                           # BE names never members
    bars = read_market_bars(store, adjustment="raw")
    rule = lambda b: top_by_traded_value(b, 10, 20, eligible=series_eligible(series))
    check_point_in_time(rule, bars, bars.dates[[15, 30, 60, 100]])
    with pytest.raises(AssertionError, match="looks ahead"):
        check_point_in_time(lambda b: rule(b).shift(-1, fill_value=False), bars, bars.dates[[30, 60]])


def test_a_delisted_symbol_belongs_to_the_past_universe(store):
    bars = read_market_bars(store, adjustment="raw")
    value = (bars.close * bars.volume).rolling(20, min_periods=10).median()
    mask = top_by_traded_value(bars, n=len(bars.symbols), window=20)
    assert mask["SYM00007"].iloc[20:80].all() and not mask["SYM00007"].iloc[80:].any()
    assert np.isnan(bars.close["SYM00007"].iloc[80:]).all() and value["SYM00007"].iloc[79] > 0
    assert pd.Series(mask.index).is_monotonic_increasing


def test_evaluate_trades_only_the_members_of_a_point_in_time_universe():
    from strategy_engine.core import DataError
    from strategy_engine.data import synthetic_bars
    from strategy_engine.evaluation import evaluate
    from strategy_engine.market.universe import universe_mask
    bars = synthetic_bars(12, n_days=300)
    grid = {"momentum_period": [10, 20]}
    kw = dict(walk_forward=False, grid=grid, restrict_universe=False)
    nobody = universe_mask("top:3:traded_value:20", bars) & False
    with pytest.raises(DataError, match="every column is flat"):                  # no member, no trade
        evaluate("momentum", bars, membership=nobody, **kw)
    full = evaluate("momentum", bars, **kw)
    some = evaluate("momentum", bars, membership=universe_mask("top:3:traded_value:20", bars), **kw)
    assert some["in_sample"]["metrics"]["total_return"] != full["in_sample"]["metrics"]["total_return"]
