"""The dashboard, the offline API docs and the Telegram commands against the real service:
`serve()` (uvicorn) on loopback, the real NSE sample, one real daily run started from the page,
headless Chromium driven through its DevTools pipe (sign-in form, run button, notebook link;
console messages, every network request, screenshots), and the local Telegram stand-in of the
alerts tests receiving the replies.
"""

import base64
import io
import json
import os
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import numpy as np
import pytest
from test_alerts import FakeTelegram
from test_service import EXEC, OTHER_SECRET, READ, Server

from strategy_engine.alerts import AlertRules, notify_run
from strategy_engine.warehouse import example_run, open_warehouse

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
HOOK = "telegram-hook-secret_0123"
CHAT = 4242
HISTORY = (
    ("2024-11-14", 1.00, 1.00),
    ("2024-11-18", 1.02, 0.99),
    ("2024-11-19", 1.03, 0.98),
    ("2024-11-20", 1.01, 0.97),
    ("2024-11-21", 1.06, 1.01),
)  # earlier days' to_date equity (momentum, breakout)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium not installed (make test installs it as root)"
)


class Browser:
    """Headless Chromium over --remote-debugging-pipe (NUL-separated JSON on fds 3 and 4): one page,
    its console errors, CSP violations and every request it made."""

    def __init__(self, profile: Path):
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def fds():
            os.dup2(to_chrome_r, 3)
            os.dup2(from_chrome_w, 4)

        self.proc = subprocess.Popen(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--remote-debugging-pipe",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--disable-quic",
                f"--user-data-dir={profile}",
                "about:blank",
            ],
            preexec_fn=fds,
            close_fds=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self.events: queue.Queue = queue.Queue()
        self.replies: dict[int, dict] = {}
        self.cond = threading.Condition()
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.n = 0
        threading.Thread(target=self._read, daemon=True).start()
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Network", "Log"):
            self.call(f"{domain}.enable", session=True)
        self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1200, "height": 900, "deviceScaleFactor": 1, "mobile": False},
            session=True,
        )

    def _read(self):
        buf = b""
        while True:
            chunk = os.read(self._from_chrome, 1 << 16)
            if not chunk:
                return
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                if "id" in msg:
                    with self.cond:
                        self.replies[msg["id"]] = msg
                        self.cond.notify_all()
                    continue
                method, params = msg.get("method"), msg.get("params", {})
                if method == "Network.requestWillBeSent":
                    self.requests.append(params["request"]["url"])
                elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
                    self.errors.append(f"console: {params['args']}")
                elif method == "Runtime.exceptionThrown":
                    self.errors.append(f"exception: {params['exceptionDetails'].get('text')}")
                elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                    self.errors.append(f"log: {params['entry']['text']} {params['entry'].get('url', '')}")
                self.events.put(msg)

    def call(
        self, method: str, params: dict | None = None, session: bool = False, timeout: float = 60
    ) -> dict:
        with self.cond:
            self.n += 1
            n = self.n
        msg = {
            "id": n,
            "method": method,
            "params": params or {},
            **({"sessionId": self.session} if session else {}),
        }
        os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        with self.cond:
            assert self.cond.wait_for(lambda: n in self.replies, timeout), (
                f"{method}: no answer in {timeout} s"
            )
            reply = self.replies.pop(n)
        assert "error" not in reply, (method, reply["error"])
        return reply.get("result", {})

    def wait_load(self, timeout: float = 120) -> None:
        deadline, seen = time.monotonic() + timeout, []
        while True:
            try:
                msg = self.events.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no page loaded in {timeout} s; events: {seen[-8:]}") from None
            seen.append(msg.get("method"))
            if msg.get("method") == "Page.loadEventFired":
                return

    def drain(self) -> None:
        while not self.events.empty():
            self.events.get_nowait()

    def open(self, url: str) -> None:
        self.drain()
        self.call("Page.navigate", {"url": url}, session=True)
        self.wait_load()

    def js(self, expression: str):
        """Evaluate in the page through DevTools (what a person's click or typing does; the page's CSP forbids
        scripts of its own)."""
        out = self.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            session=True,
        )
        return out["result"].get("value")

    def act(self, expression: str, until: str | None = None) -> None:
        """Do something that navigates (submit a form, click a link), then wait for the new page
        (whose address starts with `until`, when given)."""
        self.drain()
        self.js(expression)
        self.wait_load()
        deadline = time.monotonic() + 120
        while until is not None and not (self.url() or "").startswith(until):
            assert time.monotonic() < deadline, f"still on {self.url()}, waiting for {until}"
            self.wait_load(timeout=max(1.0, deadline - time.monotonic()))

    def url(self) -> str:
        return self.js("location.href")

    def screenshot(self) -> np.ndarray:
        from PIL import Image

        png = self.call(
            "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, session=True
        )
        return np.asarray(Image.open(io.BytesIO(base64.b64decode(png["data"]))).convert("RGB")).astype(int)

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=10)
        except AssertionError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.close(self._to_chrome)


