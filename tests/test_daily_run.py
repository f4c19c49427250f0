"""The daily production run end to end: `strategy-engine run daily` as the scheduler runs it.

Real parts only: the console script, papermill with a python3 kernel, a DuckDB file, a local archive.
"""
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from strategy_engine.core import UnknownNameError
from strategy_engine.runs.archive import open_archive, scan_for_secrets
from strategy_engine.runs.launcher import launch

from conftest import ROOT, processes_with_env, run_cli

DAY = "2024-11-22"                  # the last session of the NSE sample
SYMBOLS = ["RELIANCE", "TCS", "INFY", "HDFCBANK", "ICICIBANK", "SBIN", "ITC", "LT"]


@pytest.fixture
def where(tmp_path):
    return {"warehouse": f"duckdb:///{tmp_path}/wh.duckdb", "archive": str(tmp_path / "archive"),
            "tmp": tmp_path}


def daily(where, *extra, env=None):
    return run_cli("run", "daily", "--warehouse", where["warehouse"], "--archive", where["archive"], *extra,
                   env=env)


def rows(where, sql):
    con = duckdb.connect(where["warehouse"].removeprefix("duckdb:///"), read_only=True)
    try: return con.execute(sql).fetchall()
    finally: con.close()


def manifests(where):
    return [json.loads(p.read_text()) for p in sorted(Path(where["archive"]).rglob("manifest.json"))]


FAKETIME = shutil.which("faketime")


@pytest.fixture(scope="module")
def rerun(tmp_path_factory, nse_dir) -> dict:
    """The same run twice (8 symbols): the first with the clock faked to 2031 when libfaketime is
    installed, the second plainly; the signals after each. Shared by the rerun and the faked-clock tests
    (RELIABILITY 1 and 20)."""
    t = tmp_path_factory.mktemp("rerun")
    where = {"warehouse": f"duckdb:///{t}/wh.duckdb", "archive": str(t / "archive"), "tmp": t}
    args = ["run", "daily", "--as-of", DAY, "--symbols", *SYMBOLS, "--warehouse", where["warehouse"],
            "--archive", where["archive"]]
    clock = [FAKETIME, "2031-03-03 08:00:00"] if FAKETIME else []
    cli = str(Path(sys.executable).parent / "strategy-engine")
    first = subprocess.run([*clock, cli, *args, "--no-log-output"], capture_output=True, text=True,
                           env=dict(os.environ), cwd=ROOT, timeout=300)
    assert first.returncode == 0, first.stdout + first.stderr
    query = "select strategy, symbol, signal, confidence from signals_current order by all"
    ids = "select signal_id, signal, confidence, metadata from signals_current order by all"
    before, before_ids = rows(where, query), rows(where, ids)
    performance = rows(where, "select count(*) from performance_current")[0][0]
    second = daily(where, "--as-of", DAY, "--symbols", *SYMBOLS)
    return {"where": where, "faked": bool(FAKETIME), "second": second, "before": before,
            "after": rows(where, query), "before_ids": before_ids, "after_ids": rows(where, ids),
            "performance": performance}


def test_rerun_is_a_second_attempt_with_the_same_rows_and_both_are_kept(rerun):
    """RELIABILITY 1: re-running the same run id gives one current set of rows, identical content; every
    attempt is kept."""
    where, before = rerun["where"], rerun["before"]
    assert before and rerun["performance"] == 3
    assert rerun["second"].returncode == 0
    assert rerun["after"] == before
    assert rows(where, "select attempt, count(*) from signals group by attempt order by attempt") == [
        (1, len(before)),
        (2, len(before)),
    ]
    assert rows(where, "select attempt, status from runs order by attempt") == [
        (1, "succeeded"),
        (2, "succeeded"),
    ]
    ms = manifests(where)
    assert len(ms) == 2 and {m["status"] for m in ms} == {"succeeded"} and ms[0]["run_id"] == ms[1]["run_id"]
    assert ms[0]["data_sha256"] == ms[1]["data_sha256"] and len(ms[0]["git_commit"]) >= 7
    verify = run_cli("audit", "verify", "--archive", where["archive"])
    assert verify.returncode == 0, verify.stdout
    listed = run_cli("runs", "list", "--archive", where["archive"])
    assert listed.returncode == 0 and ms[0]["run_id"] in listed.stdout
    shown = run_cli("runs", "show", ms[0]["run_id"], "--archive", where["archive"])
    assert shown.returncode == 0 and '"status": "succeeded"' in shown.stdout


