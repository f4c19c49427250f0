"""Shared fixtures: the real NSE sample, the installed console script, small notebook templates."""
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from strategy_engine.core import sample_data_dir

ROOT = Path(__file__).resolve().parent.parent
CLI = Path(sys.executable).parent / "strategy-engine"


@pytest.fixture(scope="session", autouse=True)
def default_warehouse(tmp_path_factory):
    """Runs not pointed elsewhere index records in a throwaway warehouse, never the checkout's runs/."""
    import os
    if "STRATEGY_ENGINE_WAREHOUSE" not in os.environ:
        os.environ["STRATEGY_ENGINE_WAREHOUSE"] = (
            f"duckdb:///{tmp_path_factory.mktemp('default-warehouse')}/wh.duckdb"
        )
    yield os.environ["STRATEGY_ENGINE_WAREHOUSE"]


@pytest.fixture(scope="session", autouse=True)
def parsed_bars_cache(tmp_path_factory):
    """The parsed-file cache of the runs tests start lives with the tests' temporary files, not in ~/.cache
    (copied CSVs in fresh folders would add entries there on every run)."""
    import os
    if "STRATEGY_ENGINE_BARS_CACHE" not in os.environ:
        os.environ["STRATEGY_ENGINE_BARS_CACHE"] = str(tmp_path_factory.mktemp("bars-cache"))
    yield os.environ["STRATEGY_ENGINE_BARS_CACHE"]


@pytest.fixture(scope="session")
def nse_dir() -> Path:
    path = sample_data_dir()
    if path is None:
        pytest.skip("the real NSE sample (../shared/data/nse) is not beside the repository")
    return path


