"""Benchmark: the HTTP service under load, on loopback only.

Starts `strategy_engine.service.serve()` (uvicorn, one process) in a temporary warehouse and archive with the
real NSE sample, runs one real production request so the warehouse has performance rows, then measures
  * requests/s and latency of GET /health, GET /performance (a stored and a derived period) and the
    dashboard page GET / of a signed-in session (a bounded number of requests, 1 and 4 client threads),
  * N concurrent identical POST /execute-strategies with one Idempotency-Key: exactly one run must start
    (counted as archived manifests), the others return it (replayed).
Client and server share this machine's cores, so the figures are a floor. Not part of the tests.
"""
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
EXEC = "bench-exec-token-0123456789abcdef"
READ = "bench-read-token-0123456789abcdef"
SEED = {"strategies": ["momentum", "mean_reversion"], "symbols": ["RELIANCE", "TCS"], "mode": "production"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(tmp: Path, **settings: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "STRATEGY_ENGINE_API_TOKEN": EXEC, "STRATEGY_ENGINE_READ_TOKEN": READ,
           "STRATEGY_ENGINE_WAREHOUSE": f"duckdb:///{tmp}/wh.duckdb",
           "STRATEGY_ENGINE_ARCHIVE": str(tmp / "archive"),
           **{f"STRATEGY_ENGINE_SERVICE_{k.upper()}": v for k, v in settings.items()}}
    proc = subprocess.Popen(
        [sys.executable, "-c", f"from strategy_engine.service import serve; serve(port={port})"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(tmp / "server.stderr").open("wb"),
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url + "/health").status_code == 200: return proc, url
        except httpx.TransportError: pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the service did not start:\n{(tmp / 'server.stderr').read_text()[-2000:]}")
        time.sleep(0.2)


def load(url: str, path: str, params: dict | None, n: int, threads: int,
         cookies: dict | None = None) -> tuple[float, list[float]]:
    """`n` GET requests split over `threads` keep-alive clients; (requests/s, per-request seconds)."""
    lat: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def worker(k: int) -> None:
        mine = []
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {READ}"}, cookies=cookies) as c:
            for _ in range(k):
                t0 = time.perf_counter()
                r = c.get(path, params=params)
                mine.append(time.perf_counter() - t0)
                if r.status_code != 200:
                    with lock: errors.append(f"{r.status_code} {r.text[:300]}")
        with lock: lat.extend(mine)

    per = [n // threads + (1 if i < n % threads else 0) for i in range(threads)]
    ts = [threading.Thread(target=worker, args=(k,)) for k in per]
    t0 = time.perf_counter()
    for t in ts: t.start()
    for t in ts: t.join()
    if errors: raise SystemExit(f"{path}: {len(errors)} of {n} requests failed, e.g. {errors[0]}")
    return n / (time.perf_counter() - t0), lat


def report(name: str, rps: float, lat: list[float], threads: int) -> None:
    q = statistics.quantiles(lat, n=100)
    print(f"  {name:<34} {threads} thread(s): {rps:7.0f} req/s   p50 {q[49] * 1e3:6.2f} ms   p99 "
          f"{q[98] * 1e3:6.2f} ms ({len(lat)} requests)")


def main() -> None:
    from strategy_engine.core import sample_data_dir
    if sample_data_dir() is None:
        raise SystemExit("the NSE sample (../shared/data/nse) is needed for this benchmark")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        t0 = time.perf_counter()
        proc, url = start(tmp)
        print(f"service up on {url} in {time.perf_counter() - t0:.1f} s (uvicorn, 1 process; "
              f"{os.cpu_count()} cores shared with the client)")
        try:
            with httpx.Client(base_url=url, timeout=300, headers={"Authorization": f"Bearer {EXEC}"}) as c:
                t0 = time.perf_counter()
                r = c.post("/execute-strategies", json=SEED)
                first = r.json()
                assert r.status_code == 200 and first["status"] == "succeeded", r.text
                print("one production request (seed body, 2 symbols x 2 strategies, papermill run + "
                      f"archive): {time.perf_counter() - t0:.2f} s -> {first['run_id']} {first['status']}, "
                      f"{len(first['signals'])} signal(s)")
            for path, params, n in [("/health", None, 3000), ("/performance", {"strategy": "momentum"}, 600),
                                    ("/performance", None, 600), ("/performance", {"period": "1w"}, 600)]:
                name = path + (f"?{next(iter(params))}={next(iter(params.values()))}" if params else "")
                for threads in (1, 4):
                    rps, lat = load(url, path, params, n, threads)
                    report(name, rps, lat, threads)
            session = httpx.post(url + "/sign-in", data={"token": READ}).cookies
            assert session.get("se_session"), "sign-in set no session cookie"
            for threads in (1, 4):  # the whole page: warehouse, archive (verified), schedule, SVG charts
                rps, lat = load(url, "/", None, 60, threads, cookies={"se_session": session["se_session"]})
                report("/ (dashboard, signed in)", rps, lat, threads)

            n = 8
            body = {"strategies": ["momentum"], "symbols": ["INFY", "SBIN"], "mode": "production",
                    "as_of": "2024-11-22"}
            out: list = [None] * n
            health: list[float] = []
            done = threading.Event()

            def call(i: int) -> None:
                with httpx.Client(base_url=url, timeout=300) as c:
                    out[i] = c.post("/execute-strategies", json=body,
                                    headers={"Authorization": f"Bearer {EXEC}",
                                             "Idempotency-Key": "bench-concurrent-1"})

            def probe() -> None:
                with httpx.Client(base_url=url) as c:
                    while not done.is_set():
                        t1 = time.perf_counter()
                        c.get("/health")
                        health.append(time.perf_counter() - t1)
                        time.sleep(0.05)

            p = threading.Thread(target=probe)
            p.start()
            ts = [threading.Thread(target=call, args=(i,)) for i in range(n)]
            t0 = time.perf_counter()
            for t in ts: t.start()
            for t in ts: t.join()
            wall = time.perf_counter() - t0
            done.set()
            p.join()
            answers = [r.json() for r in out]
            run_ids = {a["run_id"] for a in answers}
            manifests = [json.loads(m.read_text()) for m in (tmp / "archive").rglob("manifest.json")]
            started = sum(m["run_id"] in run_ids for m in manifests)
            replayed = sum(a["replayed"] for a in answers)
            ok = (
                all(r.status_code == 200 for r in out)
                and len(run_ids) == 1
                and started == 1
                and replayed == n - 1
            )
            print(f"  {n} concurrent identical POST /execute-strategies, one Idempotency-Key: {started} run "
                  f"started, {replayed} replayed, 1 run id: {len(run_ids) == 1}; all answered in {wall:.2f} "
                  f"s; /health meanwhile max {max(health) * 1e3:.0f} ms over {len(health)} probes -> "
                  f"{'OK' if ok else 'FAILED'}")
            if not ok: raise SystemExit(1)
        finally:
            proc.terminate()
            proc.wait(20)
        proc, url = start(tmp, performance_ttl_s="0")            # every request reads the DuckDB file
        try:
            print("without the performance cache (STRATEGY_ENGINE_SERVICE_PERFORMANCE_TTL_S=0): each "
                  "request opens DuckDB")
            for threads in (1, 4):
                rps, lat = load(url, "/performance", {"strategy": "momentum"}, 300, threads)
                report("/performance?strategy=momentum", rps, lat, threads)
        finally:
            proc.terminate()
            proc.wait(20)


if __name__ == "__main__":
    main()
