"""Benchmark: signals + backtest of each strategy (NSE sample, 500 × 20 y synthetic) and a 100-combination sweep.

Prints best-of-N wall times; not part of the tests. Run: `make bench` or `.venv/bin/python bench/backtest_bench.py`.
Targets (issue #3): 500 symbols × 5,040 days under 150 ms per strategy, the sweep under 100 ms, peak memory under 1 GB.
"""
import resource
import time

from strategy_engine.backtest import backtest, signals_to_weights
from strategy_engine.core import sample_data_dir
from strategy_engine.data import load_bars, synthetic_bars
from strategy_engine.strategies.base import load_config, run_strategy
from strategy_engine.sweep import sweep


def best_ms(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times) * 1e3


def strategy_and_backtest(name, bars, cfg):
    sf = run_strategy(name, bars, cfg, restrict_universe=False)
    return backtest(bars, signals_to_weights(sf.signal, cfg.risk_limits.max_position_size))


def main() -> None:
    strategies = ["momentum", "mean_reversion", "breakout"]   # the rule strategies (ML ones train first)
    cfgs = {n: load_config(n) for n in strategies}
    t0 = time.perf_counter()
    warm = synthetic_bars(5, n_days=300)
    for n in strategies: strategy_and_backtest(n, warm, cfgs[n])
    print(f"first calls (numba: load from cache or compile): {(time.perf_counter() - t0) * 1e3:.0f} ms")

    nse = sample_data_dir()
    if nse:
        bars = load_bars(nse)
        print(f"\nNSE sample: {bars.close.shape[1]} symbols × {bars.close.shape[0]} days ({bars.source})")
        for n in strategies:
            ms = best_ms(lambda n=n: strategy_and_backtest(n, bars, cfgs[n]))
            res = strategy_and_backtest(n, bars, cfgs[n])
            print(f"  {n:15s} signals + weights + backtest {ms:7.1f} ms   (Sharpe {res.stats['sharpe_ratio'].iloc[0]:+.2f}, "
                  f"{len(res.trades)} trades)")

    big = synthetic_bars(500, n_days=5040, seed=11)
    print(f"\nSYNTHETIC: {big.close.shape[1]} symbols × {big.close.shape[0]} days")
    for n in strategies:
        sig = best_ms(lambda n=n: run_strategy(n, big, cfgs[n], restrict_universe=False))
        tot = best_ms(lambda n=n: strategy_and_backtest(n, big, cfgs[n]))
        full = best_ms(lambda n=n: (lambda r: (r.trades, r.stats))(strategy_and_backtest(n, big, cfgs[n])), repeat=3)
        print(f"  {n:15s} signals {sig:6.1f} ms   signals + weights + backtest {tot:6.1f} ms (target < 150 ms)"
              f"   + trade list and stats {full:6.1f} ms")

    cfg = cfgs["momentum"]
    if nse:
        b20 = load_bars(nse, symbols=list(cfg.universe), start="2014-11-22")
    else:
        b20 = synthetic_bars(20, n_days=2520)
    grid = {"momentum_period": [5, 10, 15, 20, 30], "rsi_entry": [52.0, 55.0, 60.0, 65.0],
            "volume_threshold": [1.0, 1.2, 1.5, 2.0, 2.5]}
    sweep("momentum", b20, grid)
    ms = best_ms(lambda: sweep("momentum", b20, grid))
    res = sweep("momentum", b20, grid)
    print(f"\nSweep: momentum, {len(res.params)} combinations × {b20.close.shape[1]} symbols × {b20.close.shape[0]} days: "
          f"{ms:.1f} ms (target < 100 ms); best Sharpe {res.best()['sharpe_ratio']:.2f}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak memory (max RSS of this process): {peak:.0f} MB (target < 1024 MB)")


if __name__ == "__main__":
    main()
