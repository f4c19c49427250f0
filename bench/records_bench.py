"""Benchmark (issue #14): producing signal records in bulk and writing them into the warehouse.

1,171,203 records (three metadata fields, one date after another) from a synthetic SignalFrame: made by
`SignalFrame.records` (Arrow, built column-wise), then written by `Warehouse.write_run` into a fresh DuckDB
file (checked column-wise, registered as Arrow, one transaction); the target is under 3 s for both (the former
path took 3 minutes to make the records and 17 s to write them). Then every non-zero record of every date of
the NSE sample for the three rule strategies. Not part of the tests.
Run: `.venv/bin/python bench/records_bench.py`.
"""
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from strategy_engine.core import sample_data_dir
from strategy_engine.data import load_bars, synthetic_bars
from strategy_engine.strategies.base import SignalFrame, load_config, run_strategy, strategy_names
from strategy_engine.warehouse import DuckDBWarehouse


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
                                 {"rsi": rng.uniform(0, 100, sig.shape),
                                  "volume_ratio": rng.lognormal(0, 0.5, sig.shape),
                                  "price_momentum": rng.normal(0, 0.05, sig.shape)})
    sf.records(like.index[:2])
    secs, table = timed(lambda: sf.records("all"))
    print(f"synthetic: {table.num_rows:,} records in {secs:.2f} s ({table.num_rows / secs:,.0f} records/s, "
          f"{secs / table.num_rows * 1e6:.2f} µs a record)")
    def produce_and_write() -> tuple[float, float, float, int]:
        with tempfile.TemporaryDirectory() as d:
            wh = DuckDBWarehouse(Path(d) / "wh.duckdb")
            c0, t0 = time.process_time(), time.perf_counter()
            records = sf.records("all")
            t1 = time.perf_counter()
            n = wh.write_run({"run_id": "bench", "kind": "backfill", "as_of": "2023-12-29"},
                             records)["signals"]
            t2, cpu = time.perf_counter(), time.process_time() - c0
            assert wh.counts()["signals"] == n
        return t1 - t0, t2 - t1, cpu, n
    runs = [produce_and_write() for _ in range(3)]
    make, write, cpu, n = min(runs, key=lambda r: r[0] + r[1])
    print(f"produced and written into a DuckDB file: {n:,} records in {make + write:.2f} s wall "
          f"(records {make:.2f} s, write_run {write:.2f} s), {cpu:.2f} s CPU (all threads); best of 3, "
          "target under 3 s")
    one, recs = timed(lambda: sf.to_records(like.index[-1]), repeat=20)
    print(f"to_records (the thin wrapper) of one date: {len(recs)} records in {one * 1e3:.1f} ms")

    nse = sample_data_dir()
    bars = load_bars(nse) if nse else synthetic_bars(50)
    total, secs = 0, 0.0
    for name in strategy_names(needs_training=False):
        frame = run_strategy(name, bars, load_config(name), restrict_universe=False)
        s, t = timed(lambda frame=frame: frame.records("all"))
        total, secs = total + t.num_rows, secs + s
    print(f"{bars.label}: {len(bars.dates):,} dates × {len(bars.symbols)} symbols × 3 strategies: {total:,} "
          f"non-zero records in {secs:.2f} s ({total / secs:,.0f} records/s)")


if __name__ == "__main__":
    main()
