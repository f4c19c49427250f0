"""Benchmark (issue #14): cold start of `import strategy_engine.backtest` plus the first `backtest()` call.

Target: under 1 s in a fresh interpreter with a warm numba cache. Each figure comes from its own fresh process
(best of N, wall time inside the process, so the interpreter's own start is not counted; it is printed apart):
  * the import, and the first `backtest()` + `.stats` on one symbol × 2,520 days;
  * the floor under them: `import numpy`, `import pandas`, `import numba`, and numba's own first use, which
    imports `scipy.linalg` (numba's BLAS check in `numba.np.arraymath`, run when its CPU target first loads
    its registries) whatever the kernel does;
  * which heavy modules the import pulls in (matplotlib, scipy, sklearn, torch, duckdb, papermill, ...);
  * the numba cache: a second process with `NUMBA_DEBUG_CACHE=1` must load every kernel ("data loaded") and
    save none ("data saved" would mean a recompilation);
  * `python -X importtime`: the modules with the largest cumulative import time.
Not part of the tests. Run: `.venv/bin/python bench/cold_start_bench.py [REPEATS]` (default 5).
"""
import json
import os
import re
import subprocess
import sys

HEAVY = ("matplotlib", "scipy", "sklearn", "torch", "duckdb", "papermill", "pyarrow", "yaml", "pydantic",
         "jinja2", "requests", "google", "nbformat", "statsmodels", "vectorbt")

COLD = r"""
import json, sys, time
t0 = time.perf_counter()
import strategy_engine.backtest as bt
t1 = time.perf_counter()
loaded = sorted({m.split(".")[0] for m in sys.modules})
import numpy as np, pandas as pd
dates = pd.bdate_range("2015-01-01", periods=2520)
rets = np.random.default_rng(0).normal(0, 0.01, 2520)
close = pd.DataFrame({"A": 100 * np.exp(np.cumsum(rets))}, index=dates)
weights = pd.DataFrame({"A": 1.0}, index=dates)
scipy_before = "scipy.linalg" in sys.modules
t2 = time.perf_counter()
bt.backtest(close, weights).stats
t3 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "first": t3 - t2, "modules": loaded, "scipy_linalg_before": scipy_before,
                  "scipy_linalg_after": "scipy.linalg" in sys.modules}))
"""

FLOOR = r"""
import json, os, sys, tempfile, time
t0 = time.perf_counter()
import numpy
t1 = time.perf_counter()
import pandas
t2 = time.perf_counter()
import numba
t3 = time.perf_counter()
numba.njit("float64(float64)")(lambda x: x + 1.0)                # numba's first use: registries, BLAS check
t4 = time.perf_counter()
print(json.dumps({"numpy": t1 - t0, "pandas": t2 - t1, "numba": t3 - t2, "numba_first_use": t4 - t3}))
"""


def fresh(code: str, env: dict | None = None) -> tuple[str, str]:
    "stdout and stderr of `code` in a fresh interpreter."
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                          env=os.environ | (env or {}))
    return done.stdout, done.stderr


def best_of(code: str, n: int) -> dict:
    "Each key's best (smallest) value over `n` fresh processes; non-numbers from the last."
    runs = [json.loads(fresh(code)[0]) for _ in range(n)]
    return {k: min(r[k] for r in runs) if isinstance(runs[0][k], float) else runs[-1][k] for k in runs[0]}


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; best of {n} fresh processes each")
    fresh(COLD)                                                   # compile whatever the cache lacks
    log = "".join(fresh(COLD, {"NUMBA_DEBUG_CACHE": "1"}))       # numba prints its cache log on stdout
    loaded, saved = log.count("data loaded"), log.count("data saved")
    kernels = sorted(set(re.findall(r"data loaded from '.*?/([\w.]+)-\d+\.py", log)))
    cold = best_of(COLD, n)
    floor = best_of(FLOOR, n)
    print(f"\nimport strategy_engine.backtest: {cold['import'] * 1e3:.0f} ms; first backtest() + .stats: "
          f"{cold['first'] * 1e3:.0f} ms; together {(cold['import'] + cold['first']) * 1e3:.0f} ms (target < "
          "1000)")
    print(f"numba cache, second process: {loaded} kernels loaded, {saved} compiled and saved "
          f"({'hits only' if saved == 0 else 'RECOMPILED'}): {', '.join(kernels)}")
    print(f"floor in a bare interpreter: import numpy {floor['numpy'] * 1e3:.0f} ms, pandas "
          f"{floor['pandas'] * 1e3:.0f} ms, numba {floor['numba'] * 1e3:.0f} ms, numba's first use "
          f"{floor['numba_first_use'] * 1e3:.0f} ms (sum {sum(floor.values()) * 1e3:.0f} ms)")
    print(f"scipy.linalg imported by the import: {cold['scipy_linalg_before']}; after the first call: "
          f"{cold['scipy_linalg_after']} (numba's BLAS check, on its first use)")
    heavy = [m for m in HEAVY if m in cold["modules"]]
    print(f"heavy top-level packages loaded by the import: {', '.join(heavy) or 'none'}")
    _, trace = fresh("import strategy_engine.backtest", {"PYTHONPROFILEIMPORTTIME": "1"})
    rows = [line.split("|")
            for line in trace.splitlines() if line.startswith("import time:") and "cumulative" not in line]
    rows = sorted(((int(c), int(s.split(":")[1]), name.rstrip()) for s, c, name in rows), reverse=True)
    top = [r for r in rows if r[2].strip().split(".")[0] != "strategy_engine" or r[2].count(" ") <= 3][:15]
    print("\npython -X importtime, largest cumulative (ms: cumulative / self):")
    for cum, own, name in top: print(f"  {cum / 1e3:7.1f} / {own / 1e3:6.1f}  {name}")


if __name__ == "__main__":
    main()
