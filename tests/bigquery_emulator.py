"""Test support: BigQuery's SQL run on a local DuckDB (sqlglot transpiles each statement): not for production.

`BigQueryOnDuckDB` is `BigQueryWarehouse` with only its four BigQuery calls (create table, stage, drop
stage, query) replaced, so every SQL string, parameter and read path of the production class runs: it checks
our SQL, not BigQuery. `bigquery_on_duckdb` is also what the local REST endpoint of
tests/test_warehouse_bigquery.py runs its query jobs with.
"""
from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import duckdb
import pyarrow as pa

from strategy_engine.warehouse import BigQueryWarehouse, TableSpec, _arrow, bigquery_ddl
from strategy_engine.warehouse.schema import _dq


def _rollback(con) -> None:
    try:
        con.execute("ROLLBACK")
    except duckdb.Error:
        pass                        # already rolled back (a failed COMMIT) or never begun


def bigquery_on_duckdb(con, sql: str, params: Mapping[str, Any] | None = None,
                       between: Callable[[str], None] | None = None) -> pa.Table | None:
    "Run BigQuery-dialect SQL on DuckDB, transpiled statement by statement by sqlglot; the last result."
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import ErrorLevel
    params, result, in_tx = dict(params or {}), None, False
    try:
        for tree in sqlglot.parse(sql, read="bigquery"):
            if tree is None:
                continue
            for prop in list(tree.find_all(exp.PartitionedByProperty, exp.ClusterProperty)):
                prop.pop()                                  # storage layout only
            text = tree.sql(dialect="duckdb", unsupported_level=ErrorLevel.RAISE)
            used = {k: v for k, v in params.items() if re.search(rf"\${k}\b", text)}
            cursor = con.execute(text, used) if used else con.execute(text)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)     # "Arrow output on a DB-API result: a copy"
                result = cursor.to_arrow_table() if cursor.description else None
            ended = isinstance(tree, (exp.Commit, exp.Rollback))
            in_tx = isinstance(tree, exp.Transaction) or (in_tx and not ended)
            if in_tx and between is not None:
                between(f"after {type(tree).__name__}")
    except BaseException:
        if in_tx:
            _rollback(con)
        raise
    return result


class BigQueryOnDuckDB(BigQueryWarehouse):
    "`BigQueryWarehouse` whose SQL runs on a local DuckDB through sqlglot: it checks our SQL, not BigQuery."

    def __init__(self, project: str = "local-project", dataset: str = "strategy_engine", con=None):
        super().__init__(project, dataset, attempts=1)
        self.uri = f"bigquery://{project}/{dataset} (SQL run on local DuckDB)"
        self.con = con if con is not None else duckdb.connect()
        self.con.execute("SET TimeZone = 'UTC'")
        self.con.execute(f"ATTACH IF NOT EXISTS ':memory:' AS {_dq(project)}")
        self.con.execute(f"CREATE SCHEMA IF NOT EXISTS {_dq(project)}.{_dq(dataset)}")

    def _create(self, spec: TableSpec) -> None:
        bigquery_on_duckdb(self.con, bigquery_ddl(spec, self.project, self.dataset))

    def _create_view(self, name: str, sql: str) -> None:
        bigquery_on_duckdb(self.con, f"CREATE VIEW IF NOT EXISTS {self._ref(name)} AS {sql}")

    def _stage(self, spec: TableSpec, stage: str, frame) -> None:
        self.con.register("_load_file", _arrow(frame, spec))      # what the Parquet load file holds
        try:
            self.con.execute(f"CREATE TABLE {_dq(self.project)}.{_dq(self.dataset)}.{_dq(stage)} "
                             "AS SELECT * FROM _load_file")
        finally:
            self.con.unregister("_load_file")

    def _drop(self, stage: str) -> None:
        self.con.execute(f"DROP TABLE IF EXISTS {_dq(self.project)}.{_dq(self.dataset)}.{_dq(stage)}")

    def _query(self, sql: str, params: Mapping[str, Any]) -> pa.Table:
        return bigquery_on_duckdb(self.con, sql, params, between=self._step)

    def close(self) -> None:
        "Close the local DuckDB."
        self.con.close()