def test_failing_cell_is_archived_as_failed(where, nse_dir):
    """RELIABILITY 7: a raising cell gives exit 1; the notebook is archived as failed, with cell and ename."""
    bad = where["tmp"] / "bad"
    bad.mkdir()
    (bad / "TCS.csv").write_text("Date,Adj Close,Close,High,Low,Open,Volume\n2024-11-22,1,1,1,1,oops,1\n")
    r = daily(where, "--as-of", DAY, "--data", str(bad))
    assert r.returncode == 1, r.stdout + r.stderr
    [m] = manifests(where)
    assert m["status"] == "failed" and "DataError" in m["error"] and "TCS.csv: line 2" in m["error"]
    nb = Path(where["archive"], "2024/11/22", m["run_id"], "attempt-1", "daily_signals.ipynb").read_text()
    assert "DataError" in nb
    assert not Path(where["warehouse"].removeprefix("duckdb:///")).exists() or \
        rows(where, "select count(*) from signals")[0][0] == 0


def test_timeout_is_recorded(where):
    stuck = where["tmp"] / "stuck"
    stuck.mkdir()
    os.mkfifo(stuck / "TCS.csv")                          # reading it blocks until the cell times out
    r = daily(where, "--as-of", DAY, "--data", str(stuck), "--timeout", "2")
    assert r.returncode == 3, r.stdout + r.stderr
    [m] = manifests(where)
    assert m["status"] == "timeout" and m["exit_code"] == 3


def test_non_session_and_stale_days(where, nse_dir):
    """RELIABILITY 12 and 13: a holiday ends no_session, no rows; stale data ends data_stale, no signals."""
    r = daily(where, "--as-of", "2024-11-15")            # Guru Nanak Jayanti: an exchange holiday
    assert r.returncode == 0 and r.stdout.startswith("no_session"), r.stdout + r.stderr
    r = daily(where, "--as-of", "2024-11-25")            # a session after the sample ends: stale data
    assert r.returncode == 4 and r.stdout.startswith("data_stale"), r.stdout + r.stderr
    assert [m["status"] for m in manifests(where)] == ["no_session", "data_stale"]
    assert all(not m["warehouse_rows"] for m in manifests(where))


def test_parameter_values_arrive_unchanged_and_unknown_names_are_refused(where, nse_dir):
    """RELIABILITY 10: hostile parameter values arrive unchanged; unknown names refused before papermill."""
    odd = where["tmp"] / 'it\'s "odd"\\ dir\nwith newline'
    odd.mkdir()
    for s in ("TCS", "INFY"): shutil.copy(nse_dir / f"{s}.csv", odd / f"{s}.csv")
    result = launch("daily", {"as_of": DAY, "data": str(odd), "symbols": ["TCS", "INFY"],
                              "warehouse": where["warehouse"]},
                    archive=where["archive"])
    assert result.status == "succeeded", result.error
    assert result.manifest["parameters"]["data"] == str(odd)
    from strategy_engine.data import load_bars
    from strategy_engine.validation import sessions_only
    assert result.result["data_sha256"] == sessions_only(load_bars(odd, end=DAY)).content_hash()
    with pytest.raises(UnknownNameError, match="Did you mean 'as_of'"):
        launch("daily", {"as_off": DAY}, archive=where["archive"])
    with pytest.raises(UnknownNameError):
        launch("daily", {"as_of": DAY, "__import__('os').system('touch x') or a": 1},
               archive=where["archive"])
    assert len(manifests(where)) == 1                    # the refused launches archived nothing


