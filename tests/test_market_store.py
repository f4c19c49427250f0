"""Issue 13: bhavcopies into the warehouse, out again as the Bars the CSV loader gives; corporate actions."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fixtures.bhavcopy_fixtures import (
    build_sample_bhavcopies,
    market_rows,
    nse_dir,
    sample_bars,
    write_bhavcopy,
)

from strategy_engine.calendar import nse_calendar
from strategy_engine.data import DATA_SOURCES, FIELDS, check_data_source, open_bars
from strategy_engine.market import store
from strategy_engine.market.bhavcopy import bhavcopy_text, read_bhavcopy
from strategy_engine.market.store import (
    import_bars_dir,
    ingest_actions,
    ingest_files,
    ingest_log,
    read_market_bars,
)
from strategy_engine.validation import validate
from strategy_engine.warehouse import DuckDBWarehouse

SYMBOLS = ["RELIANCE", "TCS", "INFY", "HDFCBANK", "MM", "BAJAJ-AUTO", "NESTLEIND", "TATASTEEL"]


def uri_of(path: Path) -> str:
    return f"duckdb:///{path}"


def assert_same_bars(got, want):
    assert got.symbols == want.symbols and got.dates.equals(want.dates)
    for f in FIELDS:
        pd.testing.assert_frame_equal(got[f], want[f], check_exact=True, check_names=False)


@pytest.mark.parametrize("zipped", [False, True])
def test_both_formats_give_the_csv_loaders_bars_exactly(tmp_path, zipped):
    files, want = build_sample_bhavcopies(tmp_path / "in", SYMBOLS, "2024-06-17", "2024-07-19", zipped=zipped)
    names = {f.name for f in files}
    assert any(n.startswith("cm") for n in names) and any(n.startswith("BhavCopy_NSE_CM") for n in names)
    report = ingest_files([tmp_path / "in"], uri_of(tmp_path / "w.duckdb"))
    assert report.ok and report.count("ingested") == len(want.dates)
    # through the data-source registry
    got = open_bars(uri_of(tmp_path / "w.duckdb"), symbols=sorted(SYMBOLS))
    assert got.adjustment == "splits" and not got.issues
    assert_same_bars(got, want.select(sorted(SYMBOLS)))
    raw = open_bars(uri_of(tmp_path / "w.duckdb") + "?adjust=raw", symbols=["TCS", "INFY"],
                    start="2024-07-01")
    assert_same_bars(raw, want.select(["TCS", "INFY"], "2024-07-01"))


def test_same_file_twice_changes_nothing_and_a_correction_replaces_its_session(tmp_path):
    files, want = build_sample_bhavcopies(tmp_path / "in", SYMBOLS, "2024-07-01", "2024-07-12")
    uri = uri_of(tmp_path / "w.duckdb")
    ingest_files([tmp_path / "in"], uri)
    wh = DuckDBWarehouse(tmp_path / "w.duckdb")
    before = wh.read_table("market_bars")
    again = ingest_files(files, uri)
    assert again.count("unchanged") == len(files) and again.ok
    pd.testing.assert_frame_equal(wh.read_table("market_bars"), before)
    assert len(ingest_log(uri)) == len(files)
    # a corrected file for 2024-07-05: one close changed, one symbol (NESTLEIND) removed
    day = pd.Timestamp("2024-07-05")
    rows = next(r for r in map(lambda f: read_bhavcopy(f).rows, files) if r["date"].iloc[0] == day)
    fixed = rows[rows["symbol"] != "NESTLEIND"].copy()
    fixed.loc[fixed["symbol"] == "TCS", ["close", "high"]] = 9999.0
    corrected = write_bhavcopy(fixed, tmp_path / "fix")
    rep = ingest_files([corrected], uri)
    assert [r.status for r in rep.results] == ["replaced"]
    log = ingest_log(uri)
    last = log[log["replaced"]].iloc[-1]
    assert bool(last["replaced"]) and last["previous_sha256"] == read_bhavcopy(
        next(f for f in files if "05JUL2024" in f.name)).sha256
    got = read_market_bars(uri)
    assert got.close.loc[day, "TCS"] == 9999.0 and np.isnan(got.close.loc[day, "NESTLEIND"])
    assert got.close.drop(index=day).equals(want.close.drop(index=day)[got.symbols])
    assert ingest_files([corrected], uri).count("unchanged") == 1      # the correction again: nothing


def test_a_session_is_all_or_nothing(tmp_path):
    files, _ = build_sample_bhavcopies(tmp_path / "in", SYMBOLS, "2024-07-01", "2024-07-03")
    wh = DuckDBWarehouse(tmp_path / "w.duckdb")
    ingest_files(files[:1], wh)
    snap = {t: wh.read_table(t) for t in ("market_bars", "market_ingest_log")}

    class Boom(Exception):
        pass

    step = 0
    while True:
        step += 1
        calls = []

        def fault(what, calls=calls, step=step):
            calls.append(what)
            if len(calls) == step: raise Boom(what)
        wh._step = fault
        try:
            ingest_files(files[1:], wh)
            break                                  # no fault at this step: the write went through
        except Boom:
            pass
        finally:
            wh._step = lambda what: None
        for t, frame in snap.items():              # a fault at any step: nothing of the sessions was written
            pd.testing.assert_frame_equal(wh.read_table(t), frame)
    assert step >= 4                               # delete + insert of bars and of the log, at least
    assert len(wh.read_table("market_ingest_log")) == 3


def test_a_malformed_file_is_refused_with_line_and_column_and_nothing_of_it_written(tmp_path):
    files, _ = build_sample_bhavcopies(tmp_path / "in", SYMBOLS, "2024-07-01", "2024-07-02")
    bad = files[1]
    lines = bad.read_text().splitlines()
    cells = lines[3].split(",")
    cells[2] = "12,5"                     # a decimal comma: one field too many
    lines[3] = ",".join(cells)
    bad.write_text("\n".join(lines) + "\n")
    uri = uri_of(tmp_path / "w.duckdb")
    rep = ingest_files([tmp_path / "in"], uri)
    assert not rep.ok
    refused = [r for r in rep.results if r.status == "refused"]
    assert len(refused) == 1 and bad.name in refused[0].message and "line 4" in refused[0].message
    held = read_market_bars(uri, adjustment="raw")
    assert list(held.dates) == [pd.Timestamp("2024-07-01")]


def test_a_renamed_symbol_continues_one_series(tmp_path):
    days = nse_calendar().sessions("2024-08-01", "2024-08-06")
    rows = market_rows(days, {"ZOMATO": [200, 202, 204, 206]}, isins={"ZOMATO": "INE758T01015"},
                       names={"ZOMATO": ["ZOMATO", "ZOMATO", "ETERNAL", "ETERNAL"]})
    for r in rows: write_bhavcopy(r, tmp_path / "in")
    bars = read_market_bars(ingest_and_uri(tmp_path))
    assert bars.symbols == ["ETERNAL"] and list(bars.close["ETERNAL"]) == [200, 202, 204, 206]
    assert read_market_bars(uri_of(tmp_path / "w.duckdb"), ["ETERNAL"]).close.shape == (4, 1)


def ingest_and_uri(tmp_path) -> str:
    uri = uri_of(tmp_path / "w.duckdb")
    assert ingest_files([tmp_path / "in"], uri).ok
    return uri


SPLIT_ACTIONS = (
    b"SYMBOL,COMPANY NAME,SERIES,PURPOSE,FACE VALUE,EX-DATE,RECORD DATE\n"
    b"AAA,A Ltd,EQ,FACE VALUE SPLIT (SUB-DIVISION) - FROM RS 10/- PER SHARE TO RE 1/- PER SHARE,10,"
    b"06-Aug-2024,06-Aug-2024\n"
    b"CCC,C Ltd,EQ,SCHEME OF ARRANGEMENT,10,06-Aug-2024,06-Aug-2024\n"
)


def split_market(tmp_path):
    "AAA splits 10:1 on 2024-08-06 (raw prints; the exchange's PREVCLOSE adjusted that day); BBB is still."
    days = nse_calendar().sessions("2024-08-01", "2024-08-08")
    rows = market_rows(days, {"AAA": [1000, 1010, 1020, 102, 103, 104], "BBB": [50, 51, 52, 53, 54, 55]})
    rows[3].loc[rows[3]["symbol"] == "AAA", "prev_close"] = 102.0
    for r in rows: write_bhavcopy(r, tmp_path / "in")
    return ingest_and_uri(tmp_path)


def test_a_split_without_its_action_fails_closed_for_that_symbol_only(tmp_path):
    uri = split_market(tmp_path)
    bars = read_market_bars(uri)
    report = validate(bars)
    jumps = [f for f in report.errors if f.check == "unexplained_jump"]
    assert [f.symbol for f in jumps] == ["AAA"] and jumps[0].dates == (pd.Timestamp("2024-08-06"),)
    assert not report.ok and {f.symbol for f in report.errors} == {"AAA"}
    from strategy_engine.stages.daily import compute, load_data, result, start_daily
    from strategy_engine.strategies.base import default_strategies
    run = compute(load_data(start_daily("2024-08-08", symbols=["AAA", "BBB"], data=uri)))    # the daily stage
    assert run.status == "running" and run.quarantined == ["AAA"] and run.bars.symbols == ["BBB"]
    assert set(run.results) == set(run.strategies) == set(default_strategies())
    assert result(run)["quarantined"] == ["AAA"]
    from strategy_engine.stages.validate import validate_day
    # the 09:00 stage agrees
    day = validate_day("2024-08-08", symbols=["AAA", "BBB"], data=uri, through="as_of")
    assert (
        day.status == "succeeded" and "1 quarantined" in day.reason and "[unexplained_jump] AAA" in day.reason
    )


def test_a_split_with_its_action_gives_a_continuous_series_and_a_late_action_changes_only_its_symbol(
    tmp_path,
):
    """RELIABILITY 15: a 10:1 split with its action is continuous; a late action re-adjusts its symbol."""
    uri = split_market(tmp_path)
    before = read_market_bars(uri)
    (tmp_path / "CA.csv").write_bytes(SPLIT_ACTIONS)
    ledger, unparsed = ingest_actions(tmp_path / "CA.csv", uri)
    assert list(ledger["kind"]) == ["split"] and list(unparsed["purpose"]) == ["SCHEME OF ARRANGEMENT"]
    after = read_market_bars(uri)
    assert not [f for f in validate(after).errors if f.check == "unexplained_jump"]
    r = after.close["AAA"].pct_change().dropna()
    assert r.min() > -0.05 and np.isclose(after.close["AAA"].iloc[0], 100.0)
    from strategy_engine.stages.daily import load_data, start_daily
    # what the run sees
    run = load_data(start_daily("2024-08-08", symbols=["AAA", "BBB"], data=uri))
    assert not run.quarantined and run.bars.close["AAA"].pct_change().min() > -0.05
    assert after.volume["AAA"].iloc[0] == 10000.0
    assert after.close["BBB"].equals(before.close["BBB"])                 # the late action touched only AAA
    # the ledger applied twice: no change
    ingest_actions(tmp_path / "CA.csv", uri)
    assert_same_bars(read_market_bars(uri), after)
    wh = DuckDBWarehouse(tmp_path / "w.duckdb")
    assert len(wh.read_table("market_actions")) == 1 and len(wh.read_table("market_actions_unparsed")) == 1


def test_import_dir_gives_the_csv_loaders_bars_and_ignores_splits_the_vendor_already_applied(tmp_path):
    nse = nse_dir()
    uri = uri_of(tmp_path / "w.duckdb")
    rep = import_bars_dir(nse, uri, symbols=["RELIANCE", "TCS", "HCLTECH"])
    assert {r.status for r in rep.results} <= {"ingested", "not_a_session"}
    assert {r.session for r in rep.results if r.status == "not_a_session"} >= {pd.Timestamp("2014-04-24")}
    want = sample_bars(["HCLTECH", "RELIANCE", "TCS"], None, None)
    (tmp_path / "CA.csv").write_bytes(b"SYMBOL,SERIES,PURPOSE,EX-DATE\nRELIANCE,EQ,BONUS 1:1,07-Sep-2017\n"
                                      b"RELIANCE,EQ,BONUS 1:1,28-Oct-2024\nTCS,EQ,BONUS 1:1,31-May-2018\n")
    ingest_actions(tmp_path / "CA.csv", uri)
    got = open_bars(uri)
    assert_same_bars(got, want)
    assert not [f for f in got.issues if f.check == "unexplained_jump"]
    assert import_bars_dir(nse, uri, symbols=["RELIANCE", "TCS", "HCLTECH"]).count("ingested") == 0


def test_every_registered_data_source_returns_valid_bars(tmp_path, monkeypatch):
    build_sample_bhavcopies(tmp_path / "in", SYMBOLS, "2024-07-01", "2024-07-31")
    db = tmp_path / "w.duckdb"
    ingest_files([tmp_path / "in"], uri_of(db))
    from bigquery_emulator import BigQueryOnDuckDB
    bq = BigQueryOnDuckDB()
    ingest_files([tmp_path / "in"], bq)                   # the BigQuery SQL, run on a local DuckDB
    real = store._warehouse
    monkeypatch.setattr(
        store, "_warehouse", lambda w: (bq, False) if str(w).startswith("bigquery://") else real(w)
    )
    uris = {"duckdb": uri_of(db), "bigquery": "bigquery://local-project/strategy_engine"}
    assert set(DATA_SOURCES) == set(uris), "a new data source needs a fixture here"
    panels = {s: check_data_source(u, ["TCS", "INFY"], "2024-07-05", "2024-07-20") for s, u in uris.items()}
    assert_same_bars(panels["bigquery"], panels["duckdb"])


def test_data_does_not_import_the_warehouse():
    code = "import sys, strategy_engine.data; sys.exit('strategy_engine.warehouse' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
    text = Path(__file__).parents[1].joinpath("strategy_engine/data.py").read_text()
    assert "import open_warehouse" not in text and "from .warehouse" not in text


def test_quarantined_rows_are_reported_not_stored(tmp_path):
    days = nse_calendar().sessions("2024-08-01", "2024-08-01")
    rows = market_rows(days, {"AAA": [100.0], "BBB": [50.0]})[0]
    rows.loc[rows["symbol"] == "BBB", "high"] = np.inf
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "BhavCopy_NSE_CM_0_0_0_20240801_F_0000.csv").write_bytes(bhavcopy_text(rows, "udiff"))
    rep = ingest_files([tmp_path / "in"], uri_of(tmp_path / "w.duckdb"))
    assert rep.ok and rep.results[0].quarantined == 1 and list(rep.quarantined["symbol"]) == ["BBB"]
    assert read_market_bars(uri_of(tmp_path / "w.duckdb")).symbols == ["AAA"]


def test_a_holiday_file_is_refused(tmp_path):
    rows = market_rows([pd.Timestamp("2026-01-15")], {"AAA": [100.0]})[0]
    write_bhavcopy(rows, tmp_path / "in")
    rep = ingest_files([tmp_path / "in"], uri_of(tmp_path / "w.duckdb"))
    assert not rep.ok and rep.results[0].status == "not_a_session" and "holiday" in rep.results[0].message


def test_imported_history_continues_under_the_exchange_isin_for_a_day_the_sample_lacks(tmp_path):
    uri = uri_of(tmp_path / "w.duckdb")
    import_bars_dir(nse_dir(), uri, symbols=["RELIANCE", "TCS"])
    day = pd.Timestamp("2024-11-25")                                 # the first session after the sample ends
    rows = market_rows([day], {"RELIANCE": [1290.0], "TCS": [4200.0]},
                       isins={"RELIANCE": "INE002A01018", "TCS": "INE467B01029"})[0]
    rows["prev_close"] = sample_bars(["RELIANCE", "TCS"], "2024-11-22", "2024-11-22").close.iloc[0].to_numpy()
    write_bhavcopy(rows, tmp_path / "in")
    assert ingest_files([tmp_path / "in"], uri).ok
    bars = open_bars(uri)
    want = sample_bars(["RELIANCE", "TCS"], None, None)
    assert bars.symbols == ["RELIANCE", "TCS"] and bars.dates[-1] == day
    assert_same_bars(bars.select(end="2024-11-22"), want)
    assert list(bars.close.loc[day]) == [1290.0, 4200.0] and not bars.issues
    assert list(store.read_market_field(uri, "isin").iloc[-1]) == ["INE002A01018", "INE467B01029"]


def test_run_daily_from_the_warehouse_on_a_day_the_sample_lacks(tmp_path):
    "Import the sample once, ingest an exchange file for 2024-11-25, then `run daily` on that day reads it."
    from conftest import run_cli
    uri = uri_of(tmp_path / "market.duckdb")
    symbols = ["RELIANCE", "TCS", "INFY", "HDFCBANK", "ICICIBANK"]
    import_bars_dir(nse_dir(), uri, symbols=symbols)
    last = sample_bars(symbols, "2024-11-22", "2024-11-22").close.iloc[0]
    day = pd.Timestamp("2024-11-25")
    rows = market_rows([day], {s: [float(last[s]) * 1.01] for s in symbols})[0]
    rows["prev_close"] = last[rows["symbol"]].to_numpy()
    write_bhavcopy(rows, tmp_path / "in")
    assert ingest_files([tmp_path / "in"], uri).ok
    r = run_cli("run", "daily", "--as-of", "2024-11-25", "--data", uri, "--symbols", *symbols, "--warehouse",
                uri_of(tmp_path / "out.duckdb"), "--archive", tmp_path / "archive", "--no-log-output")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "succeeded" in r.stdout
    manifests = list((tmp_path / "archive").rglob("manifest.json"))
    assert len(manifests) == 1 and "2024/11/25" in manifests[0].as_posix()
