"""Benchmark (issue #14): producing signal records in bulk with `SignalFrame.records` (Arrow, built column-wise).

1,171,203 records (three metadata fields, one date after another) from a synthetic SignalFrame, then every non-zero
record of every date of the NSE sample for the three rule strategies, against the row-by-row cost of `to_records`
(the former implementation cost 155 µs a record). Not part of the tests. Run: `.venv/bin/python bench/records_bench.py`.
"""
import os
import time

import numpy as np
import pandas as pd

from strategy_engine.core import sample_data_dir
from strategy_engine.data import load_bars, synthetic_bars
from strategy_engine.strategies.base import SignalFrame, load_config, run_strategy


def timed(fn, repeat: int = 3) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; best of 3")
    rng = np.random.default_rng(0)
    n_days, n_sym, n = 2343, 500, 1_171_203
    like = pd.DataFrame(index=pd.bdate_range("2015-01-01", periods=n_days, name="date"),
                        columns=pd.Index([f"SYN{j:03d}" for j in range(n_sym)], name="symbol"))
    sig = np.ones((n_days, n_sym), np.int8)
    sig.flat[n:] = 0
    sf = SignalFrame.from_arrays("momentum", like, sig, np.where(sig != 0, rng.random(sig.shape), 0.0),
                                 {"rsi": rng.uniform(0, 100, sig.shape), "volume_ratio": rng.lognormal(0, 0.5, sig.shape),
                                  "price_momentum": rng.normal(0, 0.05, sig.shape)})
    sf.records(like.index[:2])
    secs, table = timed(lambda: sf.records("all"))
    print(f"synthetic: {table.num_rows:,} records in {secs:.2f} s ({table.num_rows / secs:,.0f} records/s, "
          f"{secs / table.num_rows * 1e6:.2f} µs a record)")
    one, recs = timed(lambda: sf.to_records(like.index[-1]), repeat=20)
    print(f"to_records (the thin wrapper) of one date: {len(recs)} records in {one * 1e3:.1f} ms")

    nse = sample_data_dir()
    bars = load_bars(nse) if nse else synthetic_bars(50)
    total, secs = 0, 0.0
    for name in ("momentum", "mean_reversion", "breakout"):
        frame = run_strategy(name, bars, load_config(name), restrict_universe=False)
        s, t = timed(lambda frame=frame: frame.records("all"))
        total, secs = total + t.num_rows, secs + s
    print(f"{bars.label}: {len(bars.dates):,} dates × {len(bars.symbols)} symbols × 3 strategies: {total:,} non-zero "
          f"records in {secs:.2f} s ({total / secs:,.0f} records/s)")


if __name__ == "__main__":
    main()
