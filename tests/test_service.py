"""The HTTP service with real parts: `serve()` (uvicorn) on loopback in its own process, called over HTTP with
httpx; the real NSE sample, papermill runs, a DuckDB warehouse and a local archive in a temporary folder;
headless Chromium loading the archived notebook page. The whole file runs in well under 90 s.
"""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import httpx
import numpy as np
import pandas as pd
import pytest

from strategy_engine.calendar import nse_calendar

from conftest import ROOT, run_cli

EXEC = "exec-token-service-test-0123456789"
READ = "read-token-service-test-9876543210"
OTHER_SECRET = "123456:telegram-secret-never-logged"
SEED = {"strategies": ["momentum", "mean_reversion"], "symbols": ["RELIANCE", "TCS"], "mode": "production"}
DAY = "2024-11-22"                      # the last session of the NSE sample
LIMIT = 16_384                          # the service's default body limit
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, tmp: Path, **settings: str):
        self.tmp, self.port = tmp, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.warehouse = tmp / "wh.duckdb"
        self.archive = tmp / "archive"
        self.stderr = tmp / "server.stderr"
        # this file sends many requests
        env = {**os.environ, "STRATEGY_ENGINE_API_TOKEN": EXEC, "STRATEGY_ENGINE_READ_TOKEN": READ,
               "TELEGRAM_BOT_TOKEN": OTHER_SECRET, "STRATEGY_ENGINE_WAREHOUSE": f"duckdb:///{self.warehouse}",
               "STRATEGY_ENGINE_ARCHIVE": str(self.archive), "LOG_LEVEL": "INFO",
               "STRATEGY_ENGINE_SERVICE_RATE_LIMIT_PER_MINUTE": "10000", **settings}
        env.pop("STRATEGY_ENGINE_MARKET_DATA", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", f"from strategy_engine.service import serve; serve(port={self.port})"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=self.stderr.open("wb"))
        self.client = httpx.Client(base_url=self.url, timeout=120)
        deadline = time.monotonic() + 60
        while True:
            try:
                if self.client.get("/health").status_code == 200: break
            except httpx.TransportError: pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the service did not start:\n{self.stderr.read_text()[-3000:]}")
            time.sleep(0.2)

    def post(self, body=None, token=EXEC, headers=None, **kw) -> httpx.Response:
        auth = {"Authorization": f"Bearer {token}"} if token else {}
        return self.client.post("/execute-strategies", json=body, headers={**auth, **(headers or {})}, **kw)

    def get(self, path, token=READ, **kw) -> httpx.Response:
        return self.client.get(path, headers={"Authorization": f"Bearer {token}"} if token else {}, **kw)

    def manifests(self) -> list[dict]:
        return [json.loads(p.read_text()) for p in sorted(self.archive.rglob("manifest.json"))]

    def sql(self, query: str, *params) -> list[tuple]:
        con = duckdb.connect(str(self.warehouse), read_only=True)
        try: return con.execute(query, list(params)).fetchall()
        finally: con.close()

    def stop(self) -> None:
        self.client.close()
        self.proc.terminate()
        try: self.proc.wait(20)
        except subprocess.TimeoutExpired: self.proc.kill()


@pytest.fixture(scope="module")
def server(tmp_path_factory, nse_dir):
    srv = Server(tmp_path_factory.mktemp("service"))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def seed_run(server):
    """The seed request run for real once (as_of left out: the data's last session), with Idempotency-Key."""
    health_latency, done = [], threading.Event()

    def probe():  # /health must stay responsive while the launcher runs in a worker thread
        with httpx.Client(base_url=server.url, timeout=10) as c:
            while not done.is_set():
                t0 = time.perf_counter()
                assert c.get("/health").status_code == 200
                health_latency.append(time.perf_counter() - t0)
                time.sleep(0.1)

    t = threading.Thread(target=probe)
    t.start()
    t0 = time.perf_counter()
    r = server.post(SEED, headers={"Idempotency-Key": "seed-request-1"})
    seconds = time.perf_counter() - t0
    done.set()
    t.join()
    assert r.status_code == 200, r.text
    return {"response": r.json(), "seconds": seconds, "health_latency": health_latency}


def test_health_is_open_and_reports_readiness(server):
    h = server.client.get("/health").json()
    assert h["ready"] and h["status"] == "ok", h
    assert h["checks"]["warehouse"] == {"ok": True, "backend": "duckdb",
                                        "location": str(server.warehouse.resolve())}
    assert h["checks"]["archive"]["detail"] == "writable"
    assert server.client.get("/health", params={"strict": "true"}).status_code == 200
    docs = server.client.get("/docs")                          # Swagger UI from this process, not a CDN
    assert (
        docs.status_code == 200
        and "/static/swagger/swagger-ui-bundle.js" in docs.text
        and "https://" not in docs.text
    )
    spec = server.client.get("/openapi.json").json()
    assert {"/health", "/execute-strategies", "/performance", "/runs", "/runs/{run_id}",
            "/runs/{run_id}/notebook"} <= \
        set(spec["paths"])
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_scope_matrix(server):
    """RELIABILITY 22: no token, a wrong token, a read token on execute: 401/403 on every endpoint."""
    dry = {**SEED, "mode": "dry_run", "as_of": DAY}
    expected = {  # token -> (GET /runs, GET /performance, POST /execute-strategies)
        None: (401, 401, 401),
        "not-a-valid-token-0000000000": (401, 401, 401),
        READ: (200, 200, 403),
        EXEC: (200, 200, 200),
    }
    for token, want in expected.items():
        got = (server.get("/runs", token=token).status_code,
               server.get("/performance", token=token).status_code, server.post(dry, token=token).status_code)
        assert got == want, (token and token[:8], got, want)
    r = server.post(dry, token=None)
    assert r.headers["www-authenticate"].startswith("Bearer") and "Missing bearer token" in r.json()["error"]
    r = server.post(dry, token=READ)
    assert (
        'error="insufficient_scope"' in r.headers["www-authenticate"] and "execute token" in r.json()["error"]
    )
    r = server.client.post("/execute-strategies", json=dry, headers={"Authorization": f"Basic {EXEC}"})
    # a token must come as a bearer token
    assert r.status_code == 401


@pytest.mark.parametrize("change, status, needles", [
    ({"strategy": ["momentum"]}, 422, ["Unknown field 'strategy'", "Did you mean 'strategies'",
                                       "Allowed fields: strategies, symbols, mode, as_of"]),
    ({"strategies": ["momentm"]}, 422,
     ["Unknown strategy 'momentm'", "Did you mean 'momentum'", "Allowed: "]),
    ({"symbols": ["RELIANC"]}, 422, ["Unknown symbol 'RELIANC'", "Did you mean 'RELIANCE'"]),
    ({"as_of": "2024-11-15"}, 422, ["2024-11-15 is not an NSE session", "holiday", "2024-11-14"]),
    ({"as_of": "2024-11-23"}, 422, ["not an NSE session", "weekend"]),
    ({"as_of": "FUTURE"}, 422, ["in the future", "Allowed: an NSE session on or before today"]),
    ({"as_of": "22-11-2024"}, 422, ["as_of", "YYYY-MM-DD"]),
    ({"mode": "prodution"}, 422,
     ["'prodution' is not allowed", "Did you mean 'production'", "'production' or 'dry_run'"]),
    ({"strategies": []}, 422, ["strategies", "at least 1"]),
    ({"symbols": ["TCS", "TCS"]}, 422, ["'TCS' is listed twice"]),
])
def test_invalid_requests_say_what_is_allowed_and_run_nothing(server, change, status, needles):
    """RELIABILITY 23: unknown fields, unknown strategies, non-session dates: 4xx, nothing runs."""
    body = {**SEED, **change}
    # the next session after today in India
    if body.get("as_of") == "FUTURE":
        today = pd.Timestamp.now(tz="Asia/Kolkata").normalize().tz_localize(None)
        body["as_of"] = nse_calendar().next_session(today).strftime("%Y-%m-%d")
    before = archived(server)
    r = server.post(body, headers={"Idempotency-Key": f"invalid-{sorted(change)[0]}"})
    assert r.status_code == status and all(n in r.json()["error"] for n in needles), r.text
    # a refused request runs and records nothing
    assert archived(server) == before


def archived(server) -> list[Path]:
    return sorted(p for p in server.archive.rglob("*") if p.is_file())


def test_malformed_and_oversized_bodies(server):
    before = archived(server)
    auth = {"Authorization": f"Bearer {EXEC}", "Content-Type": "application/json"}
    r = server.client.post("/execute-strategies", content=b'{"strategies": ["momentum"', headers=auth)
    assert r.status_code == 422 and "not valid JSON" in r.json()["error"], r.text
    r = server.client.post("/execute-strategies", json=["momentum"], headers=auth)
    assert r.status_code == 422 and "must be a JSON object" in r.json()["error"], r.text
    r = server.post({"symbols": ["TCS"]})
    assert r.status_code == 422 and "Missing field 'strategies'" in r.json()["error"], r.text
    big = json.dumps({**SEED, "symbols": ["TCS"] * 5000}).encode()
    assert len(big) > LIMIT
    # Content-Length declared
    r = server.client.post("/execute-strategies", content=big, headers=auth)
    assert r.status_code == 413 and f"{len(big)} bytes; the limit is {LIMIT} bytes" in r.json()["error"], (
        r.text
    )
    # chunked: no length to trust
    chunks = (big[i:i + 4096] for i in range(0, len(big), 4096))
    r = server.client.post("/execute-strategies", content=chunks, headers=auth)
    assert r.status_code == 413 and f"the limit is {LIMIT} bytes" in r.json()["error"], r.text
    r = server.post(SEED, headers={"Idempotency-Key": "x" * 300})
    assert r.status_code == 400 and "1-255 printable ASCII" in r.json()["error"]
    assert archived(server) == before


def test_dry_run_names_the_run_and_writes_nothing(server):
    before = archived(server)
    r = server.post({**SEED, "mode": "dry_run"})
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["status"] == "validated" and d["exit_code"] is None and d["as_of"] == DAY and d["signals"] == []
    assert d["run_id"].startswith(f"daily-{DAY}-") and d["parameters"]["symbols"] == SEED["symbols"]
    assert archived(server) == before


def test_execute_runs_the_launcher_and_returns_signals(server, seed_run):
    d = seed_run["response"]
    dry = server.post({**SEED, "mode": "dry_run"}).json()
    assert d["status"] == "succeeded" and d["exit_code"] == 0 and not d["replayed"] and d["as_of"] == DAY
    # the dry run named the run the launcher made
    assert d["run_id"] == d["record_id"] == dry["run_id"]
    assert (
        d["rows"]["signals"] == len(d["signals"]) and d["rows"]["performance"] == 2 and d["rows"]["runs"] == 1
    )  # loaded
    want = server.sql("select signal_id, symbol, strategy, signal, confidence, strftime(timestamp, "
                      "'%Y-%m-%dT%H:%M:%SZ'), metadata from signals where run_id = ? order by strategy, "
                      "symbol", d["run_id"])
    got = [(s["signal_id"], s["symbol"], s["strategy"], s["signal"], s["confidence"], s["timestamp"],
            s["metadata"])
           for s in d["signals"]]
    assert got == [(*w[:6], json.loads(w[6])) for w in want]
    held = server.sql("select strftime(date, '%Y-%m-%d'), strategy, symbol, weight from target_weights "
                      "where run_id = ? order by strategy, symbol", d["run_id"])
    assert [tuple(w.values()) for w in d["target_weights"]] == held and d["rows"]["target_weights"] == len(
        held
    ) > 0
    for s in d["signals"]:
        assert (
            s["symbol"] in SEED["symbols"] and s["strategy"] in SEED["strategies"] and s["signal"] in (-1, 1)
        )
        assert (
            s["signal_id"] == f"{s['symbol']}_20241122_{s['strategy'].upper()}"
            and s["timestamp"] == "2024-11-22T10:00:00Z"
        )
    [m] = server.manifests()
    assert (
        m["run_id"] == d["run_id"]
        and m["status"] == "succeeded"
        and m["parameters"]["symbols"] == SEED["symbols"]
    )
    assert m["parameters"]["strategies"] == SEED["strategies"] and m["parameters"]["as_of"] == DAY
    lat = seed_run["health_latency"]
    # the run did not block the event loop
    assert len(lat) >= 5 and max(lat) < 2.0, (seed_run["seconds"], lat)
    print(f"seed run {seed_run['seconds']:.1f} s, {len(d['signals'])} signals; /health during it: max "
          f"{max(lat) * 1000:.0f} ms")


def test_retry_with_the_same_key_returns_the_first_run(server, seed_run):
    first = seed_run["response"]
    r = server.post(SEED, headers={"Idempotency-Key": "seed-request-1"})
    assert r.status_code == 200 and r.headers["idempotent-replayed"] == "true"
    again = r.json()
    assert again["replayed"] and {**again, "replayed": False} == first
    assert len(server.manifests()) == 1
    r = server.post({**SEED, "symbols": ["TCS"]}, headers={"Idempotency-Key": "seed-request-1"})
    assert r.status_code == 422 and "already used with a different request body" in r.json()["error"]
    assert len(server.manifests()) == 1


def test_concurrent_scheduler_retries_start_exactly_one_run(server, seed_run):
    """RELIABILITY 3: concurrent calls with the same scheduler time start one execution."""
    body = {"strategies": ["momentum"], "symbols": ["INFY"], "mode": "production", "as_of": DAY}
    headers = {"X-CloudScheduler-ScheduleTime": "2024-11-22T10:00:00Z",
               "X-CloudScheduler-JobName": "daily-signals"}
    out: list = [None] * 4

    def call(i):
        with httpx.Client(base_url=server.url, timeout=120) as c:
            out[i] = c.post("/execute-strategies", json=body,
                            headers={"Authorization": f"Bearer {EXEC}", **headers})

    threads = [threading.Thread(target=call, args=(i,)) for i in range(4)]
    for t in threads: t.start()
    for t in threads: t.join()
    assert all(r.status_code == 200 for r in out), [r.text for r in out]
    answers = [r.json() for r in out]
    assert len({a["run_id"] for a in answers}) == 1 and sorted(a["replayed"]
                                                               for a in answers) == [False, True, True, True]
    assert [m["run_id"] for m in server.manifests()].count(answers[0]["run_id"]) == 1


def test_performance_reads_the_warehouse(server, seed_run):
    """/performance answers the day's designated run (after the scheduled test run above: that one), never a
    mixture; the seed run's rows are kept in the table."""
    cols = ["sharpe_ratio", "total_return", "max_drawdown", "equity", "turnover", "n_signals"]
    want = server.sql(f"select run_id, date, {', '.join(cols)} from performance_current where strategy = "
                      "'momentum' and period = 'to_date'")
    r = server.get("/performance", params={"strategy": "momentum", "period": "to_date"})
    assert r.status_code == 200, r.text
    [row] = r.json()["rows"]
    assert len(want) == 1 and row["run_id"] == want[0][0] and row["date"] == DAY
    assert np.allclose([row[c] for c in cols], want[0][2:], rtol=0, atol=1e-12)
    seed = seed_run["response"]["run_id"]
    assert server.sql("select count(*) from performance where run_id = ? and strategy = 'mean_reversion'",
                      seed)[0][0] == 1
    every = server.get("/performance", params={"latest": "false"}).json()
    assert every["count"] == server.sql("select count(*) from performance_current")[0][0] >= 1
    for params, needle in [({"strategy": "momentun"}, "Did you mean 'momentum'"),
                           ({"period": "todate"}, "Did you mean 'to_date'"),
                           ({"start": "yesterday"}, "query parameter start")]:
        r = server.get("/performance", params=params)
        assert r.status_code == 422 and needle in r.json()["error"], r.text


def test_concurrent_reads_all_succeed(server, seed_run):
    out: list = []

    def call(i):  # distinct `start`s: each request reads the DuckDB file, none from the cache
        with httpx.Client(base_url=server.url, timeout=60, headers={"Authorization": f"Bearer {READ}"}) as c:
            got = [c.get("/performance",
                         params={"start": f"2024-{m:02d}-{i + 1:02d}", "strategy": "momentum"})
                   for m in range(1, 11)]
        out.extend(got)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
    for t in threads: t.start()
    for t in threads: t.join()
    assert len(out) == 80 and [r.status_code for r in out] == [200] * 80, [
        r.text for r in out if r.status_code != 200
    ][:2]
    assert len({json.dumps(r.json()["rows"]) for r in out}) == 1 and out[0].json()["count"] == 1


def test_plain_stderr_of_child_processes_becomes_json(tmp_path):
    code = ("import subprocess, time\nfrom strategy_engine.service import capture_stderr, "
            "configure_logging\ncapture_stderr(configure_logging())\nsubprocess.run(['sh', '-c', 'echo "
            "plain ERROR line from a child >&2; echo second line, no level >&2'])\nprint('from python to "
            "sys.stderr', flush=True, file=__import__('sys').stderr)\ntime.sleep(0.5)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stderr.splitlines()]
    assert [(x["severity"], x["message"]) for x in lines] == [
        ("ERROR", "plain ERROR line from a child"), ("WARNING", "second line, no level"),
        ("WARNING", "from python to sys.stderr")]


def test_runs_list_and_show_with_verification(server, seed_run):
    run_id = seed_run["response"]["run_id"]
    listed = server.get("/runs").json()["runs"]
    seqs = [r["seq"] for r in listed]
    assert run_id in [r["run_id"] for r in listed] and seqs == sorted(seqs, reverse=True)
    shown = server.get(f"/runs/{run_id}").json()
    assert shown["verified"] and shown["problems"] == [] and shown["latest"]["status"] == "succeeded"
    assert shown["latest"]["parameters"]["symbols"] == SEED["symbols"] and len(shown["attempts"]) == 1
    r = server.get(f"/runs/{run_id[:-1]}")
    assert r.status_code == 404 and f"Did you mean '{run_id}'" in r.json()["error"]
    assert server.get("/runs/..%2Fetc").status_code in (404, 422)
    r = server.get("/runs", params={"status": "succeded"})
    assert r.status_code == 422 and "Did you mean 'succeeded'" in r.json()["error"]


def test_notebook_page_and_signed_links(server, seed_run):
    run_id = seed_run["response"]["run_id"]
    page = server.get(f"/runs/{run_id}/notebook")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert (
        'data-verified="true"' in page.text and f"Run {run_id}" in page.text and "Daily signals" in page.text
    )
    # the equity figure: SVG, shown as a data: image (an SVG image runs no script)
    assert page.text.count('src="data:image/svg+xml;base64,') >= 1
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "img-src data:" in csp and "script" not in csp
    assert server.get(f"/runs/{run_id}/notebook", token=None).status_code == 401
    assert server.get(f"/runs/{run_id}/notebook", params={"attempt": 7}).status_code == 404
    link = server.get(f"/runs/{run_id}/notebook/link").json()
    # no header: the signature admits it
    assert server.client.get(link["url"]).status_code == 200
    assert server.client.get(link["url"].replace("sig=", "sig=f")).status_code == 401
    assert server.client.get(link["url"].replace(run_id, run_id[:-1] + "x")).status_code == 401
    assert server.get(f"/runs/{run_id}/notebook/link", token=None).status_code == 401


def _screenshot(url: str, png: Path, profile: Path) -> np.ndarray:
    from PIL import Image
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--hide-scrollbars", f"--user-data-dir={profile}", f"--screenshot={png}",
           "--window-size=1200,3000", url]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and png.exists(), r.stderr[-2000:]
    return np.asarray(Image.open(png).convert("RGB")).astype(int)


def _near(img: np.ndarray, rgb: tuple[int, int, int], tol: int = 40) -> int:
    return int((np.abs(img - np.array(rgb)).max(axis=2) <= tol).sum())


@pytest.mark.skipif(CHROMIUM is None,
                    reason="chromium not installed (apt-get install chromium; make test installs it as root)")
def test_chromium_renders_the_plots(server, seed_run, tmp_path):
    run_id = seed_run["response"]["run_id"]
    link = server.get(f"/runs/{run_id}/notebook/link").json()["url"]
    live = _screenshot(server.url + link, tmp_path / "live.png", tmp_path / "profile1")
    # the same page with its images removed, from a file: what the browser shows when the plots do NOT render
    text = server.get(f"/runs/{run_id}/notebook").text
    blank = re.sub(r'src="data:image/(png|svg\+xml);base64,[^"]*"', 'src=""', text)
    blank = blank.replace("<head>", "<head><meta http-equiv=\"Content-Security-Policy\" "
                                    "content=\"default-src 'none'; img-src data:; style-src "
                                    "'unsafe-inline'\">", 1)
    (tmp_path / "blank.html").write_text(blank)
    without = _screenshot((tmp_path / "blank.html").as_uri(), tmp_path / "blank.png", tmp_path / "profile2")
    # matplotlib's first three line colours: the two
    blue, orange, green = (31, 119, 180), (255, 127, 14), (44, 160, 44)
    # strategies and the benchmark
    counts = {c: (_near(live, c), _near(without, c)) for c in (blue, orange, green)}
    # code highlighting has some blue
    assert all(with_ - without_ > 500 for with_, without_ in counts.values()), counts
    changed = np.abs(live - without).sum(axis=2) > 30
    rows, cols = np.nonzero(changed)
    assert cols.max() - cols.min() > 600 and rows.max() - rows.min() > 300, (
        rows.min(),
        rows.max(),
        cols.min(),
        cols.max(),
    )
    # the green "VERIFIED" banner on top
    assert _near(live[:60], (0xE8, 0xF5, 0xE9), tol=6) > 20_000
    print(f"plot pixels (live, without images): {counts}; changed region {rows.min()}-{rows.max()} x "
          f"{cols.min()}-{cols.max()}")


def test_altered_notebook_is_flagged(server, seed_run):
    run_id = [m["run_id"] for m in server.manifests() if m["parameters"]["symbols"] == ["INFY"]][0]
    [victim] = [p for p in server.archive.rglob("daily_signals.ipynb") if run_id in str(p)]
    os.chmod(victim, 0o644)
    data = bytearray(victim.read_bytes())
    i = data.index(b"2024-11-22")
    data[i] = ord("3")
    victim.write_bytes(bytes(data))
    shown = server.get(f"/runs/{run_id}").json()
    assert not shown["verified"] and [p["kind"] for p in shown["problems"]] == ["notebook_hash"]
    page = server.get(f"/runs/{run_id}/notebook")
    assert page.status_code == 200 and 'data-verified="false"' in page.text and "NOT VERIFIED" in page.text
    # the other run still verifies
    assert server.get(f"/runs/{seed_run['response']['run_id']}").json()["verified"]


def test_logs_are_json_with_severity_and_no_secrets(server, seed_run):
    time.sleep(0.5)
    text = server.stderr.read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert len(lines) > 20 and all(isinstance(x, dict) for x in lines)
    assert {x["severity"] for x in lines} <= {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
    for secret in (EXEC, READ, OTHER_SECRET):
        assert secret not in text
    run_id = seed_run["response"]["run_id"]
    finished = [x for x in lines if x.get("run_id") == run_id and x.get("status") == "succeeded"]
    assert (
        finished
        and finished[0]["strategy"] == "momentum,mean_reversion"
        and finished[0]["severity"] == "INFO"
    )
    requests = [x for x in lines if "httpRequest" in x]
    assert any(x["httpRequest"]["status"] == 413 and x["severity"] == "WARNING" for x in requests)
    # signed links were logged, hidden
    assert any("sig=***" in x["httpRequest"]["requestUrl"] for x in requests)
    assert re.search(r"sig=[0-9a-f]", text) is None
    assert any(x["message"].startswith("Uvicorn running on http://127.0.0.1:") for x in lines)


def test_a_failed_validation_of_the_day_gates_production_requests(server, seed_run):
    # its 09:00 validation needs the bars of 2024-11-25, which the NSE sample lacks
    late = "2024-11-26"
    v = run_cli("run", "validate", "--as-of", late, "--symbols", "TCS", "--archive", server.archive,
                "--no-alerts")
    assert v.returncode == 4 and "data_stale" in v.stdout, v.stdout + v.stderr
    validation = [m for m in server.manifests() if m["kind"] == "validate"][0]
    body = {"strategies": ["momentum"], "symbols": ["TCS"], "as_of": late}
    before = len(server.manifests())
    r = server.post(body, headers={"Idempotency-Key": "gated-1"})
    assert r.status_code == 409, r.text
    d = r.json()
    assert (
        d["run_status"] == "data_stale"
        and d["validation"]["run_id"] == validation["run_id"]
        and '"force": true' in d["error"]
    )
    assert len(server.manifests()) == before                               # nothing started
    # asked again: refused again
    assert server.post(body, headers={"Idempotency-Key": "gated-1"}).status_code == 409
    r = server.post({**body, "force": True}, headers={"Idempotency-Key": "gated-2"})
    assert r.status_code == 200, r.text
    # ran, and its own check failed closed
    assert r.json()["status"] == "data_stale" and r.json()["exit_code"] == 4
    assert len(server.manifests()) == before + 1


def test_identical_concurrent_bodies_without_a_key_start_one_run(server, seed_run):
    """Issue 12 / RELIABILITY 3: identical bodies with no idempotency header, sent at once, start one run."""
    body = {"strategies": ["breakout"], "symbols": ["ITC", "LT"], "mode": "production", "as_of": DAY}
    before = len(server.manifests())
    out: list = [None] * 5

    def call(i):
        with httpx.Client(base_url=server.url, timeout=120) as c:
            out[i] = c.post("/execute-strategies", json=body, headers={"Authorization": f"Bearer {EXEC}"})

    threads = [threading.Thread(target=call, args=(i,)) for i in range(5)]
    for t in threads: t.start()
    for t in threads: t.join()
    assert all(r.status_code == 200 for r in out), [r.text for r in out]
    answers = [r.json() for r in out]
    assert len({a["run_id"] for a in answers}) == 1 and sorted(a["replayed"]
                                                               for a in answers) == [False, *[True] * 4]
    assert len(server.manifests()) == before + 1
    assert server.sql("select started_by from runs where run_id = ?",
                      answers[0]["run_id"])[0][0].startswith("api:")


def test_rate_limit_and_range_cap(tmp_path):
    """RELIABILITY 23: a burst above the per-token rate limit gets 429; a /performance range too wide, 422."""
    srv = Server(tmp_path, STRATEGY_ENGINE_SERVICE_RATE_LIMIT_PER_MINUTE="3",
                 STRATEGY_ENGINE_SERVICE_MAX_RANGE_DAYS="30")
    try:
        body = {"strategies": ["momentum"], "mode": "dry_run", "as_of": DAY}
        codes = [srv.post(body).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429], codes
        # a read token is refused before it is counted
        assert srv.post(body, token=READ).status_code == 403
        r = srv.get("/performance", params={"start": "2024-01-01", "end": "2024-11-22"})
        assert r.status_code == 422 and "at most 30 days" in r.text
        assert srv.get("/performance", params={"start": "2024-11-01", "end": "2024-11-22"}).status_code == 200
        assert not srv.manifests()
    finally:
        srv.stop()
