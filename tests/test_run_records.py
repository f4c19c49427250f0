"""Run records: the archive is the truth, the warehouse its index (issue 12), via the real CLI."""
import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from strategy_engine.runs.archive import open_archive, verify
from strategy_engine.runs.contract import FAILPOINT_ENV, RUN_STEPS
from strategy_engine.runs.records import reconcile, verify_records
from strategy_engine.warehouse import open_warehouse

from conftest import run_cli, run_cli_many

DAY = "2024-11-22"


@pytest.fixture
def where(tmp_path):
    return {"warehouse": f"duckdb:///{tmp_path}/wh.duckdb", "archive": str(tmp_path / "archive"),
            "tmp": tmp_path}


def daily(where, *extra, env=None):
    return run_cli("run", "daily", "--as-of", DAY, "--warehouse", where["warehouse"], "--archive",
                   where["archive"], "--no-alerts", *extra, env=env)


def manifests(where):
    "The archived manifests, oldest first."
    found = [json.loads(p.read_text()) for p in Path(where["archive"]).rglob("manifest.json")]
    return sorted(found, key=lambda m: m["started_at"])


def current(where) -> pd.DataFrame:
    with open_warehouse(where["warehouse"]) as wh: return wh.read_signals(start=DAY, end=DAY)


def current_weights(where) -> pd.DataFrame:
    with open_warehouse(where["warehouse"]) as wh: return wh.read_target_weights(start=DAY, end=DAY)


def consistent(where) -> list[str]:
    "Every problem between archive and warehouse (empty: consistent)."
    store = open_archive(where["archive"])
    with open_warehouse(where["warehouse"]) as wh:
        return [str(p) for p in verify(store, allow_empty=True).problems] + verify_records(store, wh)


CASES = [(s, h) for s in RUN_STEPS for h in ("kill", "term")]


def daily_args(where, *extra):
    return ("run", "daily", "--as-of", DAY, "--warehouse", where["warehouse"], "--archive", where["archive"],
            "--no-alerts", *extra)


def snapshot(where) -> dict:
    return {"problems": consistent(where), "manifests": manifests(where), "current": len(current(where)),
            "weights": len(current_weights(where))}


@pytest.fixture(scope="module")
def crash_loop(tmp_path_factory):
    """Every crash case at once (each its own archive and warehouse, nothing shared): crash, reconcile, retry.

    The cases are independent, so their runs go in parallel (`run_cli_many`); the test per case reads its
    states."""
    places = {c: {"warehouse": f"duckdb:///{(t := tmp_path_factory.mktemp('crash'))}/wh.duckdb",
                  "archive": str(t / "archive"), "tmp": t} for c in CASES}
    crashed = run_cli_many([(daily_args(places[c], "--data", "synthetic"),
                             {**os.environ, FAILPOINT_ENV: ":".join(c)})
                            for c in CASES])
    states = {}
    for c, out in zip(CASES, crashed):
        where = places[c]
        states[c] = {"crashed": out, "after_crash": snapshot(where)}
        with open_warehouse(where["warehouse"]) as wh:
            states[c]["reconciled"] = reconcile(open_archive(where["archive"]), wh)
        states[c]["after_reconcile"] = snapshot(where)
    # SIGTERM ends the same way: one retry per step
    retried = [c for c in CASES if c[1] == "kill"]
    for c, out in zip(retried,
                      run_cli_many([(daily_args(places[c], "--data", "synthetic"), None) for c in retried])):
        states[c]["retry"] = out
        states[c]["after_retry"] = snapshot(places[c])
    return states


@pytest.mark.parametrize("step,how", CASES)
def test_a_crash_at_every_step_leaves_nothing_or_what_reconcile_and_the_next_run_complete(
    crash_loop, step, how
):
    """RELIABILITY 2: kill -9 / SIGTERM after each step; reconcile and a retry converge to one clean run."""
    state = crash_loop[(step, how)]
    crashed = state["crashed"]
    assert crashed.returncode in (-9, -15), crashed.stdout + crashed.stderr
    allowed = ("not_in_ledger", "not loaded into the warehouse")
    problems = state["after_crash"]["problems"]
    # never a contradiction, only unfinished
    assert all(any(a in p for a in allowed) for p in problems), problems
    done, after = state["reconciled"], state["after_reconcile"]
    assert not done.problems and after["problems"] == []
    archived = after["manifests"]
    if step in ("executed", "archived_files"):
        assert archived == [] and after["current"] == after["weights"] == 0      # nothing of the run exists
    else:
        assert len(archived) == 1 and after["current"] == archived[0]["warehouse_rows"]["signals"] > 0
        # loaded with the signals
        assert after["weights"] == archived[0]["warehouse_rows"]["target_weights"] > 0
    if step in ("executed", "archived_files", "archived_manifest", "ledgered"):
        # not loaded: not visible
        assert state["after_crash"]["current"] == state["after_crash"]["weights"] == 0
    if how == "term":
        return
    retry, final = state["retry"], state["after_retry"]
    assert retry.returncode == 0, retry.stdout + retry.stderr
    assert final["problems"] == []
    ms = final["manifests"]
    assert len({m["run_id"] for m in ms}) == 1 and final["current"] == ms[-1]["warehouse_rows"]["signals"]
    assert final["weights"] == ms[-1]["warehouse_rows"]["target_weights"]


