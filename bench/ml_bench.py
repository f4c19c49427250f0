"""Benchmark: training and inference budgets of the ML strategies (LSTM, regime) on the NSE sample.

Prints wall and CPU times; not part of the tests. Run: `make bench` or `.venv/bin/python bench/ml_bench.py`.
Budgets (ML issue): training on 50 symbols × 10 years within 5 minutes on the 2-core machine; inference for
one daily run within 1 s. Trains with the configured parameters (config/strategies/lstm.yaml, regime.yaml)
into a temporary model store, so it never touches runs/models/.
"""
import os
import tempfile
import time
from pathlib import Path

import pandas as pd

from strategy_engine.core import sample_data_dir
from strategy_engine.data import load_bars, synthetic_bars
from strategy_engine.models import train_models
from strategy_engine.strategies import regime
from strategy_engine.strategies.base import run_strategy, strategy_names
from strategy_engine.validation import sessions_only


def timed(fn):
    "(result, wall seconds, CPU seconds) of one call."
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def best(fn, repeat: int = 3) -> float:
    "Best wall time of `repeat` calls, in seconds."
    return min(timed(fn)[1] for _ in range(repeat))


def main() -> None:
    nse = sample_data_dir()
    full = sessions_only(load_bars(nse, adjusted=False)) if nse else synthetic_bars(50, start="2010-01-01")
    end = full.dates[-1]
    bars = full.select(start=end - pd.DateOffset(years=10))
    print(f"training data: {bars} ({os.cpu_count()} CPUs)")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["STRATEGY_ENGINE_MODELS"] = str(Path(tmp) / "models")
        arts = {}
        total = 0.0
        for name in strategy_names(needs_training=True):
            [art], wall, cpu = timed(
                lambda name=name: train_models(bars, strategies=[name], out_dir=Path(tmp) / "run")
            )
            arts[name], total = art, total + wall
            extra = ""
            if name == "lstm":
                r = art.info["report"]
                extra = (f", {r['epochs_run']} epochs (best {r['best_epoch']}), {r['n_fit']:,} training "
                         f"windows, validation rank IC {r['val_rank_ic']:+.4f}")
            print(f"  train {name:6s} {wall:6.1f} s wall, {cpu:6.1f} s CPU -> {art.short_hash}{extra}")
        print(f"  both models: {total:.1f} s (budget 300 s)")
        [again], wall, _ = timed(lambda: train_models(bars, strategies=["lstm"], out_dir=Path(tmp) / "run2"))
        print(f"  lstm retrained in {wall:.1f} s: same model hash: "
              f"{again.model_hash == arts['lstm'].model_hash}")

        pinned = {"name": "lstm", "parameters": {"model": arts["lstm"].model_hash}}
        daily = full.select(start=end - pd.DateOffset(years=1))      # a daily run's bars: one year of history
        print("\ninference (one daily run = run_strategy on the bars below; best of 3, after one warm-up "
              "call):")
        for label, b in (("1 year of bars", daily), ("10 years of bars", bars), ("all bars", full)):
            run_strategy("lstm", b, pinned)
            print(f"  lstm   {label:16s} {b.close.shape[0]:5d} × {b.close.shape[1]} : "
                  f"{best(lambda b=b: run_strategy('lstm', b, pinned)) * 1e3:7.0f} ms (budget 1000 ms)")
        for label, b in (("3 years of bars", full.select(start=end - pd.DateOffset(years=3))),
                         ("all bars", full)):
            regime._FIT_CACHE.clear()
            _, cold, _ = timed(lambda b=b: run_strategy("regime", b))
            warm = best(lambda b=b: run_strategy("regime", b))
            print(f"  regime {label:16s} {b.close.shape[0]:5d} × {b.close.shape[1]} : walk-forward "
                  f"{cold * 1e3:7.0f} ms (fits memoized afterwards: {warm * 1e3:.0f} ms)")
        pinned_regime = {"name": "regime", "parameters": {"model": arts["regime"].model_hash}}
        run_strategy("regime", daily, pinned_regime)
        print(f"  regime 1 year, trained model     : "
              f"{best(lambda: run_strategy('regime', daily, pinned_regime)) * 1e3:7.0f} ms (budget 1000 ms)")


if __name__ == "__main__":
    main()
