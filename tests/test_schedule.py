"""The trading day end to end: the stages as the scheduler and a person run them
(`strategy-engine run validate|daily|report|day`, `schedule show|check`), with real papermill kernels, a
DuckDB file, a local archive and a local stand-in for the Telegram Bot API. Few symbols and holiday dates keep
it short.
"""
import json
import os
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
import yaml

from strategy_engine import notebooks
from strategy_engine.calendar import nse_calendar
from strategy_engine.cli import build_parser
from strategy_engine.runs.contract import read_result
from strategy_engine.runs.schedule import STAGES, get_stage, run_day, stage_args
from strategy_engine.stages.daily import compute, load_data, start_daily

from conftest import CLI, ROOT, processes_with_env, run_cli

HOLIDAY = "2024-11-15"              # an NSE holiday (no bar in the sample)
DAY = "2024-11-22"                  # the last session of the NSE sample
STALE = "2024-11-26"                # a Tuesday after the sample ends: the 09:00 data must reach 2024-11-25
SYMBOLS = ["RELIANCE", "TCS", "INFY", "HDFCBANK"]
ALERT_ENV = ("TELEGRAM_BOT_TOKEN", "TELEGRAM_CHAT_ID", "TELEGRAM_API_BASE", "SMTP_HOST", "SMTP_PORT",
             "SMTP_USER", "SMTP_PASSWORD", "SMTP_FROM", "ALERT_EMAIL_TO", "SMTP_STARTTLS")