@pytest.fixture(scope="module")
def history(tmp_path_factory, nse_dir):
    """One archive and warehouse with a day's history, shared by the tests that only read it (a test that
    changes anything copies it first): the NSE run, a run of other data, then a narrower NSE run that becomes
    current."""
    t = tmp_path_factory.mktemp("history")
    where = {"warehouse": f"duckdb:///{t}/wh.duckdb", "archive": str(t / "archive"), "tmp": t}
    for extra in ((), ("--data", "synthetic"), ("--strategies", "momentum", "--symbols", "RELIANCE", "TCS")):
        out = daily(where, *extra)
        assert out.returncode == 0, out.stdout + out.stderr
    nse, syn, narrow = manifests(where)
    return {"where": where, "nse": nse, "synthetic": syn, "narrow": narrow}


def test_history_is_kept_and_the_day_is_never_a_mixture(history, nse_dir):
    """Issue 12: a narrower later run of the day becomes current whole; earlier runs' rows stay whole."""
    where, m1, m2 = history["where"], history["nse"], history["narrow"]
    assert m1["run_id"] != m2["run_id"]
    now = current(where)
    assert set(now["run_id"]) == {m2["identity"]["run_id"]} and set(now["symbol"]) <= {"RELIANCE", "TCS"}
    with open_warehouse(where["warehouse"]) as wh:
        kept = wh.read_signals(run_id=m1["identity"]["run_id"])
        # the first manifest's count stays true
        assert len(kept) == m1["warehouse_rows"]["signals"] > len(now)
        perf = wh.read_performance(start=DAY, end=DAY)
        assert set(perf["run_id"]) == {m2["identity"]["run_id"]} and set(perf["strategy"]) == {"momentum"}
        # what was current after the first run
        then = wh.read_signals(start=DAY, end=DAY, at=m1["ended_at"])
        assert set(then["run_id"]) == {m1["identity"]["run_id"]} and len(then) == len(kept)
        runs = wh.read_runs()
    shown = run_cli("signals", "--date", DAY, "--warehouse", where["warehouse"], "--at", m1["ended_at"])
    assert (
        shown.returncode == 0
        and m1["identity"]["run_id"] in shown.stdout
        and m2["identity"]["run_id"] not in shown.stdout
    )
    usage = run_cli("signals", "--date", DAY, "--warehouse", where["warehouse"], "--attempt", "1")
    assert usage.returncode == 2 and "--attempt needs --run-id" in usage.stderr
    assert (
        runs["started_at"].notna().all()
        and runs["notebook_uri"].notna().all()
        and runs["manifest_sha256"].notna().all()
    )
    nse_runs = runs[runs["run_id"] != history["synthetic"]["identity"]["run_id"]]
    assert (nse_runs["data_uri"] == str(nse_dir)).all() and runs["started_by"].str.startswith("cli:").all()
    assert consistent(where) == []


def test_other_data_is_another_run_that_replaces_nothing(history, nse_dir):
    """Issue 12: --data synthetic for the same day gets its own run id; the NSE run's records stay true."""
    where, a, b = history["where"], history["nse"], history["synthetic"]
    assert a["run_id"] != b["run_id"] and a["identity"]["data"]["uri"] == str(nse_dir)
    assert (
        b["identity"]["data"]["uri"] == "synthetic"
        and a["identity"]["config"]["sha256"] == b["identity"]["config"]["sha256"]
    )
    with open_warehouse(where["warehouse"]) as wh:
        assert len(wh.read_signals(run_id=a["identity"]["run_id"])) == a["warehouse_rows"]["signals"] > 0
        assert len(wh.read_signals(run_id=b["identity"]["run_id"])) == b["warehouse_rows"]["signals"] > 0


