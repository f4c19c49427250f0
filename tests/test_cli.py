"""The `strategy-engine` command as a user runs it: exit codes, messages, outputs."""
import json
import os
import shutil
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from conftest import run_cli


def markdown_outputs(nb_path) -> list[str]:
    "The Markdown a notebook's cells displayed (its computed headings)."
    cells = nbformat.read(nb_path, as_version=4).cells
    outputs = [o for c in cells for o in c.get("outputs", [])]
    return [o["data"]["text/markdown"] for o in outputs if "text/markdown" in o.get("data", {})]


def test_help_on_top_level_and_commands():
    for args in ([], ["data"], ["data", "validate"], ["report", "data"], ["calendar"]):
        r = run_cli(*args, "--help")
        assert r.returncode == 0 and "usage: strategy-engine" in r.stdout, (args, r.stderr)


def test_validate_real_sample_passes_with_warnings(nse_dir):
    r = run_cli("data", "validate", nse_dir)
    assert r.returncode == 0, r.stderr
    assert "Result: PASS (0 error(s)" in r.stdout
    assert "[flat_zero_volume] ADANIENT: 2 flat bar(s)" in r.stdout


def test_validate_fails_stale_against_as_of(nse_dir):
    r = run_cli("data", "validate", nse_dir, "--as-of", "2026-11-20", "--json")
    assert r.returncode == 1
    report = json.loads(r.stdout)
    assert not report["ok"] and report["as_of"] == "2026-11-20"
    stale = [f for f in report["findings"] if f["check"] == "stale"]
    assert len(stale) == 50 and stale[0]["dates"] == ["2026-11-20"]


def test_validate_bad_input_is_a_clear_error(tmp_path, nse_dir):
    shutil.copy(nse_dir / "TCS.csv", tmp_path / "TCS.csv")
    lines = (nse_dir / "INFY.csv").read_text().splitlines()
    lines[10] = "2010-13-45" + lines[10][10:]
    (tmp_path / "INFY.csv").write_text("\n".join(lines) + "\n")
    r = run_cli("data", "validate", tmp_path)
    assert r.returncode == 1
    assert "INFY.csv: line 11: date '2010-13-45' is not a date" in r.stderr
    assert "Traceback" not in r.stderr
    r = run_cli("data", "validate", nse_dir, "--symbols", "RELIANC")
    assert r.returncode == 1 and "Did you mean 'RELIANCE'?" in r.stderr
    r = run_cli("data", "validate", tmp_path / "missing")
    assert r.returncode == 1 and "no such file or directory" in r.stderr


def test_validate_fails_closed_on_duplicates(tmp_path, nse_dir):
    """RELIABILITY 14: duplicate (symbol, date) rows are rejected before anything runs."""
    lines = (nse_dir / "TCS.csv").read_text().splitlines()
    (tmp_path / "TCS.csv").write_text("\n".join(lines[:100] + lines[99:]) + "\n")
    r = run_cli("data", "validate", tmp_path)
    assert r.returncode == 1 and "[duplicate_dates] TCS" in r.stdout


def test_misspelled_option_suggests(nse_dir):
    r = run_cli("data", "validate", nse_dir, "--as_of", "2024-11-22")
    assert r.returncode == 2 and "Did you mean '--as-of'" in r.stderr