SECRETS = {"TELEGRAM_BOT_TOKEN": "123456:very-secret-token-value",
           "STRATEGY_ENGINE_API_TOKEN": "api-token-0123456789"}


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, nse_dir) -> dict:
    """An archive of two runs of the day, shared by the tamper tests (each tampers with a copy) and the
    secrets test: the second run has secret values in its environment."""
    t = tmp_path_factory.mktemp("two-runs")
    where = {"warehouse": f"duckdb:///{t}/wh.duckdb", "archive": str(t / "archive"), "tmp": t}
    assert daily(where, "--as-of", DAY, "--symbols", "TCS", "INFY").returncode == 0
    secret = daily(where, "--as-of", DAY, "--symbols", "TCS", env={**os.environ, **SECRETS})
    assert secret.returncode == 0, secret.stdout + secret.stderr
    return {"archive": Path(where["archive"]), "secret_run": secret}


@pytest.mark.parametrize("target", ["daily_signals.ipynb", "manifest.json"])
def test_one_changed_byte_fails_audit_and_names_the_run(two_runs, tmp_path, target):
    """RELIABILITY 5: one changed byte of a notebook or manifest fails `audit verify`, naming the run."""
    archive = tmp_path / "archive"
    shutil.copytree(two_runs["archive"], archive)
    good = run_cli("audit", "verify", "--archive", archive)
    assert good.returncode == 0, good.stdout
    victim = sorted(archive.rglob(target))[0]
    run_id = victim.parent.parent.name
    os.chmod(victim, 0o644)
    data = bytearray(victim.read_bytes())
    i = data.index(b"2024-11-22")
    data[i] = ord("3")
    victim.write_bytes(bytes(data))
    r = run_cli("audit", "verify", "--archive", archive)
    assert r.returncode == 1 and run_id in r.stdout, r.stdout


@pytest.mark.skipif(FAKETIME is None, reason="faketime not installed (make test installs it as root)")
def test_same_as_of_on_another_day_gives_the_same_signals(rerun):
    """RELIABILITY 20: with the clock faked (libfaketime), as_of=D gives the same output."""
    assert rerun["faked"] and rerun["second"].returncode == 0
    assert rerun["after_ids"] == rerun["before_ids"]
    starts = sorted(m["started_at"] for m in manifests(rerun["where"]))
    assert starts[-1].startswith("2031-03-03"), starts          # the clock really was faked for the first run