def test_manifest_and_runs_row_are_complete(history):
    """RELIABILITY 25 / issue 12: identity, who, code, data, configuration, files and row counts match."""
    where, m = history["where"], history["nse"]
    for field in ("run_id", "kind", "as_of", "status", "exit_code", "started_at", "ended_at", "git_commit",
                  "algo_id", "started_by", "data_sha256", "parameters_sha256", "notebook_sha256",
                  "warehouse_rows", "files", "configs"):
        assert m.get(field) is not None, field
    assert m["algo_id"] == "generic" and m["failed_cell"] is None and "image_digest" in m
    assert set(m["files"]) == {"rows/signals.parquet", "rows/target_weights.parquet",
                               "rows/performance.parquet"}
    assert m["configs"]["momentum"]["parameters"]["rsi_period"] == 14
    yamls = {p.stem
             for p in (Path(__file__).resolve().parent.parent / "config" / "strategies").glob("*.yaml")}
    assert set(m["identity"]["config"]["files"]) == yamls and len(m["identity"]["data"]["sha256"]) == 64
    with open_warehouse(where["warehouse"]) as wh:
        (row,) = wh.read_runs(run_id=m["identity"]["run_id"]).to_dict("records")
        assert row["manifest_sha256"] and json.loads(row["rows"]) == m["warehouse_rows"]
        assert len(wh.read_signals(run_id=row["run_id"])) == m["warehouse_rows"]["signals"]
        weights = wh.read_target_weights(run_id=row["run_id"])
        assert len(weights) == m["warehouse_rows"]["target_weights"] > 0 and weights["weight"].ne(0).all()


def test_a_run_that_keeps_no_rows_leaves_no_target_weights(where):
    """Issue 15: a data_stale run (its data ends before --as-of) is archived and indexed, with no signals
    and no target weights: only a run that keeps rows makes them visible."""
    out = run_cli("run", "daily", "--as-of", "2024-11-25", "--warehouse", where["warehouse"], "--archive",
                  where["archive"], "--no-alerts")
    assert out.returncode == 4, out.stdout + out.stderr
    (m,) = manifests(where)
    assert (
        m["status"] == "data_stale"
        and m["warehouse_rows"] == {}
        and "rows/target_weights.parquet" not in m["files"]
    )
    with open_warehouse(where["warehouse"]) as wh:
        counts = wh.counts()
        assert counts["runs"] == 1 and counts["signals"] == counts["target_weights"] == 0


def test_a_changed_config_is_another_identity(where, tmp_path):
    """Issue 12: a changed strategy YAML changes the run id (whatever git says)."""
    cfg = tmp_path / "config"
    shutil.copytree(Path(__file__).resolve().parent.parent / "config", cfg)
    a = daily(where, "--data", "synthetic", "--strategies", "momentum",
              env={**os.environ, "STRATEGY_ENGINE_CONFIG": str(cfg)})
    y = cfg / "strategies" / "momentum.yaml"
    y.write_text(y.read_text().replace("rsi_period: 14", "rsi_period: 15"))
    b = daily(where, "--data", "synthetic", "--strategies", "momentum",
              env={**os.environ, "STRATEGY_ENGINE_CONFIG": str(cfg)})
    assert a.returncode == 0 and b.returncode == 0, b.stderr
    m1, m2 = manifests(where)
    assert m1["run_id"] != m2["run_id"] and m2["configs"]["momentum"]["parameters"]["rsi_period"] == 15


def test_rebuild_from_the_archive_reproduces_the_tables_row_for_row(history, tmp_path):
    """Issue 12: `warehouse rebuild --from-archive` into an empty warehouse equals the one the runs built."""
    where = history["where"]
    fresh = f"duckdb:///{tmp_path}/rebuilt.duckdb"
    out = run_cli("warehouse", "rebuild", "--from-archive", where["archive"], "--warehouse", fresh)
    assert out.returncode == 0, out.stdout + out.stderr
    with open_warehouse(where["warehouse"]) as a, open_warehouse(fresh) as b:
        for name in ("signals", "performance", "runs"):
            x, y = a.read_table(name), b.read_table(name)
            assert len(x) > 0
            pd.testing.assert_frame_equal(x, y, check_exact=True)
    again = run_cli("warehouse", "rebuild", "--from-archive", where["archive"], "--warehouse", fresh)
    assert again.returncode == 1 and "needs an empty warehouse" in again.stderr


