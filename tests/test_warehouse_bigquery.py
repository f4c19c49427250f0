"""BigQuery backend: the real google-cloud-bigquery client against a local server speaking its REST API.

The endpoint (`FakeBigQuery`) records every request and keeps its tables in DuckDB: table resources
become DuckDB tables, Parquet load jobs are inserted, and query jobs run through
`bigquery_emulator.bigquery_on_duckdb` (sqlglot, BigQuery -> DuckDB). So these tests prove what the client
sends (paths, table resources with partitioning and clustering, load files, the SQL and its typed
parameters), that our code handles BigQuery's replies (rows, errors, 409s, retries), and that the
whole warehouse contract holds through the client. They do not prove BigQuery's own semantics,
quotas, permissions or concurrency limits: the endpoint is ours, not Google's.
"""
from __future__ import annotations

import datetime as dt
import email.parser
import io
import json
import math
import re
import threading
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from bigquery_emulator import bigquery_on_duckdb
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from strategy_engine.core import DataError, expect_error
from strategy_engine.data import load_bars
from strategy_engine.strategies.base import load_config, run_strategy
from strategy_engine.warehouse import (
    RUN_TABLES,
    TABLES,
    BigQueryWarehouse,
    DuckDBWarehouse,
    WarehouseError,
    _arrow,
    _conform,
    _run_batches,
    _same,
    _same_snapshot,
    bigquery_write_script,
    check_warehouse,
    example_run,
    example_weights,
    shard_symbols,
)

pytestmark = pytest.mark.timeout(300)

PROJECT, DATASET = "test-project", "strategy_engine"
_DUCK = {"STRING": "VARCHAR", "INT64": "BIGINT", "INTEGER": "BIGINT", "FLOAT64": "DOUBLE", "FLOAT": "DOUBLE",
         "BOOL": "BOOLEAN", "BOOLEAN": "BOOLEAN", "DATE": "DATE", "TIMESTAMP": "TIMESTAMPTZ", "JSON": "JSON"}


def _arrow_to_bq(t: pa.DataType) -> str:
    if pa.types.is_string(t) or pa.types.is_large_string(t): return "STRING"
    if pa.types.is_integer(t): return "INTEGER"
    if pa.types.is_floating(t): return "FLOAT"
    if pa.types.is_boolean(t): return "BOOLEAN"
    if pa.types.is_date(t): return "DATE"
    if pa.types.is_timestamp(t): return "TIMESTAMP"
    raise AssertionError(f"the fake endpoint cannot encode {t}")


def _cell(v, typ: str, int64_ts: bool):
    "One value in BigQuery's REST row format (everything is a string or null)."
    if v is None: return None
    if typ == "FLOAT":
        return (
            "NaN"
            if math.isnan(v)
            else "Infinity"
            if v == math.inf
            else "-Infinity"
            if v == -math.inf
            else repr(float(v))
        )
    if typ == "BOOLEAN": return "true" if v else "false"
    if typ == "DATE": return v.isoformat()
    if typ == "TIMESTAMP":
        micros = int((v - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) / dt.timedelta(microseconds=1))
        return str(micros) if int64_ts else repr(micros / 1e6)
    return str(v)


def _param(p: dict):
    "A REST query parameter as a Python value for DuckDB."
    typ, val = p["parameterType"], p.get("parameterValue", {})
    if typ["type"] == "ARRAY":
        return [_scalar(typ["arrayType"]["type"], x.get("value")) for x in val.get("arrayValues", [])]
    return _scalar(typ["type"], val.get("value"))


def _scalar(typ: str, v: str | None):
    if v is None: return None
    parse: dict[str, Callable[[str], object]] = {
        "INT64": int,
        "FLOAT64": float,
        "BOOL": lambda s: s == "true",
        "DATE": dt.date.fromisoformat,
    }
    return parse.get(typ, str)(v)


