"""Benchmark: wall time of the whole daily run (kernel start, 50 NSE symbols × 3 strategies, write, archive).

Runs `strategy-engine run daily` as the scheduler does, in a fresh temporary warehouse and archive. Target
(issue #4): under 5 s on this machine. Not part of the tests.
"""
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLI = Path(sys.executable).parent / "strategy-engine"


def once(as_of: str, data: str) -> float:
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        r = subprocess.run([str(CLI), "run", "daily", "--as-of", as_of, "--symbols", "nifty50_sample",
                            "--data", data, "--warehouse", f"duckdb:///{d}/wh.duckdb", "--archive",
                            f"{d}/archive", "--no-log-output"],
                           capture_output=True, text=True)
        dt = time.perf_counter() - t0
        if r.returncode != 0: raise SystemExit(f"run failed: {r.stdout}{r.stderr}")
        print("   ", r.stdout.splitlines()[0])
        return dt


def main() -> None:
    from strategy_engine.core import sample_data_dir
    if sample_data_dir() is None:
        raise SystemExit("the NSE sample (../shared/data/nse) is needed for this benchmark")
    times = [once("2024-11-22", "auto") for _ in range(5)]
    print(f"daily run, 50 NSE symbols × 3 strategies, whole command: min {min(times):.2f} s, "
          f"median {statistics.median(times):.2f} s over {len(times)} runs (target < 5 s)")


if __name__ == "__main__":
    main()
