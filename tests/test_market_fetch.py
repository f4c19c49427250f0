"""Issue 13: `fetch` against a real HTTP server on loopback (port 0) serving fixture bhavcopies."""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest

from strategy_engine.calendar import CalendarError, nse_calendar
from strategy_engine.market.bhavcopy import bhavcopy_text, synthetic_market
from strategy_engine.market.fetch import (
    ARCHIVE_ENV,
    bhavcopy_url,
    fetch_and_ingest,
    fetch_sessions,
    ingest_missing_sessions,
)
from strategy_engine.market.store import ingest_log, read_market_bars
from strategy_engine.validation import validate


class Archive:
    "A local stand-in for the exchange archive: path -> bytes, and per-path scripts of failures."

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.script: dict[str, list] = {}
        self.requests: list[tuple[str, str]] = []
        archive = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                archive.requests.append((self.path, self.headers.get("User-Agent", "")))
                todo = archive.script.get(self.path, [])
                step = todo.pop(0) if todo else 200
                body = archive.files.get(self.path)
                if body is None or step in (404, 503):
                    self.send_response(404 if body is None or step == 404 else 503)
                    self.end_headers()
                    return
                if step == "cut": body = body[: len(body) // 3]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def path(self, session) -> str:
        return bhavcopy_url(session, self.base)[len(self.base):]

    def put(self, rows: pd.DataFrame, fmt: str | None = None):
        import io
        import zipfile

        from strategy_engine.market.bhavcopy import bhavcopy_name
        day = pd.Timestamp(rows["date"].iloc[0])
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr(
                bhavcopy_name(day, fmt),
                bhavcopy_text(rows, fmt or ("udiff" if day >= pd.Timestamp("2024-07-08") else "legacy")),
            )
        self.files[self.path(day)] = buf.getvalue()


@pytest.fixture
def archive():
    a = Archive()
    yield a
    a.server.shutdown()
    a.server.server_close()


def market(days, n=25, seed=3):
    return {
        pd.Timestamp(r["date"].iloc[0]): r
        for r in synthetic_market(pd.DatetimeIndex(days), n_symbols=n, seed=seed, other_series=2)
    }


def test_404_truncated_zip_and_503_then_200(archive):
    days = nse_calendar().sessions("2024-08-19", "2024-08-22")
    rows = market(days)
    for d in days[:3]: archive.put(rows[d])         # the 4th is never published: 404
    archive.script[archive.path(days[1])] = [503, 503]
    archive.script[archive.path(days[2])] = ["cut"] * 10
    waits = []
    got = fetch_sessions(days, archive.base, retries=3, backoff=0.1, sleep=waits.append)
    assert [r.status for r in got] == ["fetched", "fetched", "failed", "missing"]
    assert [r.attempts for r in got] == [1, 3, 4, 1]
    assert "not a readable zip" in got[2].message and "404" in got[3].message
    assert waits == [0.1, 0.2, 0.1, 0.2, 0.4]                 # exponential backoff, per session
    assert all(ua.startswith("Mozilla/5.0") for _, ua in archive.requests)


def test_sessions_come_from_the_calendar_only(archive):
    with pytest.raises(CalendarError, match="holiday"):
        fetch_sessions(["2026-01-15"], archive.base)
    assert not archive.requests


def test_the_base_url_comes_from_the_environment(archive, monkeypatch):
    day = pd.Timestamp("2024-08-20")
    archive.put(market([day])[day])
    monkeypatch.setenv(ARCHIVE_ENV, archive.base)
    assert fetch_sessions([day])[0].status == "fetched"


def test_a_week_of_sessions_end_to_end_with_a_holiday_a_late_file_and_a_correction(archive, tmp_path):
    uri = f"duckdb:///{tmp_path / 'w.duckdb'}"
    days = nse_calendar().sessions("2024-08-12", "2024-08-20")       # 2024-08-15 is Independence Day
    assert pd.Timestamp("2024-08-15") not in days
    rows = market(days)
    for d in days: archive.put(rows[d])
    late = pd.Timestamp("2024-08-14")
    archive.script[archive.path(late)] = [404]                         # published late: first ask gets 404
    first = ingest_missing_sessions("2024-08-12", uri, archive.base)  # an empty store: that session only
    assert first.ok and [s.date() for s in first.sessions] == [pd.Timestamp("2024-08-12").date()]
    for as_of in pd.bdate_range("2024-08-13", "2024-08-20"):
        run = ingest_missing_sessions(as_of, uri, archive.base, backoff=0.01)
        if as_of == late:
            assert not run.ok and [f.status for f in run.fetched] == ["missing"]
    log = ingest_log(uri)
    # the late file arrived, the holiday was never asked
    assert sorted(pd.to_datetime(log["session"])) == list(days)
    assert not any(archive.path("2024-08-15") == p for p, _ in archive.requests)
    # up to date: nothing to do
    assert ingest_missing_sessions("2024-08-20", uri, archive.base).sessions == ()
    fixed = rows[pd.Timestamp("2024-08-13")].copy()
    fixed.loc[0, "volume"] = fixed.loc[0, "volume"] * 2 + 1            # a corrected traded quantity
    # the exchange re-publishes a corrected file
    archive.put(fixed)
    redo = fetch_and_ingest([pd.Timestamp("2024-08-13")], uri, archive.base)
    assert [r.status for r in redo.report.results] == ["replaced"]
    bars = read_market_bars(uri, adjustment="raw")
    assert bars.volume.loc["2024-08-13", fixed.loc[0, "symbol"]] == fixed.loc[0, "volume"]
    assert list(bars.dates) == list(days) and validate(bars, as_of="2024-08-20").ok


def test_run_day_ingests_from_the_exchange_then_trades_and_stops_on_a_late_file(archive, tmp_path):
    """`run day` on a market store: ingest (catching up), validate, daily, report; a late file stops it."""
    import json

    from strategy_engine.market.bhavcopy import write_bhavcopy
    from strategy_engine.market.store import ingest_files

    from conftest import run_cli
    history = nse_calendar().sessions("2024-05-20", "2024-08-12")
    week = nse_calendar().sessions("2024-08-13", "2024-08-16")          # 2024-08-15: Independence Day
    rows = market(history.append(week), n=8, seed=9)
    for d in history: write_bhavcopy(rows[d], tmp_path / "history")
    uri = f"duckdb:///{tmp_path / 'market.duckdb'}"
    assert ingest_files([tmp_path / "history"], uri).ok
    for d in week: archive.put(rows[d])
    archive.script[archive.path("2024-08-14")] = [404]                # the exchange publishes it late
    symbols = sorted(rows[history[0]].query("series == 'EQ'")["symbol"])
    args = ["--data", uri, "--symbols", *symbols, "--universe", "top:5:traded_value:20", "--no-alerts",
            "--warehouse", f"duckdb:///{tmp_path / 'runs.duckdb'}", "--archive", tmp_path / "archive",
            "--base-url", archive.base]
    late = run_cli("run", "day", "--as-of", "2024-08-14", *args)
    assert late.returncode == 1 and "stopped: the ingest of 2024-08-14 failed" in late.stdout, (
        late.stdout + late.stderr
    )
    assert not list((tmp_path / "archive").rglob("manifest.json"))      # nothing ran on yesterday's bars
    day = run_cli("run", "day", "--as-of", "2024-08-14", *args)         # the file is there now
    assert day.returncode == 0, day.stdout[-3000:] + day.stderr[-3000:]
    manifests = [json.loads(p.read_text()) for p in (tmp_path / "archive").rglob("manifest.json")]
    assert sorted(m["kind"] for m in manifests) == ["daily", "report", "validate"]
    assert all(m["status"] == "succeeded" for m in manifests)
    assert [pd.Timestamp(s) for s in sorted(ingest_log(uri)["session"])][-2:] == list(week[:2])   # caught up
    holiday = run_cli("run", "day", "--as-of", "2024-08-15", *args)
    assert holiday.returncode == 0 and "not a session" in holiday.stdout
    assert not any(p == archive.path("2024-08-15") for p, _ in archive.requests)
