"""Every registered warehouse backend passes `check_warehouse`, and a backend is added by adding one module.

The BigQuery backend runs here through `bigquery_emulator.BigQueryOnDuckDB` (its exact SQL, transpiled to
DuckDB); tests/test_warehouse_bigquery.py drives the real client against a local REST endpoint.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time

import pytest
from bigquery_emulator import BigQueryOnDuckDB

import strategy_engine.warehouse as warehouse
from strategy_engine.core import ConfigError, expect_error
from strategy_engine.warehouse import (
    BACKENDS,
    DuckDBWarehouse,
    _same_snapshot,
    backends,
    check_warehouse,
    open_warehouse,
)

pytestmark = pytest.mark.timeout(300)

# How the contract opens each backend here. A backend registered without an entry fails the first test.
TEST_INSTANCES = {"duckdb": lambda tmp: DuckDBWarehouse(tmp / "wh.duckdb"),
                  "bigquery": lambda tmp: BigQueryOnDuckDB()}


@pytest.fixture(scope="module")
def reference():
    "The contract's final tables on an in-memory DuckDB: what every backend must end with."
    return check_warehouse(DuckDBWarehouse())


def test_every_registered_backend_has_a_contract_run():
    assert set(backends()) == set(TEST_INSTANCES), "a new backend needs an entry in TEST_INSTANCES"


@pytest.mark.parametrize("scheme", sorted(TEST_INSTANCES))
def test_backend_passes_the_contract(scheme, tmp_path, reference):
    wh = TEST_INSTANCES[scheme](tmp_path)
    assert isinstance(wh, BACKENDS[scheme]) and wh.scheme == scheme
    facts = check_warehouse(wh)
    _same_snapshot(facts["tables"], reference["tables"], f"{scheme} vs the in-memory DuckDB")
    assert facts["counts"] == reference["counts"]


def test_a_backend_is_one_module(tmp_path, monkeypatch, reference):
    """A module named after its scheme, dropped into the package, is found by open_warehouse and passes the
    contract: no other file is edited."""
    (tmp_path / "duckmem.py").write_text(textwrap.dedent('''
        from strategy_engine.warehouse.base import register_backend
        from strategy_engine.warehouse.duckdb import DuckDBWarehouse

        @register_backend("duckmem")
        class MemoryWarehouse(DuckDBWarehouse):
            "Always in memory, whatever the path."
            uri_forms = "duckmem://"

            @classmethod
            def from_uri(cls, parts, options, shown):
                return cls(":memory:", **options)
    '''))
    monkeypatch.setattr(warehouse, "__path__", [*warehouse.__path__, str(tmp_path)])
    try:
        wh = open_warehouse("duckmem://anything")
        assert type(wh).__name__ == "MemoryWarehouse" and "duckmem" in backends()
        _same_snapshot(check_warehouse(wh)["tables"], reference["tables"], "a backend added as a module")
    finally:
        monkeypatch.undo()
        BACKENDS.pop("duckmem", None)
        sys.modules.pop("strategy_engine.warehouse.duckmem", None)
    expect_error(lambda: open_warehouse("duckmem://x"), "unknown scheme 'duckmem'", "duckdb:///:memory:",
                 exc=ConfigError)                                  # gone with its module
    assert set(backends()) == set(TEST_INSTANCES)


def test_readers_survive_another_process_opening_the_file(tmp_path):
    """Four threads read while another process opens and closes the same DuckDB file, each of its counts
    opening it once per table (DuckDB's 'unique file handle conflict' is retried like a lock)."""
    path = tmp_path / "wh.duckdb"
    DuckDBWarehouse(path)
    churn = (f"import time; from strategy_engine.warehouse import DuckDBWarehouse as W; t = time.time()\n"
             f"while time.time() - t < 2: W({str(path)!r}, lock_timeout=60).counts()")
    other = subprocess.Popen([sys.executable, "-c", churn])
    failures: list[str] = []
    reads = [0]

    def reader() -> None:
        while other.poll() is None:
            try:
                DuckDBWarehouse(path, lock_timeout=60).counts()
                reads[0] += 1
            except Exception as e:
                failures.append(f"{type(e).__name__}: {e}")
            # a gap between reads: four threads reading back to back kept the file open in this process, and
            # the other one, starved of it, took 5-58 s for its 2 s of opening it
            time.sleep(0.002)
    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert other.returncode == 0 and reads[0] > 10 and not failures, failures[:3]