@pytest.fixture(scope="module")
def telegram():
    fake = FakeTelegram()
    yield fake
    fake.close()


@pytest.fixture(scope="module")
def dash(tmp_path_factory, nse_dir, telegram):
    """The service over a warehouse holding four earlier days of daily-run rows and an alert sent through the
    alerts' own delivery path; Telegram commands on, replies going to the stand-in."""
    tmp = tmp_path_factory.mktemp("dashboard")
    with open_warehouse(f"duckdb:///{tmp / 'wh.duckdb'}") as wh:
        for day, mom, brk in HISTORY:
            run, sigs, perf = example_run(
                as_of=day, symbols=("TCS", "INFY"), strategies=("momentum", "breakout")
            )
            wh.write_run(
                run, sigs, perf.assign(equity=perf["strategy"].map({"momentum": mom, "breakout": brk}))
            )
    env = {
        "TELEGRAM_BOT_TOKEN": OTHER_SECRET,
        "TELEGRAM_CHAT_ID": "-100777",
        "TELEGRAM_API_BASE": telegram.url,
    }
    [sent] = notify_run(
        {
            "run_id": "daily-2024-11-21-0000aaaa",
            "status": "failed",
            "as_of": "2024-11-21",
            "kind": "daily",
            "error": "DataError: stale bars",
        },
        rules=AlertRules(channels=("telegram",)),
        state_dir=tmp / "runs" / "alerts",
        env=env,
    )
    assert sent.status == "sent", sent
    srv = Server(
        tmp,
        STRATEGY_ENGINE_RUNS=str(tmp / "runs"),
        TELEGRAM_API_BASE=telegram.url,
        STRATEGY_ENGINE_TELEGRAM_WEBHOOK_SECRET=HOOK,
        STRATEGY_ENGINE_TELEGRAM_ALLOWED_CHATS=f"{CHAT},-100999",
    )
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    b = Browser(tmp_path_factory.mktemp("chromium-profile"))
    yield b
    b.close()


def _loopback_only(requests: list[str], server) -> None:
    outside = [u for u in requests if not u.startswith((server.url, "data:", "about:"))]
    assert not outside, outside


