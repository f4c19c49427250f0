"""Benchmark: wall time of the whole daily run (kernel, 50 NSE symbols × 3 strategies, DuckDB write, archive).

Runs `strategy-engine run daily` as the scheduler does, in a fresh temporary warehouse and archive, and prints
the median of `--runs` whole commands (target, issue #14: under 2.5 s on this machine, kernel included). With
`--breakdown` each run is also split into its parts, measured inside the command's own process: interpreter
start and CLI import, the CLI's preparation (flags, `--as-of latest`), the kernel's boot (process start + the
template's imports, beside the CLI's preparation) and the wait for it, each notebook cell (papermill's cell
times in the archived notebook), the archive write (summary, manifest, archive + ledger), the warehouse (open,
pending, load) and the exit. `--compare CHECKOUT` runs another checkout's command alternately with this one's
(same load, so the ratio holds on a busy machine). The data's parsed files are cached per user
(`data.bars_cache_dir`): the first run after the files change parses them, the next ones read the cache; set
`STRATEGY_ENGINE_BARS_CACHE=off` to measure without it. An entry is stamped with the module that wrote it, so
two checkouts sharing one cache would evict each other's entries on every run: with `--compare` each checkout
gets a cache folder of its own (in the system temp folder, kept between runs). Not part of the tests.

    python bench/daily_bench.py                 # 5 whole commands, median
    python bench/daily_bench.py --breakdown     # and where each one's time went
"""
import argparse
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLI = Path(sys.executable).parent / "strategy-engine"
ROOT = Path(__file__).resolve().parent.parent

# Runs inside the measured command: wraps the functions whose time is a part of the run, then runs the CLI as
# the console script does. Each part's seconds go to $BREAKDOWN as JSON.
_DRIVER = r'''
import json, os, sys, time
t_start = float(os.environ["BENCH_T0"])
t_python = time.time()
import strategy_engine.cli as cli
t_cli = time.time()
parts, marks = {}, {"python_started": t_python - t_start, "cli_imported": t_cli - t_start}

def timed(module, name, label=None):
    f = getattr(module, name)
    def wrapper(*a, **k):
        t = time.time()
        try: return f(*a, **k)
        finally: parts[label or name] = parts.get(label or name, 0.0) + time.time() - t
    setattr(module, name, wrapper)

import strategy_engine.notebooks as nb
timed(cli, "precheck", "cli: precheck (flags)")
timed(cli, "_as_of", "cli: resolve --as-of")
real_start = nb.start_kernel
def start_kernel(*a, **k):
    marks.setdefault("kernel_spawn_at", time.time() - t_start)
    return real_start(*a, **k)
nb.start_kernel = start_kernel
def finish():
    import strategy_engine.runs.launcher as la
    import strategy_engine.warehouse as wh
    for name in ("add_summary", "build_manifest", "archive_run", "code_version"):
        timed(la, name, f"archive: {name}")
    for name in ("_pending", "load_record", "_staged_files", "read_result", "notebook_failure"):
        timed(la, name, f"launcher: {name}")
    timed(la, "execute_notebook", "notebook: execute_notebook (kernel wait + cells)")
    real_open = wh.open_warehouse
    def open_warehouse(*a, **k):
        t = time.time()
        w = real_open(*a, **k)
        parts["warehouse: open"] = parts.get("warehouse: open", 0.0) + time.time() - t
        return w
    wh.open_warehouse = open_warehouse
    import papermill as pm
    real_pm = pm.execute_notebook
    def pm_execute(*a, **k):
        marks["papermill_called_at"] = time.time() - t_start
        return real_pm(*a, **k)
    pm.execute_notebook = pm_execute
real_stage = cli._run_stage
def run_stage(*a, **k):
    marks["run_stage_at"] = time.time() - t_start
    finish()
    return real_stage(*a, **k)
cli._run_stage = run_stage
import atexit
def done():
    marks["main_returned"] = time.time() - t_start
    json.dump({"parts": parts, "marks": marks}, open(os.environ["BREAKDOWN"], "w"))
atexit.register(done)
sys.argv[0] = "strategy-engine"
sys.exit(cli.main())           # as the console script calls it (it ends the process itself)
'''


