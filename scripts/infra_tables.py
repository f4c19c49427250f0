#!/usr/bin/env python3
"""Write infra/tables.json from strategy_engine.warehouse.TABLES: the BigQuery tables Terraform creates.

The warehouse code creates its tables with `bigquery_table(spec)` (REQUIRED columns, monthly partitions on
`spec.partition`, clustering on `spec.cluster`); Terraform must create exactly those, so the JSON is generated
from the same specs and tests/test_infra.py fails when it is stale. Usage: scripts/infra_tables.py [--check]
"""
import importlib
import json
import pkgutil
import sys
from pathlib import Path

import strategy_engine
from strategy_engine.warehouse import TABLES

OUT = Path(__file__).resolve().parents[1] / "infra" / "tables.json"


def load_all_tables() -> dict:
    "TABLES after importing every module of the package (modules add tables with register_table on import)."
    for m in pkgutil.walk_packages(strategy_engine.__path__, "strategy_engine."):
        importlib.import_module(m.name)
    return TABLES


def tables() -> dict:
    "Per table: schema (name, type, mode), monthly partitioning field, clustering, as Terraform reads them."
    load_all_tables()
    return {name: {"schema": [{"name": c, "type": t, "mode": "REQUIRED" if c in spec.not_null else "NULLABLE"}
                              for c, t in spec.columns.items()],
                   "partition": spec.partition, "partition_type": "MONTH", "cluster": list(spec.cluster)}
            for name, spec in TABLES.items()}


def render() -> str:
    return json.dumps(tables(), indent=1) + "\n"


if __name__ == "__main__":
    if sys.argv[1:] == ["--check"]:
        if OUT.read_text() != render():
            sys.exit(f"{OUT} is stale: run scripts/infra_tables.py")
    else:
        OUT.write_text(render())
