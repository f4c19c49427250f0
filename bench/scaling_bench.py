"""Benchmark (issue #14): cost against the size of the universe, peak memory, and cold start.

Each universe size runs in a fresh process: 500, 2,000 and 5,000 synthetic symbols × 5,040 days, the public
path (signals + weights + backtest + metrics) of each rule strategy, and momentum through the risk layer
(`apply_risk`: stops and caps) instead of equal weights, best of 3 after one warm-up call, with the user and
system CPU time of the timed calls (getrusage) and the peak RSS of the process (bars included). Targets: 2,000
symbols at most 4.5× the 500-symbol time, system time under 20 % of user time, peak memory under 0.5 GB at 500
symbols (measured from a reset of the peak RSS after the bars are built: the synthetic generator's own peak is
not the pipeline's). The peak is the whole process's: the libraries (~170 MB: numpy, pandas with pyarrow,
numba + LLVM, pydantic), the bars (5 × 19 MB), numba's first use (~65 MB: its registries and scipy.linalg, see
`bench/cold_start_bench.py`), whatever the generator freed and the process kept for reuse, and the pipelines.
The pipelines do not read the strategies' metadata, so it is never computed (`strategies.base.LazyMetadata`).
Cold start: a fresh interpreter that imports `strategy_engine.backtest` and makes its
first call (numba cache warm), target under 1 s (its breakdown: `bench/cold_start_bench.py`). Each size runs
twice: with the package's default, `core.reuse_freed_memory()` (freed pages kept for the next call), and with
glibc's own settings (STRATEGY_ENGINE_REUSE_MEMORY=0). Not part of the tests. Run: `.venv/bin/python
bench/scaling_bench.py [SIZES...]`.
"""
import json
import os
import resource
import subprocess
import sys
import time

WORKER = r"""
import json, resource, sys, time
from strategy_engine.backtest import backtest, signals_to_weights
from strategy_engine.data import synthetic_bars
from strategy_engine.risk import apply_risk
from strategy_engine.strategies.base import load_config, run_strategy
n = int(sys.argv[1])
def status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith(key))
libraries = status("VmRSS:")
bars = synthetic_bars(n, n_days=5040, seed=11)
out = {"symbols": n, "generation_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
       "libraries_mb": libraries, "bars_mb": sum(bars[f].to_numpy().nbytes for f in
                                                ("open", "high", "low", "close", "volume")) / 2**20}
import gc
gc.collect()
with open("/proc/self/clear_refs", "w") as f:   # reset the peak: what follows is the pipeline's
    f.write("5")
out["bars_rss_mb"] = status("VmRSS:")
for name in ("momentum", "mean_reversion", "breakout", "momentum+risk"):
    cfg = load_config(name.split("+")[0])
    def run():
        sf = run_strategy(cfg.name, bars, cfg, restrict_universe=False)
        if name.endswith("+risk"): return backtest(bars, apply_risk(sf, bars, cfg.risk_limits).weights).stats
        return backtest(bars, signals_to_weights(sf.signal, cfg.risk_limits.max_position_size)).stats
    run()
    best = None
    for _ in range(3):
        r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        run()
        wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
        cut = (wall, r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime)
        best = cut if best is None or cut[0] < best[0] else best
    out[name] = {"wall_ms": best[0] * 1e3, "user_ms": best[1] * 1e3, "sys_ms": best[2] * 1e3}
out["peak_mb"] = status("VmHWM:")
print(json.dumps(out))
"""

COLD = r"""
import time
t0 = time.perf_counter()
import numpy as np, pandas as pd
from strategy_engine.backtest import backtest
dates = pd.bdate_range("2015-01-01", periods=2520)
steps = np.random.default_rng(0).normal(0, 0.01, 2520)
close = pd.DataFrame({"A": 100 * np.exp(np.cumsum(steps))}, index=dates)
res = backtest(close, pd.DataFrame({"A": 1.0}, index=dates))
res.stats
print(time.perf_counter() - t0)
"""


def run(code: str, *args: str, reuse: bool = False) -> str:
    env = os.environ | {"STRATEGY_ENGINE_REUSE_MEMORY": "1" if reuse else "0"}
    return subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True, text=True,
                          env=env).stdout


def report(rows: list[dict], title: str) -> None:
    base = rows[0]
    print(f"\n== {title}")
    for name in ("momentum", "mean_reversion", "breakout", "momentum+risk"):
        what = "the risk layer (stops, caps)" if name.endswith("+risk") else "weights"
        print(f"{name}: signals + {what} + backtest + metrics, × 5,040 days")
        for row in rows:
            r = row[name]
            cpu, cpu0 = r["user_ms"] + r["sys_ms"], base[name]["user_ms"] + base[name]["sys_ms"]
            print(f"  {row['symbols']:>5} symbols: wall {r['wall_ms']:6.0f} ms "
                  f"({r['wall_ms'] / base[name]['wall_ms']:4.1f}×), CPU {cpu:6.0f} ms ({cpu / cpu0:4.1f}× "
                  f"for {row['symbols'] / base['symbols']:.0f}× the symbols): user {r['user_ms']:5.0f}, sys "
                  f"{r['sys_ms']:4.0f} (sys/user {r['sys_ms'] / max(r['user_ms'], 1e-9):.0%})")
    for row in rows:
        kept = row["bars_rss_mb"] - row["libraries_mb"] - row["bars_mb"]
        print(f"peak memory, {row['symbols']} symbols: {row['peak_mb']:.0f} MB during the four pipelines "
              f"(process with the bars loaded: {row['bars_rss_mb']:.0f} MB = libraries "
              f"{row['libraries_mb']:.0f} + the bars {row['bars_mb']:.0f} + {kept:.0f} freed by the generator"
              f" and kept; generating the synthetic bars peaked at {row['generation_peak_mb']:.0f} MB)")


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [500, 2000, 5000]
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; each size in a fresh process, "
          "best of 3")
    report([json.loads(run(WORKER, str(n), reuse=True)) for n in sizes],
           "the default: core.reuse_freed_memory (freed pages reused, no page faults)")
    report([json.loads(run(WORKER, str(n))) for n in sizes],
           "STRATEGY_ENGINE_REUSE_MEMORY=0: glibc's own settings")
    cold = []
    for _ in range(5):
        r0, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
        inner = float(run(COLD))
        wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_CHILDREN)
        cold.append((inner, wall, r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime))
    inner, wall, cpu = min(cold)
    print("\ncold start, fresh interpreter (best of 5): import strategy_engine.backtest + first backtest + "
          f"stats {inner * 1e3:.0f} ms; with the interpreter's own start {wall * 1e3:.0f} ms wall, "
          f"{cpu * 1e3:.0f} ms CPU")
    print(f"this process's peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