def kernel_boot() -> tuple[float, float]:
    "Seconds from spawn to ready of a bare python3 kernel and of the daily template's (imports preloaded)."
    from jupyter_core.utils import run_sync

    from strategy_engine.notebooks import start_kernel, stop_kernel
    from strategy_engine.runs.launcher import template_path
    bare = ROOT / "bench" / ".bare_template.ipynb"
    bare.write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    out = []
    try:
        for template in (bare, template_path("daily")):
            t = time.perf_counter()
            km = start_kernel(template)
            kc = km.client()
            kc.start_channels()
            run_sync(kc._async_wait_for_ready)(timeout=120)
            out.append(time.perf_counter() - t)
            kc.stop_channels()
            stop_kernel(km)
    finally: bare.unlink()
    return out[0], out[1]


def _cells(archive: Path) -> tuple[list[tuple[str, float]], float | None]:
    "Per code cell of the archived notebook: (first line, seconds); and the first cell's start (epoch s)."
    from datetime import datetime
    nb = json.loads(next(archive.rglob("daily_signals.ipynb")).read_text())
    out, first = [], None
    for c in nb["cells"]:
        pm = c.get("metadata", {}).get("papermill") or {}
        if c["cell_type"] != "code" or not pm.get("start_time"): continue
        start = datetime.fromisoformat(pm["start_time"].replace("Z", "+00:00")).timestamp()
        first = start if first is None else first
        src = "".join(c["source"]).strip().splitlines()
        code = [ln for ln in src if ln and not ln.startswith(("#", "import", "from", "pd.set"))]
        label = code[0] if code else src[0]
        if "injected-parameters" in c["metadata"].get("tags", []): label = "(injected parameters)"
        out.append((label[:60], float(pm.get("duration") or 0.0)))
    return out, first


def _digest(path: Path) -> str:
    "A short stable name for a checkout's folder (two checkouts may share a folder name)."
    return hashlib.sha256(str(path).encode()).hexdigest()[:10]


def sample_data_dir() -> Path | None:
    "The NSE sample this checkout's code finds."
    from strategy_engine.core import sample_data_dir as found
    return found()


def once(as_of: str, data: str, breakdown: bool, checkout: Path = ROOT,
         symbols: str = "nifty50_sample", cache: Path | None = None) -> tuple[float, float, dict | None]:
    "One command of `checkout`'s code in a fresh warehouse and archive: wall and CPU seconds (and its parts)."
    with tempfile.TemporaryDirectory() as d:
        chosen = ["--symbols", symbols] if symbols else []
        args = ["run", "daily", "--as-of", as_of, *chosen, "--data", data,
                "--warehouse", f"duckdb:///{d}/wh.duckdb", "--archive", f"{d}/archive", "--no-log-output"]
        env = {**os.environ, "BREAKDOWN": f"{d}/breakdown.json", "PYTHONPATH": str(checkout),
               "STRATEGY_ENGINE_DATA": str(sample_data_dir())}           # one sample for every checkout
        if cache is not None: env["STRATEGY_ENGINE_BARS_CACHE"] = str(cache)
        cmd = [sys.executable, "-c", _DRIVER, *args] if breakdown else [str(CLI), *args]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        env["BENCH_T0"] = repr(time.time())
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=checkout)
        dt = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)      # the command, and the kernel it waited for
        cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        if r.returncode != 0: raise SystemExit(f"run failed: {r.stdout}{r.stderr}")
        print("   ", r.stdout.splitlines()[0])
        if not breakdown: return dt, cpu, None
        got = json.loads(Path(f"{d}/breakdown.json").read_text())
        got["cells"], first = _cells(Path(d) / "archive")
        got["marks"]["first_cell_at"] = first - float(env["BENCH_T0"]) if first else None
        got["wall"], got["cpu"] = dt, cpu
        return dt, cpu, got