def test_audit_verify_fails_on_a_missing_archive_and_on_a_deleted_newest_run(where, tmp_path):
    """Issue 12: an absent archive is not OK; deleting the newest run is caught via the warehouse."""
    missing = run_cli("audit", "verify", "--archive", str(tmp_path / "no-such-path"), "--warehouse",
                      where["warehouse"])
    assert missing.returncode == 1 and "does not exist" in missing.stdout
    ok = run_cli("audit", "verify", "--archive", str(tmp_path / "no-such-path"), "--allow-empty",
                 "--no-warehouse")
    assert ok.returncode == 0, ok.stdout
    assert daily(where, "--data", "synthetic").returncode == 0
    good = run_cli("audit", "verify", "--archive", where["archive"], "--warehouse", where["warehouse"])
    assert good.returncode == 0, good.stdout
    newest = manifests(where)[-1]
    root = Path(where["archive"])
    for p in sorted(root.rglob("*"), reverse=True):
        if p.is_file():
            p.chmod(0o644)
    shutil.rmtree(next(root.rglob(newest["run_id"])))
    sorted((root / "ledger").iterdir())[-1].unlink()
    bad = run_cli("audit", "verify", "--archive", where["archive"], "--warehouse", where["warehouse"])
    assert (
        bad.returncode == 1
        and newest["identity"]["run_id"] in bad.stdout
        and "absent from the archive" in bad.stdout
    )


@pytest.mark.parametrize("flags,flag,hint", [(["--strategies", "momentom"], "--strategies",
                                              "Did you mean 'momentum'?"),
                                             (["--symbols", "RELIANC", "TCS"], "--symbols",
                                              "Did you mean 'RELIANCE'?"),
                                             (["--run-id", "../x"], "--run-id", "must be 1-128")])
def test_a_typo_fails_before_anything_starts(where, nse_dir, flags, flag, hint):
    """Issue 12: exit 2 with a did-you-mean naming the flag; nothing archived, no warehouse row, no alert."""
    out = daily(where, *flags)
    assert out.returncode == 2 and flag in out.stderr and hint in out.stderr, out.stderr
    assert not Path(where["archive"]).exists() and not (where["tmp"] / "wh.duckdb").exists()


def test_on_cloud_run_a_run_without_its_image_identity_does_not_start(where):
    """Issue 12: in the container the commit and image digest are passed at build/deploy, checked at start."""
    env = {**os.environ, "CLOUD_RUN_JOB": "strategy-engine-daily", "STRATEGY_ENGINE_GIT_COMMIT": "unknown"}
    env.pop("STRATEGY_ENGINE_IMAGE_DIGEST", None)
    out = daily(where, "--data", "synthetic", env=env)
    # on Cloud Run the job logs JSON lines on stdout
    said = out.stdout + out.stderr
    assert out.returncode == 1 and "STRATEGY_ENGINE_IMAGE_DIGEST" in said and not manifests(where), said
    env.update(STRATEGY_ENGINE_GIT_COMMIT="a" * 40, STRATEGY_ENGINE_IMAGE_DIGEST="sha256:" + "b" * 64)
    ok = daily(where, "--data", "synthetic", env=env)
    assert ok.returncode == 0, ok.stderr
    (m,) = manifests(where)
    assert m["image_digest"] == "sha256:" + "b" * 64 and m["cloud_run"]["job"] == "strategy-engine-daily"


def test_a_failed_validation_of_other_data_does_not_block_this_data(where, nse_dir, tmp_path):
    """Issue 12: the 09:00 gate is per data location: a stale folder blocks its own runs, not production's."""
    stale = tmp_path / "stale"
    stale.mkdir()
    for sym in ("RELIANCE", "TCS"):
        lines = (nse_dir / f"{sym}.csv").read_text().splitlines()
        (stale / f"{sym}.csv").write_text("\n".join(lines[:-30]) + "\n")          # a month short of the day
    common = ["--as-of", DAY, "--archive", where["archive"], "--no-alerts", "--symbols", "RELIANCE", "TCS"]
    v = run_cli("run", "validate", *common, "--data", stale)
    assert v.returncode == 4, v.stdout + v.stderr
    blocked = run_cli("run", "daily", *common, "--data", stale, "--warehouse", where["warehouse"])
    assert blocked.returncode == 4 and "not started" in blocked.stdout, blocked.stdout
    ok = run_cli("run", "daily", *common, "--warehouse", where["warehouse"])
    assert ok.returncode == 0, ok.stdout + ok.stderr
