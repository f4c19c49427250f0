"""Issue 13: untrustworthy bars never pass `data validate`; the loader's errors name file, line and column."""
from __future__ import annotations

import pandas as pd

from conftest import run_cli

HEAD = "Date,Adj Close,Close,High,Low,Open,Volume\n"


def write(folder, name: str, text: str):
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(HEAD + text)
    return folder


def test_inf_high_and_negative_volume_fail_data_validate(tmp_path):
    good = "".join(f"{d:%Y-%m-%d},10,10,10.5,9.5,10,1000\n"
                   for d in pd.bdate_range("2024-03-04", "2024-03-08"))
    bad = good.replace("2024-03-06,10,10,10.5", "2024-03-06,10,10,inf").replace(
        "2024-03-07,10,10,10.5,9.5,10,1000", "2024-03-07,10,10,10.5,9.5,10,-5"
    )
    write(tmp_path / "ok", "AAA.csv", good)
    write(tmp_path / "bad", "AAA.csv", bad)
    assert run_cli("data", "validate", tmp_path / "ok").returncode == 0
    r = run_cli("data", "validate", tmp_path / "bad")
    assert r.returncode == 1 and "[bad_price] AAA" in r.stdout and "[bad_volume] AAA" in r.stdout, (
        r.stdout + r.stderr
    )


def test_the_loader_never_shows_a_pandas_traceback(tmp_path):
    """RELIABILITY 16: 18:30 UTC and 00:00 IST the next day are the same session; no raw pandas traceback."""
    write(tmp_path / "big", "AAA.csv",
          "2024-03-04,10,10,10.5,9.5,10,1000\n2024-03-05,10,10,10.5,9.5,10," + "9" * 400 + "\n")
    r = run_cli("data", "validate", tmp_path / "big")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "AAA.csv: line 3: volume" in r.stderr and "400 characters" in r.stderr and "'Volume'" in r.stderr
    write(
        tmp_path / "tz",
        "AAA.csv",
        "2024-03-04T18:30Z,10,10,10.5,9.5,10,1000\n2024-03-06T00:00+05:30,10,10,10.5,9.5,10,1000\n"
        "2024-03-07 15:30:00+05:30,10,10,10.5,9.5,10,1000\n",
    )
    r = run_cli("data", "info", tmp_path / "tz")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    from strategy_engine.data import load_bars
    assert list(load_bars(tmp_path / "tz").dates.strftime("%Y-%m-%d")) == [
        "2024-03-05",
        "2024-03-06",
        "2024-03-07",
    ]
