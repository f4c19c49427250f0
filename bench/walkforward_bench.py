"""Benchmark: 100-combination walk-forward per rule strategy, 50 symbols × 15 years, and a whole `evaluate`.

Prints best-of-N wall times; not part of the tests. Run: `.venv/bin/python bench/walkforward_bench.py`. Target
(issue: evaluation): a 100-combination walk-forward over 50 symbols × 15 years under 10 s. Uses the NSE sample
(50 symbols, 2010-01-04 .. 2024-11-22) when present, else 50 synthetic symbols × 3,780 days.
"""
import resource
import time

from strategy_engine.core import sample_data_dir
from strategy_engine.data import load_bars, synthetic_bars
from strategy_engine.evaluation import default_grid, deflated_sharpe, evaluate, pbo, walk_forward
from strategy_engine.strategies.base import strategy_names
from strategy_engine.sweep import parameter_grid
from strategy_engine.validation import sessions_only


def best_s(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    strategies = strategy_names(needs_training=False)
    t0 = time.perf_counter()
    warm = synthetic_bars(5, n_days=300)
    for n in strategies:
        walk_forward(n, warm, {k: v[:1] for k, v in default_grid(n).items()}, train_days=100, test_days=50,
                     restrict_universe=False)
    print(f"first calls (numba: load from cache or compile): {time.perf_counter() - t0:.2f} s")

    nse = sample_data_dir()
    bars = sessions_only(load_bars(nse, adjusted=False)) if nse else synthetic_bars(50, n_days=3780, seed=11)
    print(f"\n{bars}")
    years = len(bars.dates) / 252
    for n in strategies:
        k = len(parameter_grid(default_grid(n)))
        first_s = best_s(lambda n=n: walk_forward(n, bars, restrict_universe=False), repeat=1)
        wf_s = best_s(lambda n=n: walk_forward(n, bars, restrict_universe=False))
        res = walk_forward(n, bars, restrict_universe=False)
        stats_s = best_s(lambda res=res: (deflated_sharpe(res.returns), pbo(res.returns)))
        ev_s = best_s(lambda n=n: evaluate(n, bars, restrict_universe=False), repeat=2)
        s = res.summary()
        oos, ins = s.at["out_of_sample", "sharpe_ratio"], s.at["in_sample_same_span", "sharpe_ratio"]
        print(f"  {n:15s} {k} combinations × {bars.close.shape[1]} symbols × {years:.1f} years: walk-forward "
              f"{wf_s:5.2f} s (first run {first_s:.2f} s; target < 10 s); DSR + PBO (12,870 splits) "
              f"{stats_s:5.2f} s; whole evaluate {ev_s:5.2f} s   [OOS Sharpe {oos:+.2f} vs IS {ins:+.2f}]")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak memory (max RSS of this process): {peak:.0f} MB")


if __name__ == "__main__":
    main()