def show(b: dict) -> None:
    "One run's parts, in the order they happen."
    m, p = b["marks"], b["parts"]
    print(f"  wall {b['wall']:.2f} s, CPU (user + sys, command and kernel) {b['cpu']:.2f} s")
    print(f"    interpreter start                 {m['python_started']:.2f} s")
    print(f"    import strategy_engine.cli        {m['cli_imported'] - m['python_started']:.2f} s")
    if "kernel_spawn_at" in m:
        print(f"    kernel spawned at                 {m['kernel_spawn_at']:.2f} s")
    print(f"    CLI ready (run_stage) at          {m['run_stage_at']:.2f} s")
    print(f"    papermill called at               {m.get('papermill_called_at', float('nan')):.2f} s")
    if m.get("first_cell_at") is not None:
        print(f"    first cell started at             {m['first_cell_at']:.2f} s "
              f"(kernel boot + imports {m['first_cell_at'] - m.get('kernel_spawn_at', 0):.2f} s after spawn)")
    for name, sec in sorted(p.items()): print(f"    {name:<52} {sec:.3f} s")
    for label, sec in b["cells"]: print(f"      cell {label:<50} {sec:.3f} s")
    print(f"    main returned at                  {m['main_returned']:.2f} s (exit "
          f"{b['wall'] - m['main_returned']:.2f} s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="whole commands to run (default 5)")
    ap.add_argument("--breakdown", action="store_true", help="also print where each run's time went")
    ap.add_argument("--as-of", default="2024-11-22", help="the day to run (default 2024-11-22; or latest)")
    ap.add_argument("--symbols", default="nifty50_sample",
                    help="the --symbols of the run (default nifty50_sample: 50 symbols each strategy); '' "
                         "for none: each strategy's own universe, as `make run` runs it")
    ap.add_argument("--compare", type=Path, metavar="CHECKOUT",
                    help="another checkout of the repository (e.g. the commit before a change): its "
                         "command runs alternately with this one's, so both see the same load; the ratio "
                         "is what counts")
    args = ap.parse_args()
    if sample_data_dir() is None:
        raise SystemExit("the NSE sample (../shared/data/nse) is needed for this benchmark")
    checkouts = [ROOT, *([args.compare.resolve()] if args.compare else [])]
    times: dict[Path, list[tuple[float, float]]] = {c: [] for c in checkouts}
    own = os.environ.get("STRATEGY_ENGINE_BARS_CACHE") is None and len(checkouts) > 1
    caches = {c: (Path(tempfile.gettempdir()) / "daily-bench-bars" / f"{c.name}-{_digest(c)}")
              if own else None for c in checkouts}
    for _ in range(args.runs):
        for checkout in checkouts:
            breakdown = args.breakdown and checkout == ROOT
            dt, cpu, parts = once(args.as_of, "auto", breakdown, checkout, args.symbols, caches[checkout])
            times[checkout].append((dt, cpu))
            if parts: show(parts)
        if args.breakdown:
            bare, daily = kernel_boot()
            print(f"  kernel alone, spawn to ready: bare {bare:.2f} s, "
                  f"daily template (imports preloaded) {daily:.2f} s")
    for checkout, got in times.items():
        wall, cpu = [w for w, _ in got], [c for _, c in got]
        shown = f"--symbols {args.symbols}" if args.symbols else "each strategy's own universe"
        print(f"{checkout}: daily run ({shown}), NSE sample, whole command (as of {args.as_of}): "
              f"wall min {min(wall):.2f} s, median {statistics.median(wall):.2f} s; CPU median "
              f"{statistics.median(cpu):.2f} s over {len(got)} runs (target: wall < 2.5 s)")
    if args.compare:
        mine, other = (statistics.median(w for w, _ in times[c]) for c in checkouts)
        print(f"wall median ratio, this checkout / {args.compare}: {mine / other:.2f}")


if __name__ == "__main__":
    main()