class FakeBigQuery:
    "A local HTTP endpoint answering the BigQuery REST calls the client makes, backed by DuckDB."

    def __init__(self, project: str = PROJECT):
        self.project = project
        self.con = duckdb.connect()
        self.con.execute("SET TimeZone = 'UTC'")
        self.con.execute(f'ATTACH \':memory:\' AS "{project}"')
        self.tables: dict[tuple[str, str], dict] = {}
        self.jobs: dict[str, dict] = {}
        self.uploads: dict[str, dict] = {}
        self.requests: list[dict] = []
        self.query_errors: list[str] = []         # messages of the next query jobs to fail (400 invalidQuery)
        self.fail_queries_matching: str | None = None
        # exceptions inside the fake itself: a test bug, checked at teardown
        self.failures: list[str] = []
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                try:
                    with fake.lock:
                        lower = {k.lower(): v for k, v in self.headers.items()}
                        status, out, headers = fake.route(self.command, self.path, lower, body)
                # answer at once (a dropped connection would be retried for minutes)
                except Exception as e:
                    fake.failures.append(f"{self.command} {self.path}: {type(e).__name__}: {e}")
                    status, out, headers = fake.error(400, "invalid", f"fake endpoint failure: {e}")
                data = b"" if out is None else json.dumps(out).encode()
                self.send_response(status)
                for k, v in {"Content-Type": "application/json", "Content-Length": str(len(data)),
                             **headers}.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)
            do_GET = do_POST = do_PUT = do_DELETE = _handle

            def log_message(self, *args): pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def client(self) -> bigquery.Client:
        return bigquery.Client(project=self.project, credentials=AnonymousCredentials(),
                               client_options={"api_endpoint": self.url})

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.con.close()

    # ---- REST ----
    def route(self, method: str, raw_path: str, headers: dict, body: bytes):
        url = urlsplit(raw_path)
        path, query = url.path, {k: v[0] for k, v in parse_qs(url.query).items()}
        record: dict[str, Any] = {"method": method, "path": path, "query": query, "headers": headers,
                                  "body": body}
        self.requests.append(record)
        if path.startswith("/upload/"): return self.upload(method, query, headers, body, record)
        m = re.fullmatch(r"/bigquery/v2/projects/([^/]+)/(.*)", path)
        assert m and m.group(1) == self.project, f"unexpected request {method} {path}"
        rest = m.group(2)
        record["json"] = json.loads(body) if body else None
        if mt := re.fullmatch(r"datasets/([^/]+)/tables", rest):
            return (
                self.create_table(mt.group(1), record["json"])
                if method == "POST"
                else self.unknown(method, path)
            )
        if mt := re.fullmatch(r"datasets/([^/]+)/tables/([^/]+)", rest):
            key = (mt.group(1), mt.group(2))
            if method == "GET":
                if key not in self.tables: return self.error(404, "notFound", f"Not found: Table {key}")
                return 200, self.tables[key], {}
            if method == "DELETE":
                if key not in self.tables: return self.error(404, "notFound", f"Not found: Table {key}")
                del self.tables[key]
                self.con.execute(f'DROP TABLE "{self.project}"."{key[0]}"."{key[1]}"')
                return 204, None, {}
        if method == "POST" and rest == "queries": return self.query(record["json"])
        if mt := re.fullmatch(r"jobs/([^/]+)", rest):
            return (
                (200, self.jobs[mt.group(1)], {})
                if mt.group(1) in self.jobs
                else self.error(404, "notFound", "no such job")
            )
        return self.unknown(method, path)

    def unknown(self, method, path):
        raise AssertionError(f"the fake endpoint does not serve {method} {path}")

    @staticmethod
    def error(code: int, reason: str, message: str):
        status = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 409: "ALREADY_EXISTS"}[code]
        return code, {"error": {"code": code, "message": message, "status": status,
                                "errors": [{"reason": reason, "message": message, "domain": "global"}]}}, {}

    def create_table(self, dataset: str, resource: dict):
        ref = resource["tableReference"]
        key = (dataset, ref["tableId"])
        if key in self.tables:
            return self.error(409, "duplicate", f"Already Exists: Table {PROJECT}:{dataset}.{ref['tableId']}")
        self.con.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.project}"."{dataset}"')
        # a view: its standard-SQL query, run as BigQuery would (transpiled)
        if "view" in resource:
            name = f"`{self.project}.{dataset}.{ref['tableId']}`"
            bigquery_on_duckdb(self.con, f"CREATE VIEW {name} AS {resource['view']['query']}")
            self.tables[key] = {**resource, "kind": "bigquery#table", "type": "VIEW",
                                "id": f"{PROJECT}:{dataset}.{ref['tableId']}"}
            return 200, self.tables[key], {}
        cols = ", ".join(f'"{f["name"]}" '
                         f'{_DUCK[f["type"]]}{" NOT NULL" if f.get("mode") == "REQUIRED" else ""}'
                         for f in resource["schema"]["fields"])
        self.con.execute(f'CREATE TABLE "{self.project}"."{dataset}"."{ref["tableId"]}" ({cols})')
        self.tables[key] = {**resource, "kind": "bigquery#table",
                            "id": f"{PROJECT}:{dataset}.{ref['tableId']}"}
        return 200, self.tables[key], {}

    def upload(self, method: str, query: dict, headers: dict, body: bytes, record: dict):
        if query.get("uploadType") == "multipart":
            msg = email.parser.BytesParser().parsebytes(
                b"Content-Type: " + headers["content-type"].encode() + b"\r\n\r\n" + body
            )
            # type: ignore[union-attr]
            meta, data = (part.get_payload(decode=True) for part in msg.get_payload())
            return self.load(json.loads(meta), data, record)  # type: ignore[arg-type]
        if query.get("uploadType") == "resumable" and method == "POST":
            uid = uuid.uuid4().hex
            self.uploads[uid] = {"meta": json.loads(body), "data": b""}
            where = (f"{self.url}/upload/bigquery/v2/projects/{self.project}/jobs"
                     f"?uploadType=resumable&upload_id={uid}")
            return 200, None, {"Location": where}
        if query.get("uploadType") == "resumable" and method == "PUT":
            up = self.uploads[query["upload_id"]]
            up["data"] += body
            total = headers.get("content-range", "").rsplit("/", 1)[-1]
            if total != "*" and len(up["data"]) == int(total):
                return self.load(up["meta"], up["data"], record)
            return 308, None, {"Range": f"bytes=0-{len(up['data']) - 1}"}
        return self.unknown(method, "upload")

    def load(self, job: dict, data: bytes, record: dict):
        cfg = job["configuration"]["load"]
        record["json"], record["data"] = job, data
        assert cfg["sourceFormat"] == "PARQUET", cfg
        dest = cfg["destinationTable"]
        table = pq.read_table(io.BytesIO(data))
        self.con.register("_upload", table)
        cols = ", ".join(f'"{c}"' for c in table.column_names)
        target = f'"{self.project}"."{dest["datasetId"]}"."{dest["tableId"]}"'
        self.con.execute(f"INSERT INTO {target} ({cols}) SELECT {cols} FROM _upload")
        self.con.unregister("_upload")
        job_id = job.get("jobReference", {}).get("jobId") or uuid.uuid4().hex
        done = {**job, "jobReference": {"projectId": self.project, "jobId": job_id, "location": "US"},
                "status": {"state": "DONE"}, "statistics": {"load": {"outputRows": str(table.num_rows)}}}
        self.jobs[job_id] = done
        return 200, done, {}

    def query(self, req: dict):
        sql = req["query"]
        if self.query_errors or (self.fail_queries_matching and self.fail_queries_matching in sql):
            msg = self.query_errors.pop(0) if self.query_errors else "Query error: injected failure"
            return self.error(400, "invalidQuery", msg)
        params = {p["name"]: _param(p) for p in req.get("queryParameters", [])}
        try: result = bigquery_on_duckdb(self.con, sql, params)
        except duckdb.Error as e: return self.error(400, "invalidQuery", f"Query error: {e}")
        job_id = uuid.uuid4().hex
        out = {"kind": "bigquery#queryResponse", "jobComplete": True,
               "jobReference": {"projectId": self.project, "jobId": job_id, "location": "US"}}
        if result is not None and "Count" not in result.column_names:
            types = [_arrow_to_bq(f.type) for f in result.schema]
            int64_ts = req.get("formatOptions", {}).get("useInt64Timestamp", False)
            out["schema"] = {"fields": [{"name": f.name, "type": t, "mode": "NULLABLE"}
                                        for f, t in zip(result.schema, types)]}
            out["rows"] = [{"f": [{"v": _cell(v, t, int64_ts)} for v, t in zip(row.values(), types)]}
                           for row in result.to_pylist()]
            out["totalRows"] = str(result.num_rows)
        else:
            out["schema"], out["totalRows"] = {"fields": []}, "0"
        return 200, out, {}

    # ---- helpers for assertions ----
    def calls(self, method: str, pattern: str) -> list[dict]:
        return [r for r in self.requests if r["method"] == method and re.search(pattern, r["path"])]

    def table(self, name: str) -> pd.DataFrame:
        return self.con.sql('SELECT * FROM '
                            f'"{self.project}"."{DATASET}"."{name}"').to_arrow_table().to_pandas()