def test_report_data_on_us_data_says_its_data_and_calendar_and_finds_no_holiday_bars(tmp_path, us_dir):
    r = run_cli("report", "data", "--data", us_dir, "--out", tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    [out] = tmp_path.glob("data_report_*.ipynb")
    nb = nbformat.read(out, as_version=4)
    outputs = [o for c in nb.cells for o in c.get("outputs", [])]
    heading = markdown_outputs(out)[0]
    assert heading.startswith(f"## Data: {us_dir}") and "6 symbols" in heading, heading
    assert "calendar: weekdays (inferred from the data: 83 bar dates are NSE holidays" in heading, heading
    text = "\n".join(str(o.get("text", "")) for o in outputs)
    assert "Result: PASS" in text and "holiday" not in text and "missing_sessions" not in text, text
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert images, "the indicator plot was not rendered"


def test_report_research_runs_on_synthetic_data_labelled(tmp_path):
    r = run_cli("report", "research", "--data", "synthetic", "--start", "2020-01-01", "--out", tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    [out] = tmp_path.glob("50_strategy_research_*.ipynb")
    nb = nbformat.read(out, as_version=4)
    text = "\n".join(str(o.get("text", "")) for c in nb.cells for o in c.get("outputs", []))
    assert "SYNTHETIC demo data" in text
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and 'start = "2020-01-01"' in injected[0].source


def test_evaluate_writes_a_json_report(tmp_path, nse_dir):
    out = tmp_path / "ev.json"
    r = run_cli("evaluate", "--strategy", "breakout", "--walk-forward", "--start", "2016-01-01", "--out", out)
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(out.read_text())
    text = json.dumps(report)
    assert (
        "deflated" in text
        and "pbo" in text.lower()
        and "out_of_sample" in text.replace("oos", "out_of_sample")
    )


US_TICKERS = ["AAPL", "MSFT", "AMZN", "JPM", "XOM", "KO"]


@pytest.fixture(scope="module")
def us_dir(tmp_path_factory) -> Path:
    """A folder of US-style per-symbol CSVs: the seeded synthetic generator's bars on every weekday (US
    sessions include most NSE holidays), named as US tickers."""
    from strategy_engine.data import synthetic_bars
    bars = synthetic_bars(n_symbols=len(US_TICKERS), start="2019-01-01", n_days=1500, seed=11)
    out = tmp_path_factory.mktemp("us")
    for sym, ticker in zip(bars.symbols, US_TICKERS):
        pd.DataFrame({"Date": bars.dates.strftime("%Y-%m-%d"), "Open": bars.open[sym].values,
                      "High": bars.high[sym].values, "Low": bars.low[sym].values,
                      "Close": bars.close[sym].values, "Adj Close": bars.close[sym].values,
                      "Volume": bars.volume[sym].values.astype("int64")},
                     ).to_csv(out / f"{ticker}.csv", index=False)
    return out


def test_evaluate_runs_on_us_data_every_symbol_a_parameter_and_the_inferred_calendar(us_dir, tmp_path):
    out = tmp_path / "ev.json"
    r = run_cli("evaluate", "--strategy", "momentum", "--data", us_dir, "--symbols", "all", "--param",
                "rsi_period=10", "--out", out)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "6 symbols" in r.stdout and "calendar: weekdays (inferred from the data: " in r.stdout, r.stdout
    data = json.loads(out.read_text())["data"]
    # no US session dropped as an NSE holiday
    assert data["calendar"] == "WEEKDAYS" and data["days"] == 1500
    assert data["parameters_overridden"] == {"rsi_period": "10"} and data["symbols"] == 6


def test_report_research_on_us_data_names_its_data_universe_and_calendar_not_nse(tmp_path, us_dir):
    r = run_cli("report", "research", "--data", us_dir, "--start", "2019-01-01",
                "--param", "momentum.rsi_period=9", "--out", tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    [out] = tmp_path.glob("50_strategy_research_*.ipynb")
    heading = markdown_outputs(out)[0]
    assert heading.startswith(f"## Data: {us_dir}\n"), heading
    assert "6 symbols (every symbol of the data" in heading and "2019-01-01 .. 2024-09-30" in heading, heading
    assert "calendar: weekdays (inferred from the data: " in heading, heading
    assert "NSE sample" not in heading and "NSE large caps" not in heading, heading
    nb = nbformat.read(out, as_version=4)
    assert not [c for c in nb.cells if c.cell_type == "markdown" and "NSE large caps" in c.source]
    [injected] = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert "params = {\"momentum\": {\"rsi_period\": 9}}" in injected.source, injected.source
    r = run_cli("report", "research", "--data", us_dir, "--param", "momentum.rsi_perod=9", "--out", tmp_path)
    assert r.returncode == 2 and "--param" in r.stderr and "Did you mean 'rsi_period'" in r.stderr, r.stderr


def test_errors_name_cli_flags_not_python_arguments(us_dir):
    # the YAML's NSE universe is not there
    r = run_cli("evaluate", "--strategy", "momentum", "--data", us_dir)
    assert r.returncode == 1 and "pass --symbols all to run on every symbol" in r.stderr, r.stderr
    r = run_cli("evaluate", "--strategy", "momentum", "--data", us_dir, "--symbols", "all", "--raw")
    assert r.returncode == 2 and "--adjustment raw needs the corporate-actions ledger" in r.stderr, r.stderr
    r = run_cli("evaluate", "--strategy", "momentum", "--data", us_dir, "--symbols", "AAPL", "--param",
                "rsi_perod=9")
    assert r.returncode == 2 and "--param" in r.stderr and "Did you mean 'rsi_period'" in r.stderr, r.stderr
    r = run_cli("evaluate", "--strategy", "momentum", "--data", us_dir, "--symbols", "AAPL", "--calendar",
                "nsee")
    assert r.returncode == 2 and "--calendar" in r.stderr and "Did you mean 'nse'" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_report_logs_json_lines_with_run_id_stage_trace_and_performance_events(tmp_path, nse_dir):
    """issue 16: job logs as JSON lines on stdout; one event=performance line per strategy for log metrics."""
    env = {**os.environ, "X_CLOUD_TRACE_CONTEXT": "4bf92f3577b34da6a3ce929d0e0e4736/1;o=1",
           "GOOGLE_CLOUD_PROJECT": "acme-trading",
           "STRATEGY_ENGINE_WAREHOUSE": f"duckdb:///{tmp_path}/wh.duckdb"}
    r = run_cli("run", "report", "--as-of", "2024-11-22", "--force", "--strategies", "momentum", "breakout",
                "--symbols", "TCS", "INFY", "RELIANCE", "--archive", tmp_path / "archive", "--no-alerts",
                "--log-format", "json", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]               # every line is one JSON object
    # the run's status line comes first
    status = next(x for x in lines if x["logger"] == "strategy_engine.job")
    assert status["status"] == "succeeded" and status["stage"] == "report" and status["severity"] == "INFO"
    assert status["run_id"].startswith("report-2024-11-22-") and status["manifest"].endswith("manifest.json")
    assert all(
        x["logging.googleapis.com/trace"] == "projects/acme-trading/traces/4bf92f3577b34da6a3ce929d0e0e4736"
        for x in lines
    )
    perf = {x["strategy"]: x for x in lines if x.get("event") == "performance"}
    assert set(perf) == {"momentum", "breakout", "book"}, lines
    assert all(
        isinstance(x["sharpe_ratio"], float) and x["max_drawdown"] <= 0 and x["run_id"] == status["run_id"]
        for x in perf.values()
    )
    alerts = [x["message"] for x in lines if x.get("event") == "alert"]    # infra/monitoring.tf's alerts_sent
    assert all("Sharpe" in a or "drawdown" in a for a in alerts), alerts
    assert len(alerts) == sum((x["sharpe_ratio"] < 1.0) + (x["max_drawdown"] < -0.05)
                              for x in perf.values()), alerts
    assert "Executing Cell" not in r.stdout + r.stderr


def test_run_train_on_us_data_every_symbol_and_the_inferred_calendar(tmp_path, us_dir):
    env = {**os.environ, "STRATEGY_ENGINE_MODELS": str(tmp_path / "models"),
           "STRATEGY_ENGINE_WAREHOUSE": f"duckdb:///{tmp_path}/wh.duckdb"}
    r = run_cli("run", "train", "--as-of", "latest", "--data", us_dir, "--symbols", "all", "--strategies",
                "regime", "--param", "regime.momentum_window=40", "--archive", tmp_path / "archive", env=env)
    assert r.returncode == 0 and r.stdout.startswith("succeeded: run train-2024-09-30-"), r.stdout + r.stderr
    assert "model regime: " in r.stdout and "Executing Cell" not in r.stdout + r.stderr
    assert "  calendar: weekdays (inferred from the data: 83 bar dates are NSE holidays" in r.stdout, r.stdout
    [nb] = (tmp_path / "archive").rglob("train_models.ipynb")
    text = "\n".join(str(o.get("text", ""))
                     for c in nbformat.read(nb, as_version=4).cells for o in c.get("outputs", []))
    assert "1500 dates × 6 symbols" in text and "calendar: weekdays" in text, text
    [manifest] = (tmp_path / "archive").rglob("train-*/attempt-1/manifest.json")
    m = json.loads(manifest.read_text())
    assert m["identity"]["calendar"] == "weekdays"
    assert m["parameters"]["params"] == {"regime": {"momentum_window": 40}}
    r = run_cli("run", "train", "--as-of", "latest", "--data", us_dir, "--strategies", "regime", "--param",
                "momentum.rsi_period=9", env=env)          # momentum is not trained: nothing to override
    assert r.returncode == 2 and "--param" in r.stderr, r.stdout + r.stderr


def test_run_validate_daily_and_report_on_us_data_infer_the_calendar_say_it_and_take_param(tmp_path, us_dir):
    env = {**os.environ, "STRATEGY_ENGINE_WAREHOUSE": f"duckdb:///{tmp_path}/wh.duckdb"}
    inferred = "calendar: weekdays (inferred from the data: 83 bar dates are NSE holidays"
    # 2024-08-15: an NSE holiday (Independence Day), a US session
    v = run_cli("run", "validate", "--as-of", "2024-08-15", "--through", "as_of", "--data", us_dir,
                "--symbols", "all", "--archive", tmp_path / "archive", "--no-alerts", env=env)
    assert v.returncode == 0, v.stdout + v.stderr
    assert "6 symbol(s) pass through 2024-08-15 (0 warning(s))" in v.stdout and "no_session" not in v.stdout
    assert "  calendar: weekdays (inferred from the data: " in v.stdout, v.stdout
    v = run_cli("run", "validate", "--as-of", "2024-09-30", "--data", us_dir, "--symbols", "all",
                "--archive", tmp_path / "archive", "--no-alerts", env=env)       # the 09:00 gate of the day
    assert v.returncode == 0 and "6 symbol(s) pass through 2024-09-27 (0 warning(s))" in v.stdout, (
        v.stdout + v.stderr
    )
    [nb] = [p for p in (tmp_path / "archive").rglob("validate_data.ipynb") if "2024/09/30" in p.as_posix()]
    cells = nbformat.read(nb, as_version=4).cells
    text = "\n".join(str(o.get("text", "")) for c in cells for o in c.get("outputs", []))
    assert "holiday" not in text and "missing_sessions" not in text and "no_session" not in text, text
    r = run_cli("run", "daily", "--as-of", "latest", "--data", us_dir, "--symbols", "all",
                "--param", "momentum.rsi_period=9", "--archive", tmp_path / "archive", "--no-alerts", env=env)
    assert r.returncode == 0 and r.stdout.startswith("succeeded: run daily-2024-09-30-"), r.stdout + r.stderr
    lines = r.stdout.splitlines()         # status, notebook, manifest, warehouse, calendar, how to open it
    assert len(lines) == 6 and lines[3] == f"  warehouse: duckdb:///{tmp_path}/wh.duckdb", lines
    assert lines[4].startswith(f"  {inferred}") and lines[5].startswith(
        "  open it: strategy-engine serve, then http://127.0.0.1:8080/runs/daily-2024-09-30-"), lines
    [manifest] = (tmp_path / "archive").rglob("daily-*/attempt-1/manifest.json")
    m = json.loads(manifest.read_text())
    assert m["identity"]["calendar"] == "weekdays" and m["identity"]["symbols"] == sorted(US_TICKERS)
    assert m["parameters"]["params"] == {"momentum": {"rsi_period": 9}}          # --param: recorded, and used
    assert m["configs"]["momentum"]["parameters"]["rsi_period"] == 9
    [nb] = (tmp_path / "archive").rglob("daily_signals.ipynb")
    text = "\n".join(str(o.get("text", ""))
                     for c in nbformat.read(nb, as_version=4).cells for o in c.get("outputs", []))
    assert "Result: PASS (0 error(s), 0 warning(s))" in text and "1500 dates × 6 symbols" in text, text
    r = run_cli("run", "report", "--as-of", "latest", "--data", us_dir, "--symbols", "all", "--calendar",
                "weekdays", "--param", "momentum.rsi_period=9", "--archive", tmp_path / "archive",
                "--no-alerts", env=env)
    assert r.returncode == 0 and r.stdout.startswith("succeeded: run report-2024-09-30-"), r.stdout + r.stderr
    assert "  calendar: weekdays (given)" in r.stdout, r.stdout
    [manifest] = (tmp_path / "archive").rglob("report-*/attempt-1/manifest.json")
    m = json.loads(manifest.read_text())
    assert m["parameters"]["params"] == {"momentum": {"rsi_period": 9}}
    assert m["identity"]["calendar"] == "weekdays"
    [nb] = (tmp_path / "archive").rglob("performance_report.ipynb")
    heading = markdown_outputs(nb)[0]                 # the report says what it ran on: the US folder, not NSE
    assert heading.startswith(f"## Data: {us_dir}\n") and "6 symbols (the symbols given)" in heading, heading
    assert "calendar: weekdays (a run parameter)" in heading and "NSE" not in heading, heading
    r = run_cli("run", "validate", "--as-of", "latest", "--data", us_dir, "--param", "momentum.rsi_period=9",
                env=env)                                          # validation runs no strategy
    assert r.returncode == 2 and "unrecognized arguments: --param" in r.stderr, r.stderr
    r = run_cli("run", "report", "--as-of", "latest", "--data", us_dir, "--param", "momentum.rsi_perod=9",
                env=env)
    assert r.returncode == 2 and "--param" in r.stderr and "Did you mean 'rsi_period'" in r.stderr, r.stderr
    r = run_cli("run", "daily", "--as-of", "latest", "--data", us_dir, "--calendar", "weekdys", env=env)
    assert r.returncode == 2 and "--calendar" in r.stderr and "Did you mean 'weekdays'" in r.stderr, r.stderr
    r = run_cli("run", "daily", "--as-of", "latest", "--data", us_dir, "--param", "momentum.rsi_perod=9",
                env=env)
    assert r.returncode == 2 and "--param" in r.stderr and "Did you mean 'rsi_period'" in r.stderr, r.stderr
