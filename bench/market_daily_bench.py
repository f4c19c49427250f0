"""Issue 13 benchmark (figures printed, not a test): the daily run over a whole generated market.

    .venv/bin/python bench/market_daily_bench.py [--symbols 2000] [--years 3] [--runs 3] [--universe SPEC]

A market store of `--symbols` generated equities x `--years` of sessions (rows written straight into
market_bars, as bench/ingest_bench.py's panel), then `strategy-engine run daily` for its last session with
the three rule strategies on every symbol (`--data duckdb:///...`: split-adjusted from the ledger), exactly
as the scheduler runs it: kernel start, load, validation, signals, risk, backtest to date, staging, archive
and the warehouse load. Target: under 15 s wall including the kernel. Peak memory: the largest process of
the run (the kernel or the command), from getrusage(RUSAGE_CHILDREN); CPU time beside the wall time, as
the machine is shared.
"""
from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ingest_bench import sessions, write_panel_store

CLI = Path(sys.executable).parent / "strategy-engine"


def cpu() -> float:
    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    return use.ru_utime + use.ru_stime


def once(root: Path, store: str, as_of: str, symbols: list[str], universe: str | None, k: int) -> float:
    chosen = ["--universe", universe] if universe else ["--symbols", *symbols]
    t, c = time.perf_counter(), cpu()
    r = subprocess.run([str(CLI), "run", "daily", "--as-of", as_of, "--data", store, *chosen, "--no-alerts",
                        "--warehouse", f"duckdb:///{root / f'runs-{k}.duckdb'}", "--archive",
                        root / f"archive-{k}"],
                       capture_output=True, text=True)
    took = time.perf_counter() - t
    if r.returncode != 0: sys.exit(f"run failed ({r.returncode}): {r.stdout[-3000:]}{r.stderr[-3000:]}")
    print(f"    {took:.2f} s wall, {cpu() - c:.2f} s CPU (the command and what it waited for): "
          f"{r.stdout.splitlines()[0]}")
    return took


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--symbols", type=int, default=2000)
    p.add_argument("--years", type=float, default=3,
                   help="history in the store (250 sessions a year; default 3)")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--universe", help="a point-in-time universe spec instead of every symbol")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        days = sessions(int(a.years * 250), end="2024-11-22")
        symbols = write_panel_store(root / "market.duckdb", days, a.symbols)
        store = f"duckdb:///{root / 'market.duckdb'}"
        print(f"daily run, {len(symbols)} symbols x 3 rule strategies, {len(days)} sessions of history "
              f"({days[0].date()} .. {days[-1].date()}):")
        times = [once(root, store, f"{days[-1]:%Y-%m-%d}", symbols, a.universe, k) for k in range(a.runs)]
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"whole command: min {min(times):.2f} s, median {statistics.median(times):.2f} s over "
              f"{len(times)} runs (target < 15 s); peak RSS of the largest process: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