class FakeTelegram:
    """A local stand-in for api.telegram.org: records every sendMessage, answers ok."""

    def __init__(self):
        self.messages: list[dict] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                fake.messages.append({"path": self.path, **body})
                data = json.dumps({"ok": True, "result": {"message_id": len(fake.messages)}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def where(tmp_path):
    """A private warehouse, archive and runs folder (alert dedupe store), and no real channels."""
    env = {k: v for k, v in os.environ.items() if k not in ALERT_ENV}
    env["STRATEGY_ENGINE_RUNS"] = str(tmp_path / "runs")
    return {"warehouse": f"duckdb:///{tmp_path}/wh.duckdb", "archive": str(tmp_path / "archive"),
            "tmp": tmp_path, "env": env}


@pytest.fixture
def telegram(where):
    fake = FakeTelegram()
    where["env"].update(TELEGRAM_BOT_TOKEN="7654321:schedule-test-token", TELEGRAM_CHAT_ID="-100123",
                        TELEGRAM_API_BASE=fake.url)
    yield fake
    fake.close()


def cli(where, *args, store=True):
    """`strategy-engine ARGS --archive A [--warehouse W]` in the test's environment."""
    extra = ["--archive", where["archive"]] + (["--warehouse", where["warehouse"]] if store else [])
    return run_cli(*args, *extra, env=where["env"])


def manifests(where):
    found = sorted(
        Path(where["archive"]).rglob("manifest.json"), key=lambda p: json.loads(p.read_text())["ended_at"]
    )
    return [json.loads(p.read_text()) for p in found]


def rows(where, sql, *params):
    con = duckdb.connect(where["warehouse"].removeprefix("duckdb:///"), read_only=True)
    try: return con.execute(sql, list(params)).fetchdf()
    finally: con.close()


def test_a_holiday_skips_every_stage(where):
    shown = run_cli("schedule", "show", "--date", HOLIDAY)
    assert (
        shown.returncode == 0
        and "holiday (Exchange holiday): no session, every stage skipped" in shown.stdout
    )
    assert " IST " not in shown.stdout                                     # not one stage line
    day = cli(where, "run", "day", "--as-of", HOLIDAY)
    assert day.returncode == 0 and "every stage skipped" in day.stdout, day.stdout + day.stderr
    # run day executes and archives nothing
    assert manifests(where) == []
    # the Mon-Fri scheduler still fires on a weekday holiday: each stage finds no session and writes nothing
    for stage, store in (("validate", True), ("daily", True), ("report", True)):
        r = cli(where, *stage_args(stage, HOLIDAY), "--no-log-output", store=store)
        assert r.returncode == 0 and r.stdout.startswith("no_session"), (stage, r.stdout, r.stderr)
    ms = manifests(where)
    assert [m["kind"] for m in ms] == ["validate", "daily", "report"]
    assert all(m["status"] == "no_session" and not m["warehouse_rows"] for m in ms)
    # no rows; the runs are indexed
    assert rows(where, "select count(*) as n from signals")["n"][0] == 0
    assert rows(where, "select kind, status from runs order by kind")[["kind", "status"]].values.tolist() == \
        [["daily", "no_session"], ["report", "no_session"], ["validate", "no_session"]]
    check = cli(where, "schedule", "check", "--as-of", HOLIDAY, store=False)
    assert check.returncode == 0 and "not a session" in check.stdout


def test_a_stale_day_stops_after_validation_and_raises_one_alert(where, telegram, nse_dir):
    day = cli(where, "run", "day", "--as-of", STALE, "--symbols", "TCS", "INFY", "--no-log-output")
    assert day.returncode == 4, day.stdout + day.stderr
    assert f"validate {STALE}:\ndata_stale" in day.stdout and "daily and report did not run" in day.stdout
    [m] = manifests(where)
    assert m["kind"] == "validate" and m["status"] == "data_stale" and "2 of 2 symbol(s) stale" in m["error"]
    # the 09:00 cut-off: the previous session
    assert "2024-11-25" in m["error"]
    [msg] = telegram.messages
    assert m["run_id"] in msg["text"] and "stale" in msg["text"] and msg["path"].endswith("/sendMessage")
    # the scheduler's later triggers that day: refused by the gate, nothing run, nothing archived, no second
    # alert
    for stage in ("daily", "report"):
        r = cli(where, *stage_args(stage, STALE), "--symbols", "TCS", "INFY", "--no-log-output")
        assert r.returncode == 4 and r.stdout.startswith(f"data_stale: {stage} of {STALE} not "
                                                         "started"), r.stdout + r.stderr
        assert m["run_id"] in r.stdout and "--force" in r.stdout
    check = cli(where, "schedule", "check", "--as-of", STALE, store=False)
    assert check.returncode == 4 and "data_stale" in check.stdout
    assert len(manifests(where)) == 1 and len(telegram.messages) == 1
    # --force overrides the gate: the daily run starts, validates its own bars against the day and fails
    # closed
    forced = cli(where, "run", "daily", "--as-of", STALE, "--symbols", "TCS", "INFY", "--force",
                 "--no-log-output")
    assert forced.returncode == 4 and forced.stdout.startswith("data_stale: run "
                                                               "daily-"), forced.stdout + forced.stderr
    assert [x["kind"] for x in manifests(where)] == ["validate", "daily"] and len(telegram.messages) == 2


def test_the_report_of_a_day_matches_the_warehouse_rows_of_that_days_run(where, nse_dir):
    day = cli(where, "run", "day", "--as-of", DAY, "--symbols", *SYMBOLS, "--period", "1d", "--no-log-output")
    assert day.returncode == 0, day.stdout + day.stderr
    ms = manifests(where)
    assert [(m["kind"], m["status"]) for m in ms] == [("validate", "succeeded"), ("daily", "succeeded"),
                                                      ("report", "succeeded")]
    report_nb = Path(where["archive"], "2024/11/22", ms[2]["run_id"], "attempt-1", "performance_report.ipynb")
    result = read_result(report_nb)
    assert (
        result["reconciled"] is True
        and result["period"] == "1d"
        and result["data_sha256"] == ms[1]["data_sha256"]
    )
    # staged, archived, then loaded
    assert ms[2]["warehouse_rows"] == {"signals": 0, "performance": 4}
    perf = rows(where, "select * from performance where date = ?", DAY)
    daily = perf[(perf["period"] == "to_date")].set_index("strategy")
    rep = perf[(perf["period"] == "1d")].set_index("strategy")
    assert set(daily["run_id"]) == {ms[1]["run_id"]} and set(rep["run_id"]) == {ms[2]["run_id"]}
    assert sorted(rep.index) == sorted([*daily.index, "book"])
    signals = rows(where, "select strategy, count(*) as n from signals where date = ? group by strategy", DAY)
    counts = dict(zip(signals["strategy"], signals["n"], strict=True))
    names = list(daily.index)
    # the day's report row of each strategy is the 15:30 run's row of that day
    for n in names:
        for c in ("equity", "exposure", "turnover", "n_signals"):
            assert rep.at[n, c] == daily.at[n, c], (n, c)
        # = the signal rows the 15:30 run wrote
        assert rep.at[n, "n_signals"] == counts.get(n, 0)
    assert rep.at["book", "n_signals"] == sum(counts.values())
    assert abs(rep.at["book", "total_return"] - rep.loc[names, "total_return"].mean()) < 1e-15
    assert abs(rep.at["book", "exposure"] - rep.loc[names, "exposure"].mean()) < 1e-15
    # independently: the strategies' backtests recomputed here, outside papermill
    run = start_daily(DAY, symbols=SYMBOLS)
    compute(load_data(run))
    for n in names:
        assert rep.at[n, "total_return"] == run.results[n].returns.loc[DAY]
        assert rep.at[n, "equity"] == run.results[n].equity.loc[DAY]
    # the scheduled report covers a month: its P&L compounds the daily returns of the sessions after
    # 2024-10-22
    month = cli(where, *stage_args("report", DAY), "--symbols", *SYMBOLS, "--no-log-output")
    assert month.returncode == 0, month.stdout + month.stderr
    m1 = rows(where, "select * from performance where date = ? and period = '1m'", DAY).set_index("strategy")
    sessions = nse_calendar().sessions("2024-10-23", DAY)
    assert sessions[0] == pd.Timestamp("2024-10-23") and (m1["start"] == sessions[0]).all()
    rets = pd.DataFrame({n: run.results[n].returns.reindex(sessions) for n in names})
    for n, x in [*((n, rets[n].to_numpy()) for n in names), ("book", rets.mean(axis=1).to_numpy())]:
        assert abs(m1.at[n, "total_return"] - (np.prod(1 + x) - 1)) < 1e-14, n
        assert (
            abs(m1.at[n, "sharpe_ratio"] - np.mean(x) / np.std(x, ddof=1) * np.sqrt(252)) < 1e-9
            or np.std(x) == 0
        ), n
    runs = rows(where, "select kind, status from runs where kind = 'report'")
    # the 1d and the 1m report: two runs
    assert runs["status"].tolist() == ["succeeded", "succeeded"]


def test_a_retried_stage_with_the_same_scheduled_time_does_not_run_twice(where, nse_dir):
    args = [str(CLI), "run", "validate", "--as-of", DAY, "--symbols", "TCS", "INFY", "--scheduled", "09:00",
            "--archive", where["archive"], "--no-log-output"]
    procs = [subprocess.Popen(args, cwd=ROOT, env=where["env"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for _ in range(2)]                                            # a trigger and its retry, racing
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert sum("replayed" in out for out, _ in outs) == 1
    assert len(manifests(where)) == 1
    late = cli(where, "run", "validate", "--as-of", DAY, "--symbols", "TCS", "INFY", "--scheduled", "09:00",
               store=False)
    assert late.returncode == 0 and "replayed" in late.stdout and len(manifests(where)) == 1
    iso = cli(where, "run", "validate", "--as-of", DAY, "--symbols", "TCS", "INFY", "--scheduled",
              "2024-11-22T03:30:00Z", store=False)
    assert "replayed" in iso.stdout and len(manifests(where)) == 1        # the same instant, written in UTC
    other = cli(where, "run", "validate", "--as-of", DAY, "--symbols", "TCS", "INFY", "--scheduled", "09:05",
                store=False)
    assert other.returncode == 0 and "replayed" not in other.stdout and len(manifests(where)) == 2
    # every command booted its kernel first; those of the replayed runs were never used and died with their
    # command
    assert processes_with_env("STRATEGY_ENGINE_RUNS", where["env"]["STRATEGY_ENGINE_RUNS"]) == []


def test_scheduler_entries_are_the_plan():
    spec = yaml.safe_load((ROOT / "deploy" / "scheduler-stages.yaml").read_text())
    job = yaml.safe_load((ROOT / "deploy" / "cloudrun-job.yaml").read_text())
    entries = spec["jobs"]
    assert [e["stage"] for e in entries] == [s.name for s in STAGES]
    assert len({e["name"] for e in entries}) == len(entries)
    for e in entries:
        stage = get_stage(e["stage"])
        hh, mm = stage.at.split(":")
        assert e["schedule"] == f"{int(mm)} {int(hh)} * * 1-5" and e["timeZone"] == "Asia/Kolkata", e["name"]
        target = e["httpTarget"]
        assert target["httpMethod"] == "POST" and target["uri"].endswith(
            f"/jobs/{job['metadata']['name']}:run"
        )
        assert "oauthToken" in target and e["retryConfig"]["retryCount"] >= 1
        overrides = target["body"]["overrides"]
        [container] = overrides["containerOverrides"]
        args = [str(a) for a in container["args"]]
        assert args[: len(stage_args(stage.name))] == stage_args(stage.name, "today"), e["name"]
        parsed = build_parser().parse_args(args)                            # a valid command line
        if stage.name == "ingest":                                          # its record: market_ingest_log
            assert parsed.warehouse.startswith("bigquery://") and parsed.missing and parsed.as_of is not None
        else: assert parsed.archive.startswith("gs://")
        # the scheduled time is the idempotency key
        if stage.kind is not None:
            assert parsed.scheduled == stage.at and parsed.as_of == "today"
        assert overrides.get("taskCount", job["spec"]["template"]["spec"]["taskCount"]) == (
            job["spec"]["template"]["spec"]["taskCount"] if stage.name == "daily" else 1)
        json.dumps(target["body"])                                          # the body is sent as JSON


def test_schedule_show_prints_ist_and_utc():
    r = run_cli("schedule", "show", "--date", DAY)
    assert r.returncode == 0, r.stderr
    lines = [line.split() for line in r.stdout.splitlines() if " IST " in line]
    assert [(w[0], w[2], w[4]) for w in lines] == [("09:00", "03:30",
                                                    "validate"), ("09:15", "03:45", "monitor"),
                                                   ("19:00", "13:30", "ingest"), ("19:30", "14:00", "daily"),
                                                   ("20:00", "14:30", "report")]


def test_a_day_that_stops_early_leaves_no_kernel_behind(where, nse_dir, monkeypatch):
    """run_day boots each next stage's kernel ahead; when validation stops the day, that kernel is killed."""
    # inherited by every kernel started here
    monkeypatch.setenv("RUN_DAY_KERNEL_TEST", str(where["tmp"]))
    day = run_day(STALE, symbols=["TCS", "INFY"], archive=where["archive"], warehouse=where["warehouse"],
                  alerts=False)
    assert [o.stage for o in day.stages] == ["validate"] and day.stages[0].status == "data_stale", day
    assert not notebooks._early and processes_with_env("RUN_DAY_KERNEL_TEST", str(where["tmp"])) == []