def _near(img: np.ndarray, rgb: str, tol: int = 40) -> int:
    want = np.array([int(rgb[i : i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(img - want).max(axis=2) <= tol).sum())


def notebook_weights(notebook: Path) -> dict[tuple[str, str], float]:
    "The archived notebook's 'Target weights for tomorrow' table (symbol × strategy, % of capital)."
    cells = json.loads(notebook.read_text())["cells"]
    [i] = [i for i, c in enumerate(cells) if "Target weights for tomorrow" in "".join(c["source"])]
    [text] = [o["data"]["text/plain"] for o in cells[i + 1]["outputs"] if "text/plain" in o.get("data", {})]
    head, *rows = "".join(text).splitlines()
    out = {}
    for line in rows:
        symbol, *values = line.split()
        for strategy, v in zip(head.split(), values, strict=False):   # the index name's line has no values
            if float(v) != 0:
                out[(strategy, symbol)] = float(v)
    return out


def test_sign_in_then_the_dashboard_draws_its_charts(dash, browser):
    browser.open(dash.url + "/")
    assert browser.url() == dash.url + "/sign-in"  # not signed in: the form
    browser.act(f"document.getElementById('token').value = {READ!r}; document.forms[0].submit()")
    assert browser.url() == dash.url + "/", browser.url()
    cookie = next(
        c for c in browser.call("Network.getCookies", session=True)["cookies"] if c["name"] == "se_session"
    )
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["value"].startswith("read.")
    assert READ not in cookie["value"]
    page = browser.js("document.documentElement.outerHTML")
    for section in ("day", "performance", "signals", "runs", "alerts"):
        assert f'id="{section}"' in page, section
    assert "2024-11-21" in page and "daily-2024-11-21-0000aaaa" in page  # the history and the alert sent
    assert 'action="/dashboard/run"' not in page and "Read scope" in page  # read scope: no run button
    boxes = browser.js(
        "JSON.stringify([...document.querySelectorAll('svg.chart')].map(e => {"
        "const r = e.getBoundingClientRect(); return [r.x, r.y + scrollY, r.width, r.height]}))"
    )
    charts = json.loads(boxes)
    assert len(charts) == 2, page[-3000:]
    img = browser.screenshot()
    for x, y, w, h in charts:
        plot = img[int(y) + 24 : int(y + h) - 28, int(x) + 64 : int(x + w) - 150]  # inside the axes
        assert plot.std() > 5, plot.std()  # not a blank area
        for color in ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"):  # breakout, momentum, book, benchmark
            assert _near(plot, color) > 150, (color, _near(plot, color))
    assert not browser.errors, browser.errors  # no console error, no CSP violation
    _loopback_only(browser.requests, dash)
    csp = httpx.get(dash.url + "/sign-in").headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'none'" in csp


def test_a_run_started_from_the_page_appears_with_its_notebook(dash, browser):
    before = len(dash.manifests())
    browser.act(
        "document.querySelector('form[action=\"/sign-out\"] button').click()", until=dash.url + "/sign-in"
    )
    assert browser.url() == dash.url + "/sign-in"
    browser.act(
        f"document.getElementById('token').value = {EXEC!r}; document.forms[0].submit()", until=dash.url + "/"
    )
    browser.act(
        "document.querySelector('input[name=symbols]').value = 'RELIANCE TCS WIPRO AXISBANK';"
        "document.getElementById('start-run').click()",
        until=dash.url + "/?run=",
    )
    [m] = [m for m in dash.manifests()[before:]]
    assert len(dash.manifests()) == before + 1 and m["status"] == "succeeded", m
    assert m["parameters"]["symbols"] == ["RELIANCE", "TCS", "WIPRO", "AXISBANK"]
    assert m["parameters"]["strategies"] == ["momentum"]
    assert browser.url().startswith(dash.url + f"/?run={m['run_id']}"), browser.url()
    page = browser.js("document.documentElement.outerHTML")
    assert f"Run {m['run_id']} finished" in page
    # the day's target weights on the page are the ones the run's archived notebook shows
    shown = json.loads(browser.js(
        "JSON.stringify([...document.querySelectorAll('table.weights tbody tr')]"
        ".map(r => [...r.cells].map(c => c.textContent)))"
    ))
    on_page = {(strategy, symbol): float(w) for strategy, symbol, w in shown}
    notebook = dash.archive / "2024/11/22" / m["run_id"] / "attempt-1" / m["notebook"]
    archived = notebook_weights(notebook)
    assert on_page and on_page.keys() == archived.keys(), (on_page, archived)
    assert all(abs(on_page[k] - archived[k]) < 0.006 for k in archived), (on_page, archived)
    beside = json.loads(browser.js(
        "JSON.stringify([...document.querySelectorAll('table.signals tbody tr')]"
        ".map(r => [r.cells[0].textContent, r.cells[1].textContent, r.cells[4].textContent]))"
    ))
    assert beside and all(float(w.rstrip("%")) == round(on_page.get((s, y), 0.0), 2) for s, y, w in beside)
    link = browser.js(
        f"[...document.querySelectorAll('#runs tr')].filter(r => r.textContent.includes("
        f"{m['run_id']!r}))[0].querySelector('a').getAttribute('href')"
    )
    assert link == f"/runs/{m['run_id']}/notebook?attempt=1"
    started_by = dash.sql("select started_by from runs where run_id = ?", m["run_id"])[0][0]
    assert started_by.startswith("page:"), started_by
    browser.act(f"document.querySelector('a[href=\"{link}\"]').click()")  # the session opens the notebook
    assert browser.js("document.getElementById('run-verification').dataset.verified") == "true"
    assert not browser.errors, browser.errors
    _loopback_only(browser.requests, dash)


def test_docs_work_offline(dash, browser):
    browser.open(dash.url + "/docs")
    deadline = time.monotonic() + 30
    while not browser.js("!!document.querySelector('.swagger-ui .title')") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "Strategy Engine" in browser.js("document.querySelector('.swagger-ui .title').textContent")
    assert any(u.endswith("/openapi.json") for u in browser.requests)
    _loopback_only(browser.requests, dash)


def test_page_forms_need_the_session_csrf_token_and_execute_scope(dash):
    before = len(dash.manifests())
    with httpx.Client(base_url=dash.url) as c:
        assert c.post("/sign-in", data={"token": "not-a-token-0123456789"}).status_code == 401
        signed = c.post("/sign-in", data={"token": READ})
        assert signed.status_code == 303 and signed.headers["location"] == "/" and c.cookies["se_session"]
        r = c.post("/dashboard/run", data={"strategies": "momentum", "csrf": "forged", "nonce": "n1"})
        assert r.status_code == 403 and "CSRF" in r.text
    with httpx.Client(base_url=dash.url) as c:
        c.post("/sign-in", data={"token": EXEC})
        r = c.post("/dashboard/run", data={"strategies": "momentum", "nonce": "n2"})
        assert r.status_code == 403 and "CSRF" in r.text
        tampered = c.cookies["se_session"].replace("execute.", "read.", 1)
    with httpx.Client(base_url=dash.url, cookies={"se_session": tampered}) as c:
        assert c.get("/").headers.get("location") == "/sign-in"  # a tampered cookie: signed out
    assert len(dash.manifests()) == before
    page = "/runs/daily-2024-11-22-abc/notebook?attempt=1"                  # a link opened in a fresh browser
    with httpx.Client(base_url=dash.url, headers={"Accept": "text/html"}) as c:
        r = c.get(page)
        assert r.status_code == 303 and r.headers["location"] == f"/sign-in?next={quote(page, safe='')}"
        assert f'name="next" value="{page}"' in c.get(r.headers["location"]).text
        r = c.post("/sign-in", data={"token": READ, "next": page})
        assert r.status_code == 303 and r.headers["location"] == page
        assert c.post("/sign-in", data={"token": READ, "next": "//evil.example"}).headers["location"] == "/"


def test_health_names_the_warehouse_and_performance_answers_every_period(dash):
    h = dash.client.get("/health").json()
    assert h["checks"]["warehouse"]["location"] == str(dash.warehouse.resolve())
    for period in ("1d", "1w", "1m", "ytd", "to_date"):
        r = dash.get("/performance", params={"period": period})
        assert r.status_code == 200, (period, r.text)
        d = r.json()
        assert d["rows"] or d["reason"], (period, d)
    week = dash.get("/performance", params={"period": "1w", "strategy": "breakout"}).json()
    assert week["source"] == "to_date" and week["rows"][0]["start"] == "2024-11-18", (
        week
    )  # from the stored rows
    r = dash.get("/performance", params={"period": "2w"})
    assert r.status_code == 422 and "Allowed: 1d, 1m, 1w, to_date, ytd" in r.json()["error"]


def _update(text: str, chat: int = CHAT) -> dict:
    return {
        "update_id": 1,
        "message": {"message_id": 7, "chat": {"id": chat, "type": "private"}, "text": text},
    }


def test_telegram_commands_answer_allowed_chats_only(dash, telegram):
    hook = {"X-Telegram-Bot-Api-Secret-Token": HOOK}
    assert dash.client.post("/telegram/webhook", json=_update("/status")).status_code == 401
    r = dash.client.post(
        "/telegram/webhook", json=_update("/status"), headers={"X-Telegram-Bot-Api-Secret-Token": "x"}
    )
    assert r.status_code == 401
    seen = len(telegram.requests)
    r = dash.client.post("/telegram/webhook", json=_update("/status", chat=13), headers=hook)
    assert r.json() == {"ok": True, "answered": False, "reason": "chat not allowed"}
    assert len(telegram.requests) == seen  # a stranger gets nothing
    replies = {}
    for command in ("/status", "/signals", "/performance 1w", "/performance", "/runs", "/health", "/perf"):
        r = dash.client.post("/telegram/webhook", json=_update(command), headers=hook)
        assert r.status_code == 200 and r.json()["answered"], (command, r.text)
        req = telegram.requests[-1]
        assert req["path"] == f"/bot{OTHER_SECRET}/sendMessage" and req["json"]["chat_id"] == CHAT
        replies[command] = req["json"]["text"]
    assert "trading day" in replies["/status"] and "daily" in replies["/status"]
    newest = dash.sql("select max(date) from performance_current")[0][0]
    assert (
        f"ignals of {newest:%Y-%m-%d}" in replies["/signals"]
        or f"No signals on {newest:%Y-%m-%d}" in replies["/signals"]
    ), replies["/signals"]
    assert "Performance 1w" in replies["/performance 1w"] and "source: to_date" in replies["/performance 1w"]
    assert "Performance to_date" in replies["/performance"]
    assert "Newest runs" in replies["/runs"] and str(dash.warehouse.resolve()) in replies["/health"]
    assert "Unknown command /perf" in replies["/perf"] and "Did you mean 'performance'" in replies["/perf"]
    assert OTHER_SECRET not in dash.stderr.read_text() and HOOK not in dash.stderr.read_text()