@pytest.fixture
def fake():
    f = FakeBigQuery()
    yield f
    f.close()
    assert not f.failures, f.failures


def _warehouse(fake: FakeBigQuery, **kw) -> BigQueryWarehouse:
    return BigQueryWarehouse(PROJECT, DATASET, client=fake.client(), **kw)


def test_tables_are_created_partitioned_and_clustered(fake):
    wh = _warehouse(fake)
    assert wh.counts() == dict.fromkeys(TABLES, 0)
    posted = {r["json"]["tableReference"]["tableId"]: r["json"]
              for r in fake.calls("POST", r"/datasets/[^/]+/tables$")}
    views = {name: body for name, body in posted.items() if "view" in body}
    created = {name: body for name, body in posted.items() if "view" not in body}
    assert set(created) == set(TABLES) and set(views) == {f"{t}_current" for t in RUN_TABLES}
    assert set(RUN_TABLES) == {"signals", "target_weights", "performance", "runs"}
    assert all(not v["view"].get("useLegacySql", False) and "ROW_NUMBER()" in v["view"]["query"]
               for v in views.values())
    assert created["signals"]["timePartitioning"] == {"type": "MONTH", "field": "date"}
    assert created["signals"]["clustering"] == {"fields": ["strategy", "symbol", "run_id"]}
    assert created["performance"]["timePartitioning"]["field"] == "date"
    assert created["target_weights"]["clustering"] == {"fields": ["strategy", "symbol", "run_id"]}
    assert created["runs"]["timePartitioning"] == {"type": "MONTH", "field": "as_of"}
    assert created["runs"]["clustering"] == {"fields": ["kind", "status", "run_id"]}
    # market data: the market store's market_bars
    assert "bars" not in created
    for name, spec in TABLES.items():
        fields = created[name]["schema"]["fields"]
        assert [(f["name"], f["type"]) for f in fields] == list(spec.columns.items())
        assert {f["name"] for f in fields if f["mode"] == "REQUIRED"} == set(spec.not_null)
    # a second process finds the tables there: 409 on insert, then the client reads them back
    again = _warehouse(fake)
    assert again.counts() == dict.fromkeys(TABLES, 0)
    # and the views
    assert len(fake.calls("GET", r"/datasets/[^/]+/tables/[^/]+$")) == len(TABLES) + len(RUN_TABLES)
    count_sql = fake.calls("POST", r"/queries$")[-1]["json"]["query"]
    assert count_sql.count("UNION ALL") == len(TABLES) - 1                        # counts() is one query