def run_cli(*args: str, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the installed `strategy-engine` console script as a user would."""
    return subprocess.run([str(CLI), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT, env=env)


def run_cli_many(calls: list[tuple[tuple, dict | None]],
                 timeout: float = 300) -> list[subprocess.CompletedProcess]:
    """Run independent `strategy-engine` commands at once (each `(args, env)`), results in order: the suite's
    fast path for cases that share nothing (their own archive and warehouse each)."""
    procs = [subprocess.Popen([str(CLI), *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, cwd=ROOT, env=env) for args, env in calls]
    done = []
    for (args, _), proc in zip(calls, procs):
        out, err = proc.communicate(timeout=timeout)
        done.append(subprocess.CompletedProcess([str(CLI), *map(str, args)], proc.returncode, out, err))
    return done


def make_template(path: Path, parameters: str, *cells: str) -> Path:
    """Write a notebook with a cell tagged `parameters` followed by code cells."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    p = nbformat.v4.new_code_cell(parameters)
    p.metadata["tags"] = ["parameters"]
    nb.cells = [p, *(nbformat.v4.new_code_cell(c) for c in cells)]
    nbformat.write(nb, str(path))
    return path


def processes_with_env(name: str, value: str) -> list[int]:
    """Live processes whose environment holds `name=value` (Linux /proc), e.g. kernels left running."""
    needle, found = f"{name}={value}".encode(), []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit(): continue
        try: env = (d / "environ").read_bytes()
        except OSError: continue                              # gone meanwhile, or not ours to read
        if needle in env.split(b"\0"): found.append(int(d.name))
    return found


# ------------------------------------------------------------------ how `make pytest` spreads the suite
# Two xdist workers, `--dist loadgroup`, grouped here (`unit_of`): a file is one unit of work (its module
# fixtures built once, in one worker) except the files in SPREAD, whose tests go out one by one, but for
# those SHARED lists (they share a module fixture). Units start in the order of COSTLIEST_FIRST (CPU seconds
# per file and per test, measured for issue 14), then in collection order: the long ones start early, so no
# worker is left alone with a long file at the end. A stale order costs time only, never a result. (xdist
# 3.8's own loadgroup marks have no effect under pytest 9: it renames `item._nodeid`, which pytest 9 no longer
# reads.)
SPREAD = ("test_daily_run.py", "test_cli.py", "test_run_records.py", "test_schedule.py")
SHARED = {
    "test_daily_run.py::test_one_changed_byte_fails_audit_and_names_the_run": "two_runs",
    "test_daily_run.py::test_archive_holds_no_secrets": "two_runs",
    "test_daily_run.py::test_rerun_is_a_second_attempt_with_the_same_rows_and_both_are_kept": "rerun",
    "test_daily_run.py::test_same_as_of_on_another_day_gives_the_same_signals": "rerun",
    "test_run_records.py::"
    "test_a_crash_at_every_step_leaves_nothing_or_what_reconcile_and_the_next_run_complete": "crash_loop",
    "test_run_records.py::test_history_is_kept_and_the_day_is_never_a_mixture": "history",
    "test_run_records.py::test_other_data_is_another_run_that_replaces_nothing": "history",
    "test_run_records.py::test_manifest_and_runs_row_are_complete": "history",
    "test_run_records.py::test_rebuild_from_the_archive_reproduces_the_tables_row_for_row": "history",
}
COSTLIEST_FIRST = (
    "test_run_records.py::"
    "test_a_crash_at_every_step_leaves_nothing_or_what_reconcile_and_the_next_run_complete",
    "test_service.py",
    "test_daily_run.py::test_trained_model_is_archived_and_the_daily_run_records_the_hash_it_loaded",
    "test_daily_run.py::test_same_as_of_on_another_day_gives_the_same_signals",
    "test_daily_run.py::test_rerun_is_a_second_attempt_with_the_same_rows_and_both_are_kept",
    "test_daily_run.py::test_shards_union_equals_the_unsharded_run",
    "test_daily_run.py::test_make_run_on_a_bare_clone_runs_the_synthetic_universe_twice_the_same",
    "test_daily_run.py::test_one_changed_byte_fails_audit_and_names_the_run",
    "test_daily_run.py::test_archive_holds_no_secrets",
    "test_run_records.py::test_history_is_kept_and_the_day_is_never_a_mixture",
    "test_run_records.py::test_other_data_is_another_run_that_replaces_nothing",
    "test_run_records.py::test_manifest_and_runs_row_are_complete",
    "test_run_records.py::test_rebuild_from_the_archive_reproduces_the_tables_row_for_row",
    "test_reliability.py", "test_market_fetch.py", "test_warehouse_contract.py", "test_backfill.py",
    "test_strategy_registry.py", "test_market_store.py",
    "test_cli.py::test_run_validate_and_daily_on_us_data_are_quiet_and_follow_the_calendar_given",
    "test_schedule.py::test_the_report_of_a_day_matches_the_warehouse_rows_of_that_days_run",
    "test_schedule.py::test_a_stale_day_stops_after_validation_and_raises_one_alert",
    "test_schedule.py::test_a_holiday_skips_every_stage",
    "test_warehouse_bigquery.py", "test_dashboard.py", "test_infra.py", "test_notebooks.py",
)


def _test_key(nodeid: str) -> tuple[str, str]:
    "(file name, 'file::test' without its parameters) of a test id."
    path, _, test = nodeid.partition("::")
    file = Path(path).name
    return file, f"{file}::{test.split('[')[0]}"


def unit_of(nodeid: str) -> str:
    "The unit of work a test belongs to: its file; in a SPREAD file the test alone, or its SHARED group."
    file, test = _test_key(nodeid)
    if file not in SPREAD: return nodeid.partition("::")[0]
    return f"{file}::{SHARED[test]}" if test in SHARED else nodeid


def _rank(item: pytest.Item) -> int:
    "Where `item` starts: its place in COSTLIEST_FIRST (by test, else by file), or after every listed one."
    file, test = _test_key(item.nodeid)
    return next((i for i, entry in enumerate(COSTLIEST_FIRST) if entry in (file, test)), len(COSTLIEST_FIRST))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The costliest units first (each worker collects, then reports this order to the scheduler)."""
    items.sort(key=_rank)                          # stable: the rest keep their collection order


@pytest.hookimpl(optionalhook=True)             # a run without xdist (-p no:xdist) does not know this hook
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """With `--dist loadgroup`: units of work by `unit_of`, handed out in collection order."""
    if config.getoption("dist") != "loadgroup": return None
    from xdist.scheduler import LoadScopeScheduling

    class CostliestFirst(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str: return unit_of(nodeid)

    config.option.loadscopereorder = False         # collection order, not "most tests first"
    return CostliestFirst(config, log)
