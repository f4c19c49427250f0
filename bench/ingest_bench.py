"""Issue 13 benchmarks (figures printed, not a test): whole-market bhavcopies into DuckDB, a panel out of it.

    .venv/bin/python bench/ingest_bench.py [--sessions 2500] [--symbols 2000] [--panel-years 15] [--workers 2]

1. ingest: `--sessions` generated whole-market bhavcopy files (`--symbols` equities + 50 non-equity rows each,
   legacy and UDiFF by date) through `ingest_files` into a fresh DuckDB file; target < 60 s for 2,500 x 2,000.
2. panel: a `--symbols` x `--panel-years` store (rows written straight into market_bars, no files), then the
   whole panel read back with `read_market_bars` (split-adjusted from the ledger); target < 2 s.
Peak memory is the process's max RSS (children included when parsing in worker processes).
"""
from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from strategy_engine.calendar import nse_calendar
from strategy_engine.market.bhavcopy import synthetic_market, write_bhavcopy
from strategy_engine.market.store import _write_together, ingest_files
from strategy_engine.warehouse import DuckDBWarehouse


def peak_mib() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, kids


def cpu_s() -> float:
    "CPU seconds of this process and its finished children (the machine is shared: wall time alone misleads)."
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def sessions(n: int, end: str = "2026-06-30") -> pd.DatetimeIndex:
    cal = nse_calendar()
    all_ = cal.sessions(cal.coverage[0], end)
    if n > len(all_): sys.exit(f"at most {len(all_)} sessions in the calendar's coverage")
    return all_[-n:]


def bench_ingest(root: Path, n_sessions: int, n_symbols: int, workers: int) -> None:
    days = sessions(n_sessions)
    t = time.perf_counter()
    files = [write_bhavcopy(rows, root / "in") for rows in synthetic_market(days, n_symbols=n_symbols)]
    gen = time.perf_counter() - t
    size = sum(f.stat().st_size for f in files) / 2**20
    print(f"generated {len(files)} files ({days[0].date()} .. {days[-1].date()}, {n_symbols} symbols + 50 "
          f"other series each, {size:.0f} MiB) in {gen:.1f} s")
    t, c = time.perf_counter(), cpu_s()
    report = ingest_files([root / "in"], DuckDBWarehouse(root / "w.duckdb"), workers=workers)
    took, used = time.perf_counter() - t, cpu_s() - c
    rows = sum(r.rows for r in report.results)
    assert report.ok and report.count("ingested") == len(files), report.text()
    rate = took / len(files)
    print(f"ingest: {len(files)} files, {rows:,} rows in {took:.1f} s ({1000 * rate:.1f} ms per file, "
          f"workers={workers}); 2,500 files at this rate: {2500 * rate:.0f} s (target 60 s); CPU {used:.1f} "
          "s (this process and its workers)")
    t = time.perf_counter()
    again = ingest_files([root / "in"], DuckDBWarehouse(root / "w.duckdb"), workers=workers)
    assert again.count("unchanged") == len(files)
    print(f"ingest the same files again (all unchanged, nothing written): {time.perf_counter() - t:.1f} s")
    own, kids = peak_mib()
    print(f"peak RSS so far: {own:.0f} MiB (this process), {kids:.0f} MiB (largest worker)")


def write_panel_store(path: Path, days: pd.DatetimeIndex, n_symbols: int) -> list[str]:
    "A market store of generated sessions written straight into market_bars (no files); returns its symbols."
    wh = DuckDBWarehouse(path)
    batch, names = [], set()
    for k, rows in enumerate(synthetic_market(days, n_symbols=n_symbols, other_series=0)):
        batch.append(rows)
        names.update(rows["symbol"])
        if len(batch) == 250 or k == len(days) - 1:
            frame = pd.concat(batch, ignore_index=True).assign(basis="raw", source="bench")
            _write_together(wh, {"market_bars": frame}, None)
            batch = []
    return sorted(names)


def bench_panel(root: Path, n_symbols: int, years: int) -> None:
    days = sessions(int(years * 250))
    t = time.perf_counter()
    write_panel_store(root / "panel.duckdb", days, n_symbols)
    print(f"panel store: {len(days)} sessions x {n_symbols} symbols written in {time.perf_counter() - t:.1f} "
          "s")
    uri = f"duckdb:///{root / 'panel.duckdb'}"
    code = ("import resource, sys, time; from strategy_engine.market.store import read_market_bars\nfor "
            "attempt in (1, 2):\n    t, c = time.perf_counter(), time.process_time(); bars = "
            "read_market_bars(sys.argv[1])\n    took, cpu = time.perf_counter() - t, time.process_time() - "
            "c\n    print(f'load panel (attempt {attempt}): {bars.close.shape[0]} dates x "
            "{bars.close.shape[1]} symbols, '\n          f'{int(bars.close.notna().sum().sum()):,} bars, "
            "split-adjusted, in {took:.2f} s wall, '\n          f'{cpu:.2f} s CPU (target 2 "
            "s)')\nprint(f'peak RSS of the loading process: "
            "{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB')")
    # a fresh process: its own time and memory
    subprocess.run([sys.executable, "-c", code, uri], check=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sessions", type=int, default=500,
                   help="files to ingest (default 500; the target is 2500)")
    p.add_argument("--symbols", type=int, default=2000)
    p.add_argument("--panel-years", type=float, default=15)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--skip-ingest", action="store_true")
    p.add_argument("--skip-panel", action="store_true")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as d:
        if not a.skip_ingest: bench_ingest(Path(d), a.sessions, a.symbols, a.workers)
        if not a.skip_panel: bench_panel(Path(d), a.symbols, a.panel_years)


if __name__ == "__main__":
    main()