def test_write_run_requests(fake):
    wh = _warehouse(fake)
    wh.counts()
    fake.requests.clear()
    syms = ["RELIANCE", "TCS", "INFY", "HDFCBANK"]
    run, sig, perf = example_run("2024-11-22", syms, run_id="2024-11-22_daily")
    mine = shard_symbols(syms, (1, 2))
    part = [r for r in sig if r["symbol"] in mine]
    weights = example_weights(part)
    assert weights and wh.write_run(run, part, perf, shard=(1, 2), target_weights=weights) == {
        "signals": 3 * len(mine), "target_weights": len(weights), "performance": 3, "runs": 1}
    batches, owner = _run_batches(run, part, perf, (1, 2), weights)

    # 1. one staging table per target, expiring, unpartitioned, JSON as STRING
    stages = {}
    for r in fake.calls("POST", r"/datasets/strategy_engine/tables$"):
        tid = r["json"]["tableReference"]["tableId"]
        m = re.fullmatch(r"stage_(signals|target_weights|performance|runs)_[0-9a-f]{16}", tid)
        assert m, tid
        name = m.group(1)
        stages[name] = tid
        assert int(r["json"]["expirationTime"]) > 0 and "timePartitioning" not in r["json"]
        assert {f["mode"] for f in r["json"]["schema"]["fields"]} == {"NULLABLE"}
    assert set(stages) == set(RUN_TABLES)
    assert len({t[-16:] for t in stages.values()}) == 1                         # one token per write
    # 2. one Parquet load job per stage, holding exactly the checked rows
    loads = fake.calls("POST", r"^/upload/bigquery/v2/projects/test-project/jobs$")
    assert len(loads) == 4 and all(r["query"]["uploadType"] == "multipart" for r in loads)
    for r in loads:
        cfg = r["json"]["configuration"]["load"]
        name = next(n for n, t in stages.items() if t == cfg["destinationTable"]["tableId"])
        assert cfg["sourceFormat"] == "PARQUET" and cfg["writeDisposition"] == "WRITE_APPEND"
        sent = pq.read_table(io.BytesIO(r["data"]))
        assert sent.equals(_arrow(batches[name], TABLES[name])), name
    # 3. ONE query job: the transaction script, with run_id and shard as typed parameters
    queries = fake.calls("POST", r"/queries$")
    assert len(queries) == 1
    body = queries[0]["json"]
    assert body["query"] == bigquery_write_script(PROJECT, DATASET, stages, owner)[0]
    assert body["useLegacySql"] is False and body["parameterMode"] == "NAMED"
    assert sorted(body["queryParameters"], key=lambda p: p["name"]) == [
        {"name": "attempt", "parameterType": {"type": "INT64"}, "parameterValue": {"value": "1"}},
        {"name": "run_id", "parameterType": {"type": "STRING"},
         "parameterValue": {"value": "2024-11-22_daily"}},
        {"name": "shard", "parameterType": {"type": "INT64"}, "parameterValue": {"value": "1"}}]
    assert "2024-11-22_daily" not in body["query"]
    # 4. the staging tables are deleted afterwards
    deleted = {r["path"].rsplit("/", 1)[-1] for r in fake.calls("DELETE", r"/tables/")}
    assert deleted == set(stages.values())
    # 5. and the targets hold the rows
    got = fake.table("signals").sort_values("symbol")
    assert (
        sorted(got["symbol"].unique()) == sorted(mine)
        and (got["shard"] == 1).all()
        and len(got) == 3 * len(mine)
    )
    assert fake.table("runs")[["run_id", "shard", "shard_count"]].values.tolist() == [
        ["2024-11-22_daily", 1, 2]
    ]
    w = fake.table("target_weights").sort_values(["strategy", "symbol"])
    want = pd.DataFrame(weights).sort_values(["strategy", "symbol"])
    assert w["weight"].tolist() == want["weight"].tolist() and (w["shard"] == 1).all()


