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


@pytest.fixture
def progress_lines(monkeypatch, caplog):
    """The progress lines a command writes off a terminal, the 10 s interval shortened to 0 (every step)."""
    import logging

    from strategy_engine import logs

    class EveryStep(logs.Progress):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **{**kwargs, "every": 0.0, "tty": False})

    monkeypatch.setattr(logs, "Progress", EveryStep)
    monkeypatch.setattr("strategy_engine.market.commands.CHUNK", 3)      # several steps on a small input
    progress = logging.getLogger(logs.PROGRESS_LOGGER)
    progress.addHandler(caplog.handler)
    caplog.set_level(logging.INFO, logger=logs.PROGRESS_LOGGER)
    yield lambda: [r.getMessage() for r in caplog.records if r.name == logs.PROGRESS_LOGGER]
    progress.removeHandler(caplog.handler)


def test_ingest_and_fetch_show_periodic_progress_lines_off_a_terminal(tmp_path, archive, capsys,
                                                                      progress_lines):
    build_sample_bhavcopies(tmp_path / "in", ["TCS", "INFY"], "2024-07-01", "2024-07-10", zipped=True)
    wh = f"duckdb:///{tmp_path / 'w.duckdb'}"
    assert run("ingest", str(tmp_path / "in"), "--warehouse", wh) == 0
    assert "8 ingested" in capsys.readouterr().out          # one report, as if ingested in one call
    lines = [x for x in progress_lines() if x.startswith("ingest: ")]
    counts = list(dict.fromkeys(x.split(" files")[0] for x in lines if " files" in x))   # beats repeat
    assert counts == ["ingest: 3/8 (38 %)", "ingest: 6/8 (75 %)", "ingest: 8/8 (100 %)"], lines
    assert lines[-1].startswith("ingest: 8/8 (100 %) files, through ") and lines[-1].endswith(" s"), lines
    assert len(ingest_log(wh)) == 8
    days = pd.DatetimeIndex(["2024-08-12", "2024-08-13", "2024-08-14", "2024-08-16"])      # 08-15: a holiday
    rows = market(days)
    for d in days: archive.put(rows[d])
    wh2 = f"duckdb:///{tmp_path / 'w2.duckdb'}"
    assert run("fetch", "--from", "2024-08-12", "--to", "2024-08-16", "--warehouse", wh2,
               "--base-url", archive.base, "--no-save", "--retries", "0") == 0
    out = capsys.readouterr().out
    assert out.startswith("Sessions to fetch: 4 (2024-08-12 .. 2024-08-16)") and "4 ingested" in out, out
    fetched = [x for x in progress_lines() if x.startswith("fetch: ") and " sessions" in x]
    counts = list(dict.fromkeys(x.split(" sessions")[0] for x in fetched))
    assert counts == ["fetch: 3/4 (75 %)", "fetch: 4/4 (100 %)"], fetched
    assert list(read_market_bars(wh2).dates) == list(days)
