"""Benchmark (issue #14): cold start of `import strategy_engine.backtest` plus the first `backtest()` call.

Target: under 1 s in a fresh interpreter with warm caches. Each figure comes from its own fresh process (best
of N, wall time inside the process, so the interpreter's own start is not counted):
  * the import, and the first `backtest()` + `.stats` on one symbol × 2,520 days, twice: with the package's
    bytecode compiled (`compileall`, what a normal install has) and without it. This machine and the image
    set PYTHONDONTWRITEBYTECODE=1, and an editable install ships no `.pyc`, so there every process compiled
    the package's sources again (the import's largest own cost); the Dockerfile now compiles them once;
  * the floor under them, which the package cannot remove: `import numpy`, `import pandas` (which imports
    pyarrow when it is installed), `import numba`, then numba's first use. Checked in numba 0.68's source:
    `Cache.load_overload` (numba/core/caching.py) calls `target_context.refresh()` before it loads any cached
    kernel, and the first refresh runs `CPUContext.load_additional_registries` (numba/core/cpu.py), which
    imports every implementation module (numba.np.arraymath, npyimpl, linalg, random, typed containers, ...);
    `numba.np.arraymath` runs `_check_blas()` at import, i.e. `import scipy.linalg.cython_blas`, whose
    package `scipy.linalg` imports `scipy._lib._array_api`, whose vendored array_api_compat clones the numpy
    namespace by touching every attribute (importing numpy.f2py, numpy.testing, ...). numba has no setting
    that skips the registries or the BLAS check, and a cached kernel is loaded only through that path, so
    the floor is paid by any process that runs one numba kernel; it is printed in three parts: scipy.linalg,
    the rest of the refresh, and compiling one trivial function (which the cached path does not need);
  * which heavy modules the import pulls in (matplotlib, scipy, sklearn, torch, duckdb, papermill, ...);
  * the numba cache: a second process with `NUMBA_DEBUG_CACHE=1` must load every kernel ("data loaded") and
    save none ("data saved" would mean a recompilation);
  * `python -X importtime`: the modules with the largest cumulative import time.
Not part of the tests. Run: `.venv/bin/python bench/cold_start_bench.py [REPEATS]` (default 5). It deletes
and rebuilds the package's `__pycache__` folders (build products, ignored by git).
"""
import compileall
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

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
import json, time
t0 = time.perf_counter()
import numpy
t1 = time.perf_counter()
import pandas
t2 = time.perf_counter()
import numba
t3 = time.perf_counter()
import scipy.linalg                                               # numba's BLAS check, alone
t4 = time.perf_counter()
from numba.core.registry import cpu_target
cpu_target.target_context.refresh()                               # what loading a cached kernel runs first
t5 = time.perf_counter()
numba.njit("float64(float64)")(lambda x: x + 1.0)                # compiling one function (not needed cached)
t6 = time.perf_counter()
print(json.dumps({"numpy": t1 - t0, "pandas": t2 - t1, "numba": t3 - t2, "scipy_linalg": t4 - t3,
                  "registries": t5 - t4, "compile": t6 - t5}))
"""

PACKAGE = Path(__file__).resolve().parents[1] / "strategy_engine"


def bytecode(compiled: bool) -> None:
    "Delete the package's bytecode, then compile it again if `compiled`."
    for folder in PACKAGE.rglob("__pycache__"): shutil.rmtree(folder)
    if compiled: compileall.compile_dir(PACKAGE, quiet=1)


def fresh(code: str, env: dict | None = None) -> tuple[str, str]:
    "stdout and stderr of `code` in a fresh interpreter."
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                          env=os.environ | (env or {}))
    return done.stdout, done.stderr


def best_of(code: str, n: int, env: dict | None = None) -> dict:
    "Each key's best (smallest) value over `n` fresh processes; non-numbers from the last."
    runs = [json.loads(fresh(code, env)[0]) for _ in range(n)]
    return {k: min(r[k] for r in runs) if isinstance(runs[0][k], float) else runs[-1][k] for k in runs[0]}


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; best of {n} fresh processes each")
    fresh(COLD)                                                   # compile whatever the cache lacks
    log = "".join(fresh(COLD, {"NUMBA_DEBUG_CACHE": "1"}))       # numba prints its cache log on stdout
    loaded, saved = log.count("data loaded"), log.count("data saved")
    kernels = sorted(set(re.findall(r"data loaded from '.*?/([\w.]+)-\d+\.py", log)))
    bytecode(compiled=False)
    bare = best_of(COLD, n, {"PYTHONDONTWRITEBYTECODE": "1"})   # sources compiled by every process
    bytecode(compiled=True)
    cold = best_of(COLD, n)
    floor = best_of(FLOOR, n)
    for what, r in (("bytecode compiled", cold), ("no bytecode (sources compiled on import)", bare)):
        print(f"\n{what}: import strategy_engine.backtest {r['import'] * 1e3:.0f} ms; first backtest() + "
              f".stats: {r['first'] * 1e3:.0f} ms; together {(r['import'] + r['first']) * 1e3:.0f} ms "
              "(target < 1000)")
    print(f"numba cache, second process: {loaded} kernels loaded, {saved} compiled and saved "
          f"({'hits only' if saved == 0 else 'RECOMPILED'}): {', '.join(kernels)}")
    part = {k: v * 1e3 for k, v in floor.items()}
    paid = sum(v for k, v in part.items() if k != "compile")
    print(f"floor in a bare interpreter: import numpy {part['numpy']:.0f} ms, pandas {part['pandas']:.0f} "
          f"ms, numba {part['numba']:.0f} ms; numba's first use: scipy.linalg {part['scipy_linalg']:.0f} ms, "
          f"the rest of its registries {part['registries']:.0f} ms (compiling a trivial function "
          f"{part['compile']:.0f} ms more, not needed with a warm cache); sum {paid:.0f} ms")
    total = (cold["import"] + cold["first"]) * 1e3
    print(f"the package's own share (bytecode compiled): {total - paid:.0f} ms of {total:.0f} ms "
          f"({(total - paid) / total:.0%}); the floor is {paid / total:.0%}")
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