def test_concurrent_update_abort_is_retried(fake):
    wh = _warehouse(fake, retry_wait=0.01)
    run, sig, perf = example_run(run_id="R")
    wh.counts()
    fake.query_errors.append("Query error: Transaction is aborted due to concurrent update against table "
                             f"{PROJECT}:{DATASET}.signals. Transaction ID: 61e30eea at [24:9]")
    assert wh.write_run(run, sig, perf)["signals"] == 9
    scripts = [
        r for r in fake.calls("POST", r"/queries$") if r["json"]["query"].startswith("BEGIN TRANSACTION")
    ]
    assert len(scripts) == 2 and scripts[0]["json"]["query"] == scripts[1]["json"]["query"]
    assert wh.counts()["signals"] == 9


def test_failed_script_writes_nothing_and_cleans_up(fake):
    wh = _warehouse(fake, retry_wait=0.01, attempts=3)
    run, sig, perf = example_run(run_id="R")
    wh.write_run(run, sig, perf)
    before = {name: fake.table(name) for name in ("signals", "performance", "runs")}
    fake.requests.clear()
    fake.fail_queries_matching = "BEGIN TRANSACTION"
    changed = [{**r, "confidence": 0.5} for r in sig]
    msg = expect_error(
        lambda: wh.write_run({**run, "status": "failed"}, changed, perf),
        "writing run 'R' attempt 1 shard 0 failed",
        "injected failure",
        "re-running the write is safe",
        exc=WarehouseError,
    )
    print(msg)
    # not a concurrency abort: no retry
    assert len([r for r in fake.calls("POST", r"/queries$")]) == 1
    created = {r["json"]["tableReference"]["tableId"] for r in fake.calls("POST", r"/tables$")}
    deleted = {r["path"].rsplit("/", 1)[-1] for r in fake.calls("DELETE", r"/tables/")}
    assert deleted == created and len(created) == len(RUN_TABLES)
    for name, frame in before.items(): pd.testing.assert_frame_equal(fake.table(name), frame)
    fake.fail_queries_matching = None
    fake.query_errors.extend(["Query error: Transaction is aborted due to concurrent update against table "
                              "x"] * 3)
    expect_error(lambda: wh.write_run(run, changed, perf), "failed after 3 attempt(s)", exc=WarehouseError)


