"""A strategy joins every list by registering: one made by `strategy-engine strategies new` in a temporary
notebook and YAML (exported outside the package, found through $STRATEGY_ENGINE_STRATEGIES) shows in the CLI
listing, the daily run, `evaluate`, and the look-ahead and warm-up property tests, with no repository file
edited."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT, run_cli

NAME = "toy_trend"
DAY = "2024-11-22"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    """A copy of the shipped configuration, plus `NAME` from `strategies new`, exported to a temporary lib."""
    tmp = tmp_path_factory.mktemp("registry")
    shutil.copytree(ROOT / "config", tmp / "config")
    env = {**os.environ, "STRATEGY_ENGINE_CONFIG": str(tmp / "config"),
           "STRATEGY_ENGINE_STRATEGIES": str(tmp / "lib" / "strategies")}
    before = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, cwd=ROOT).stdout
    out = run_cli("strategies", "new", NAME, "--notebooks", tmp / "nbs", "--default", env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    notebook = tmp / "nbs" / f"18_{NAME}.ipynb"
    assert notebook.is_file() and (tmp / "config" / "strategies" / f"{NAME}.yaml").is_file()
    from nbdev.export import nb_export
    nb_export(str(notebook), lib_path=str(tmp / "lib"))
    assert (tmp / "lib" / "strategies" / f"{NAME}.py").is_file()
    yield {"tmp": tmp, "env": env, "notebook": notebook, "git_status": before}
    after = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, cwd=ROOT).stdout
    assert NAME not in after                      # nothing of the new strategy was written into the checkout


def test_the_template_notebook_passes_its_own_tests(sandbox):
    code = ("import sys; from pathlib import Path; from nbdev.test import test_nb; "
            "sys.exit(0 if test_nb(Path(sys.argv[1]))[0] else 1)")
    out = subprocess.run([sys.executable, "-c", code, str(sandbox["notebook"])], capture_output=True,
                         text=True, timeout=120, cwd=sandbox["notebook"].parent, env=sandbox["env"])
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_cli_lists_and_shows_it(sandbox):
    out = run_cli("strategies", "list", "--json", env=sandbox["env"])
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in map(json.loads, out.stdout.splitlines())}
    assert {"momentum", "mean_reversion", "breakout", "lstm", "regime", NAME} <= set(rows)
    assert rows[NAME]["default"] and rows[NAME]["grid"] == 8 and not rows[NAME]["needs_training"]
    shown = run_cli("strategies", "show", NAME, env=sandbox["env"])
    assert shown.returncode == 0 and "2 <= window <= 250" in shown.stdout
    assert "grid: window=[10, 20, 40, 60]" in shown.stdout


def test_the_daily_run_trades_it_by_default(sandbox, nse_dir):
    wh = f"duckdb:///{sandbox['tmp']}/wh.duckdb"
    out = run_cli("run", "daily", "--as-of", DAY, "--symbols", "RELIANCE", "TCS", "INFY", "--warehouse", wh,
                  "--archive", sandbox["tmp"] / "archive", "--no-alerts", env=sandbox["env"])
    assert out.returncode == 0 and out.stdout.startswith("succeeded"), out.stdout + out.stderr
    from strategy_engine.warehouse import open_warehouse
    with open_warehouse(wh) as w:
        perf = w.read_performance()
        signals = w.read_signals(start=DAY, end=DAY)
    assert {NAME, "momentum", "mean_reversion", "breakout"} == set(perf["strategy"])
    assert NAME in set(signals["strategy"])


def test_evaluate_sweeps_its_declared_grid(sandbox, nse_dir):
    report = sandbox["tmp"] / "ev.json"
    out = run_cli("evaluate", "--strategy", NAME, "--start", "2021-01-01", "--out", report,
                  env=sandbox["env"])
    assert out.returncode == 0, out.stdout + out.stderr
    got = json.loads(report.read_text())
    assert got["grid"] == {"window": [10, 20, 40, 60], "scale": [0.02, 0.05]} and got["n_combinations"] == 8


def test_the_lookahead_and_warm_up_property_tests_cover_it(sandbox, nse_dir):
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_reliability.py",
               "-k", f"case_17_and_18 and {NAME}"]
    out = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT, env=sandbox["env"])
    assert out.returncode == 0 and "1 passed" in out.stdout, out.stdout[-2000:] + out.stderr[-2000:]