def test_shards_union_equals_the_unsharded_run(where, nse_dir):
    whole = {**where, "warehouse": f"duckdb:///{where['tmp']}/whole.duckdb",
             "archive": str(where["tmp"] / "whole")}
    assert daily(whole, "--as-of", DAY).returncode == 0
    procs = []
    for i in range(3):
        env = {**os.environ, "CLOUD_RUN_TASK_INDEX": str(i), "CLOUD_RUN_TASK_COUNT": "3",
               "CLOUD_RUN_EXECUTION": "exec-1"}
        procs.append(subprocess.Popen(
            [str(Path(sys.executable).parent / "strategy-engine"), "run", "daily", "--as-of", DAY,
             "--warehouse", where["warehouse"], "--archive", where["archive"],
             "--no-log-output"], env=env, cwd=ROOT,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, out + err
    q = ("select date, strategy, symbol, signal, confidence, signal_id, timestamp, metadata from "
         "signals_current order by all")
    assert rows(where, q) == rows(whole, q)
    assert sorted(r[0] for r in rows(where, "select shard from runs")) == [0, 1, 2]
    ms = manifests(where)
    assert len({m["run_id"] for m in ms}) == 3 and {m["cloud_run"]["execution"] for m in ms} == {"exec-1"}


def test_archive_holds_no_secrets(two_runs):
    """RELIABILITY 11: a scan of every archived object finds no secret value."""
    r = two_runs["secret_run"]
    assert scan_for_secrets(open_archive(str(two_runs["archive"])), SECRETS) == []
    assert all(v not in r.stdout + r.stderr for v in SECRETS.values())


def test_trained_model_is_archived_and_the_daily_run_records_the_hash_it_loaded(where, nse_dir):
    env = {**os.environ, "STRATEGY_ENGINE_MODELS": str(where["tmp"] / "models")}
    r = run_cli("run", "train", "--as-of", DAY, "--strategies", "lstm", "--symbols", *SYMBOLS[:4],
                "--archive", where["archive"], env=env)                   # a small fit: 4 symbols
    assert r.returncode == 0, r.stdout + r.stderr
    [train] = manifests(where)
    [model] = train["models"]
    assert model["kind"] == "lstm" and len(model["model_hash"]) == 64 and model["data_hash"]
    folder = Path(where["archive"], "2024/11/22", train["run_id"], "attempt-1")
    # archived beside the run, hashes in the manifest
    for rel, sha in train["artifacts"].items():
        assert rel.startswith(f"lstm/{model['model_hash']}/")
        assert hashlib.sha256((folder / "artifacts" / rel).read_bytes()).hexdigest() == sha
    d = daily(where, "--as-of", DAY, "--strategies", "lstm", env=env)
    assert d.returncode == 0, d.stdout + d.stderr
    daily_manifest = [m for m in manifests(where) if m["kind"] == "daily"][0]
    assert [m["model_hash"] for m in daily_manifest["models"]] == [model["model_hash"]]
    assert run_cli("audit", "verify", "--archive", where["archive"]).returncode == 0
    # a model file replaced after the run
    swapped = folder / "artifacts" / sorted(train["artifacts"])[0]
    swapped.chmod(0o644)
    swapped.write_bytes(swapped.read_bytes() + b"\0")
    v = run_cli("audit", "verify", "--archive", where["archive"])
    assert v.returncode == 1 and train["run_id"] in v.stdout and "artifact" in v.stdout, v.stdout


def test_make_run_on_a_bare_clone_runs_the_synthetic_universe_twice_the_same(where):
    """No NSE sample beside the repository: `make run`'s command runs the daily job on synthetic data."""
    env = {**os.environ, "STRATEGY_ENGINE_DATA": str(where["tmp"] / "no-such-folder")}
    first = daily(where, "--as-of", "latest", "--no-log-output", "--no-alerts", env=env)
    assert first.returncode == 0 and first.stdout.startswith("succeeded:"), first.stdout + first.stderr
    [nb] = Path(where["archive"]).rglob("daily_signals.ipynb")
    assert "SYNTHETIC demo data" in nb.read_text()
    table = "select run_id, symbol, strategy, signal, confidence from signals_current order by all"
    before = rows(where, table)
    assert before and all(s.startswith("SYN") for _, s, *_ in before)
    again = daily(where, "--as-of", "latest", "--no-log-output", "--no-alerts", env=env)
    assert again.returncode == 0 and rows(where, table) == before              # a second run changes nothing


def test_sigterm_mid_run_is_archived_as_killed(where, nse_dir):
    """Cloud Run's task timeout sends SIGTERM: the run is archived `killed` (exit 5), chained, and verifies.
    RELIABILITY 8: SIGTERM mid-run (a Cloud Run task timeout) is archived as killed, in bounded time."""
    tmp = where["tmp"] / "tmp"
    tmp.mkdir()
    # where the launcher's output notebook appears
    env = {**os.environ, "TMPDIR": str(tmp)}
    proc = subprocess.Popen([str(Path(sys.executable).parent / "strategy-engine"), "run", "daily", "--as-of",
                             DAY, "--warehouse", where["warehouse"], "--archive", where["archive"],
                             "--no-log-output", "--no-alerts"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    deadline = time.monotonic() + 120
    # papermill has started the notebook
    while not list(tmp.glob("strategy-engine-*/daily_signals.ipynb")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 5 and out.startswith("killed:") and "SIGTERM" in out, out + err
    [m] = manifests(where)
    assert m["status"] == "killed" and "SIGTERM" in m["error"] and m["notebook_sha256"]
    assert run_cli("audit", "verify", "--archive", where["archive"]).returncode == 0


def test_a_usage_error_exits_2_and_kills_the_kernel_booted_first(where, tmp_path):
    """The kernel boots before the flags are checked (the command's head start); a command line that cannot
    run exits 2 with its did-you-mean, archives nothing and leaves no kernel behind."""
    env = {**os.environ, "USAGE_ERROR_TEST": str(tmp_path)}
    r = daily(where, "--as-of", DAY, "--strategies", "momentun", env=env)
    assert r.returncode == 2 and "--strategies" in r.stderr, r.stderr
    assert "Did you mean 'momentum'" in r.stderr, r.stderr
    assert manifests(where) == [] and processes_with_env("USAGE_ERROR_TEST", str(tmp_path)) == []