def test_shard_overlap_error_becomes_a_data_error(fake):
    wh = _warehouse(fake)
    syms = [f"SYN{i:03d}" for i in range(12)]
    run, sig, _ = example_run("2024-11-22", syms, run_id="Y")
    split = [shard_symbols(syms, (k, 2)) for k in (0, 1)]
    wh.write_run(run, [r for r in sig if r["symbol"] in split[1]], None, shard=(1, 2))
    print(
        expect_error(
            lambda: wh.write_run(run, sig, None, shard=(0, 2)),
            "shard overlap: shard 1 of this run already wrote",
            "use warehouse.shard_symbols",
            exc=DataError,
        )
    )
    assert wh.counts()["runs"] == 1


def test_reads_send_typed_parameters(fake):
    wh = _warehouse(fake)
    run, sig, perf = example_run("2024-11-22", ["RELIANCE", "TCS", "INFY"])
    wh.write_run(run, sig, perf)
    fake.requests.clear()
    got = wh.read_signals(start="2024-11-22", end=dt.date(2024, 11, 22), strategy="momentum",
                          symbols=["TCS", "INFY"])
    assert sorted(got["symbol"]) == ["INFY", "TCS"] and (got["strategy"] == "momentum").all()
    assert got["timestamp"].iloc[0] == pd.Timestamp("2024-11-22 10:00", tz="UTC")
    assert json.loads(got["metadata"].iloc[0])["synthetic"] is True
    body = fake.calls("POST", r"/queries$")[0]["json"]
    assert (
        "TO_JSON_STRING(`metadata`) AS `metadata`" in body["query"]
        and "`symbol` IN UNNEST(@p3)" in body["query"]
    )
    assert body["queryParameters"] == [
        {"name": "p0", "parameterType": {"type": "DATE"}, "parameterValue": {"value": "2024-11-22"}},
        {"name": "p1", "parameterType": {"type": "DATE"}, "parameterValue": {"value": "2024-11-22"}},
        {"name": "p2", "parameterType": {"type": "STRING"}, "parameterValue": {"value": "momentum"}},
        {"name": "p3", "parameterType": {"type": "ARRAY", "arrayType": {"type": "STRING"}},
         "parameterValue": {"arrayValues": [{"value": "TCS"}, {"value": "INFY"}]}}]
    runs = wh.read_runs(limit=1)
    assert runs["run_id"].tolist() == ["2024-11-22_daily"]
    assert fake.calls("POST", r"/queries$")[-1]["json"]["query"].endswith("LIMIT 1")
    fake.requests.clear()
    # what was current then: a TIMESTAMP parameter
    then = wh.read_signals(at="2024-11-22T10:30:00Z")
    assert len(then) == 9
    body = fake.calls("POST", r"/queries$")[0]["json"]
    assert {"name": "at", "parameterType": {"type": "TIMESTAMP"},
            "parameterValue": {"value": "2024-11-22 10:30:00+00:00"}} \
        in body["queryParameters"] and "FIRST_VALUE(`run_id`)" in body["query"]


