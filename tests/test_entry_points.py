"""The entry points: `python -m strategy_engine` is the CLI; `-m strategy_engine.main --mode M` the job."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION = {"GOOGLE_CLOUD_PROJECT": "acme-trading", "BIGQUERY_DATASET": "strategy_engine",
              "ENVIRONMENT": "staging", "LOG_LEVEL": "INFO"}


def module(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in PRODUCTION and k != "CLOUD_RUN_JOB"}
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout, env={**base, **(env or {})})


def test_python_m_strategy_engine_is_the_cli():
    r = module("strategy_engine", "--help")
    assert r.returncode == 0 and "usage: strategy-engine" in r.stdout, r.stderr
    r = module("strategy_engine", "calender")
    assert r.returncode == 2 and "Did you mean 'calendar'" in r.stderr


def test_test_mode_runs_the_daily_job_in_a_throwaway_folder():
    r = module("strategy_engine.main", "--mode", "test")
    assert r.returncode == 0, r.stdout + r.stderr
    first, status = r.stdout.splitlines()[:2]
    temp = re.search(r"warehouse duckdb:///(\S+)/warehouse.duckdb,", first).group(1)
    assert first.startswith("mode test: data synthetic") and status.startswith("succeeded: run daily-"), (
        r.stdout
    )
    assert f"notebook: {temp}/archive/" in r.stdout and "Executing Cell" not in r.stdout + r.stderr
    assert not Path(temp).exists()                                      # thrown away when the job ends


def test_production_mode_refuses_without_its_environment_and_names_it():
    r = module("strategy_engine.main", "--mode", "production", env={"GOOGLE_CLOUD_PROJECT": "acme-trading"})
    assert r.returncode == 2 and "BIGQUERY_DATASET, ENVIRONMENT, LOG_LEVEL" in r.stderr, r.stdout + r.stderr
    r = module("strategy_engine.main", "--mode", "production", env={**PRODUCTION, "ENVIRONMENT": "stagign"})
    assert r.returncode == 2 and "Did you mean 'staging'" in r.stderr
    r = module("strategy_engine.main", "--mode", "production", "--print-settings", env=PRODUCTION)
    assert r.returncode == 0, r.stdout + r.stderr
    # production logs JSON lines (Cloud Logging)
    line = json.loads(r.stdout.splitlines()[0])
    assert line["warehouse"] == "bigquery://acme-trading/strategy_engine" and line["environment"] == "staging"
    assert line["archive"] == "gs://acme-trading-strategy-runs/runs" and line["severity"] == "INFO"
