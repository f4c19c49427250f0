"""`strategy-engine backfill`: one pass over a range of the NSE sample, archived and loaded, equal row for
row to what the daily stage stages for each of its sessions."""
from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from strategy_engine.stages import daily
from strategy_engine.warehouse import TABLES, _conform, _same, _signals_rows, _weights_rows, open_warehouse

from conftest import run_cli

pytestmark = pytest.mark.timeout(600)
FROM, TO = "2024-11-18", "2024-11-22"


@pytest.fixture(scope="module")
def filled(tmp_path_factory, nse_dir):
    tmp = tmp_path_factory.mktemp("backfill")
    where = {"warehouse": f"duckdb://{tmp}/wh.duckdb", "archive": str(tmp / "archive"), "tmp": tmp}
    done = run_cli("backfill", "--from", FROM, "--to", TO, "--data", nse_dir,
                   "--warehouse", where["warehouse"], "--archive", where["archive"])
    assert done.returncode == 0, done.stdout + done.stderr
    return {**where, "out": done.stdout}


def test_backfill_equals_the_daily_stage_row_for_row(filled, nse_dir):
    assert "4 session(s) 2024-11-18..2024-11-22" in filled["out"]
    assert f"warehouse {filled['tmp']}/wh.duckdb" in filled["out"]                  # its location, resolved
    with open_warehouse(filled["warehouse"]) as wh:
        [run] = wh.read_runs().to_dict("records")
        assert run["kind"] == "backfill" and run["run_id"].startswith("backfill-2024-11-22-")
        assert str(run["as_of"].date()) == TO and run["manifest_uri"].startswith(filled["archive"])
        stored = wh.read_signals(run_id=run["run_id"])
        days = sorted(stored["date"].dt.strftime("%Y-%m-%d").unique())
        assert days == [f"2024-11-{d}" for d in (18, 19, 21, 22)]       # the 20th: a holiday (an election)
        assert wh.read_signals().empty                            # a backfill is kept, never current
        data = [c for c in TABLES["signals"].columns if c not in ("run_id", "attempt", "shard")]
        for day in ("2024-11-19", "2024-11-22"):
            one = daily.compute(daily.load_data(daily.start_daily(day, data=str(nse_dir))))
            folder = filled["tmp"] / f"daily-{day}"
            daily.stage(one, str(folder))                         # exactly what the daily notebook stages
            staged = pq.read_table(folder / "signals.parquet")
            staged = _conform(_signals_rows(staged, "d", 0), TABLES["signals"])
            assert len(staged) > 10
            mine = stored[stored["date"] == day]
            key = ["strategy", "symbol"]
            _same(mine[data].sort_values(key).reset_index(drop=True),
                  staged[data].sort_values(key).reset_index(drop=True), f"backfill vs daily stage, {day}")
            # and its target weights
            held = wh.read_target_weights(run_id=run["run_id"], start=day, end=day)
            want = _conform(_weights_rows(pq.read_table(folder / "target_weights.parquet").to_pandas(), "d",
                                          0),
                            TABLES["target_weights"])
            w = ["date", *key, "weight"]
            assert len(want) > 5
            _same(held[w].sort_values(key).reset_index(drop=True),
                  want[w].sort_values(key).reset_index(drop=True),
                  f"backfill vs daily stage target weights, {day}")


def test_the_archive_verifies_with_the_backfill_loaded(filled):
    done = run_cli("audit", "verify", "--archive", filled["archive"], "--warehouse", filled["warehouse"])
    assert done.returncode == 0, done.stdout + done.stderr


def test_usage_errors_exit_2_before_anything_starts(tmp_path):
    archive = tmp_path / "archive"
    bad = run_cli("backfill", "--from", "2024-11-22", "--to", "2024-11-18", "--archive", archive,
                  "--warehouse", f"duckdb://{tmp_path}/wh.duckdb")
    assert bad.returncode == 2 and "--from 2024-11-22 is after --to 2024-11-18" in bad.stderr + bad.stdout
    typo = run_cli("backfill", "--from", FROM, "--to", TO, "--strategies", "momentun", "--archive", archive)
    out = typo.stderr + typo.stdout
    assert typo.returncode == 2 and "--strategies" in out and "Did you mean 'momentum'?" in out, out
    day = run_cli("backfill", "--from", "2024-13-01", "--to", TO, "--archive", archive)
    assert day.returncode == 2 and "--from" in day.stderr + day.stdout
    assert not archive.exists() and not (tmp_path / "wh.duckdb").exists()


def test_backfill_shows_periodic_progress_lines_off_a_terminal(tmp_path, nse_dir, monkeypatch, caplog,
                                                                capsys):
    """Off a terminal a long backfill says how far it is (every 10 s; here every step: interval shortened)."""
    import logging

    from strategy_engine import logs
    from strategy_engine.cli import build_parser

    class EveryStep(logs.Progress):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **{**kwargs, "every": 0.0, "tty": False})

    monkeypatch.setattr(logs, "Progress", EveryStep)
    progress = logging.getLogger(logs.PROGRESS_LOGGER)
    progress.addHandler(caplog.handler)
    caplog.set_level(logging.INFO, logger=logs.PROGRESS_LOGGER)
    try:
        args = build_parser().parse_args(["backfill", "--from", "2024-11-21", "--to", "2024-11-22", "--data",
                                          str(nse_dir), "--strategies", "momentum", "--warehouse",
                                          f"duckdb://{tmp_path}/wh.duckdb", "--archive",
                                          str(tmp_path / "archive")])
        assert args.func(args) == 0
    finally: progress.removeHandler(caplog.handler)
    assert "2 session(s) 2024-11-21..2024-11-22" in capsys.readouterr().out
    lines = [r.getMessage() for r in caplog.records if r.name == logs.PROGRESS_LOGGER]
    steps = list(dict.fromkeys(x.split(",")[0] for x in lines                # the heartbeat repeats a step
                               if not x.startswith("backfill: 0/4")))
    assert [s.split(" (")[0] for s in steps] == [f"backfill: {k}/4" for k in (1, 2, 3, 4)], lines
    assert "data loaded: " in steps[0] and "signals computed for 2 session(s)" in steps[1], steps
    assert "archived: " in steps[2], steps
    assert steps[3].startswith(f"backfill: 4/4 (100 %) loaded into {tmp_path}"), steps
