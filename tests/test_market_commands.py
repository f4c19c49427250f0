"""Issue 13: `data ingest | fetch | import | actions` through a parser built as the CLI builds it."""
from __future__ import annotations

import argparse

import pandas as pd
import pytest
from fixtures.bhavcopy_fixtures import build_sample_bhavcopies, nse_dir
from test_market_fetch import Archive, market

from strategy_engine.market.commands import add_data_commands
from strategy_engine.market.store import ingest_log, read_market_bars


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="strategy-engine")
    sub = parser.add_subparsers(dest="command", required=True)
    add_data_commands(sub.add_parser("data").add_subparsers(dest="data_command", required=True))
    args = parser.parse_args(["data", *argv])
    return args.func(args)


def test_ingest_then_again_then_a_malformed_file(tmp_path, capsys):
    files, _ = build_sample_bhavcopies(tmp_path / "in", ["TCS", "INFY"], "2024-07-01", "2024-07-10",
                                       zipped=True)
    wh = f"duckdb:///{tmp_path / 'w.duckdb'}"
    assert run("ingest", str(tmp_path / "in"), "--warehouse", wh) == 0
    assert "8 ingested" in capsys.readouterr().out
    assert run("ingest", str(tmp_path / "in"), "--warehouse", wh) == 0
    assert "8 unchanged" in capsys.readouterr().out
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "cm11JUL2024bhav.csv").write_text("SYMBOL,SERIES\nTCS,EQ\n")
    assert run("ingest", str(tmp_path / "bad"), "--warehouse", wh) == 1
    out = capsys.readouterr().out
    assert "refused: cm11JUL2024bhav.csv" in out and "line 1, column OPEN" in out
    assert len(ingest_log(wh)) == 8


def test_import_and_actions(tmp_path, capsys):
    wh = f"duckdb:///{tmp_path / 'w.duckdb'}"
    assert run("import", str(nse_dir()), "--symbols", "TCS", "WIPRO", "--warehouse", wh) == 0
    out = capsys.readouterr().out
    assert "sessions written" in out and "2014-04-24" in out
    (tmp_path / "CA.csv").write_text("SYMBOL,SERIES,PURPOSE,EX-DATE\nWIPRO,EQ,BONUS "
                                     "1:3,06-Mar-2019\nWIPRO,EQ,DIVIDEND - RS 1 PER "
                                     "SHARE,10-Jul-2019\nTCS,EQ,DEMERGER,01-Jan-2020\n")
    assert run("actions", str(tmp_path / "CA.csv"), "--warehouse", wh) == 0
    out = capsys.readouterr().out
    assert "bonus 1, dividend 1" in out and "line 4: TCS 2020-01-01: DEMERGER" in out
    bars = read_market_bars(wh, ["TCS", "WIPRO"])
    assert bars.symbols == ["TCS", "WIPRO"] and bars.dates[0] == pd.Timestamp("2010-01-04")


@pytest.fixture
def archive():
    a = Archive()
    yield a
    a.server.shutdown()
    a.server.server_close()


def test_fetch_a_range_a_holiday_and_catching_up(tmp_path, archive, capsys):
    days = pd.DatetimeIndex(["2024-08-13", "2024-08-14", "2024-08-16"])       # 08-15 is a holiday
    rows = market(days)
    for d in days[:2]: archive.put(rows[d])
    wh = f"duckdb:///{tmp_path / 'w.duckdb'}"
    common = ["--warehouse", wh, "--base-url", archive.base, "--save", str(tmp_path / "raw"), "--retries",
              "0"]
    assert run("fetch", "--from", "2024-08-13", "--to", "2024-08-15", *common) == 0
    assert sorted(p.name for p in (tmp_path / "raw").iterdir())[0].startswith(
        "BhavCopy_NSE_CM_0_0_0_20240813"
    )
    assert run("fetch", "--date", "2024-08-15", *common) == 2
    assert "holiday" in capsys.readouterr().err
    assert run("fetch", "--missing", "--as-of", "2024-08-16", *common) == 1   # not published yet: 404
    assert "missing: 2024-08-16" in capsys.readouterr().out
    archive.put(rows[days[2]])
    assert run("fetch", "--missing", "--as-of", "2024-08-16", *common) == 0
    assert list(read_market_bars(wh).dates) == list(days)
    assert run("fetch", "--from", "2024-08-13", *common) == 2