def test_contract_through_the_client(fake):
    facts = check_warehouse(_warehouse(fake))
    duck = check_warehouse(DuckDBWarehouse())
    _same_snapshot(facts["tables"], duck["tables"], "BigQuery (via client and local endpoint) vs DuckDB")
    # a fault after each stage load
    assert facts["fault_points"] == len(RUN_TABLES)
    assert facts["counts"] == duck["counts"]


def test_bulk_signals_go_in_as_one_parquet_load_job(fake, nse_dir):
    """A backfill-sized write (every record of the three rule strategies over the NSE sample, Arrow from
    SignalFrame.records) is one Parquet file, uploaded resumably (over the client's 5 MB multipart limit), and
    reads back exactly."""
    wh = _warehouse(fake)
    bars = load_bars(nse_dir)
    records = pa.concat_tables([run_strategy(name, bars, load_config(name),
                                             restrict_universe=False).records("all")
                                for name in ("momentum", "mean_reversion", "breakout")])
    run = {"run_id": "bulk", "kind": "backfill", "as_of": "2024-11-22", "ended_at": "2024-11-22T12:00:00Z"}
    assert wh.write_run(run, records)["signals"] == records.num_rows > 200_000
    uploads = fake.calls("POST", r"^/upload/")
    # signals, runs (no performance)
    assert [r["query"]["uploadType"] for r in uploads] == ["resumable", "multipart"]
    sent = b"".join(r["body"] for r in fake.calls("PUT", r"^/upload/"))
    assert len(sent) > 5 * 1024 * 1024
    batches, _ = _run_batches(run, records, None, (0, 1))
    assert pq.read_table(io.BytesIO(sent)).equals(_arrow(batches["signals"], TABLES["signals"]))
    back = wh.read_signals(run_id="bulk", start="2020-01-01", end="2020-12-31", symbols=["TCS", "INFY"])
    want = _conform(batches["signals"], TABLES["signals"])
    want = want[(want["date"].dt.year == 2020) & want["symbol"].isin(["TCS", "INFY"])]
    _same(back, want.sort_values(["date", "strategy", "symbol"]).reset_index(drop=True),
          "bulk signals, read back")
    assert wh.read_signals().empty                                      # a backfill is never current
