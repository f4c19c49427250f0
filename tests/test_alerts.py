"""Alerts against real servers on loopback: an aiosmtpd SMTP server and a fake Telegram Bot API."""
import email
import email.policy
import json
import logging
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from strategy_engine import alerts
from strategy_engine.alerts import AlertRules, RetryPolicy, evaluate_rules, notify_run, send_alerts

TOKEN = "7654321:AAH-test-token-never-logged_Zq9xY"
PASSWORD = "smtp-pw-never-logged-4411"
ALERT_ENV = ("TELEGRAM_BOT_TOKEN", "TELEGRAM_CHAT_ID", "TELEGRAM_API_BASE", "SMTP_HOST", "SMTP_PORT",
             "SMTP_USER", "SMTP_PASSWORD", "SMTP_FROM", "ALERT_EMAIL_TO", "SMTP_STARTTLS", "SSL_CERT_FILE")
FAILED_RUN = {"run_id": "2024-11-22_all_0of1", "status": "failed", "as_of": "2024-11-22",
              "kind": "production", "error": "DataError: INFY.csv: line 11: date '2010-13-45' is not a date"}
RETRY = RetryPolicy(attempts=4, base_delay_s=0.25, max_delay_s=5.0, timeout_s=5.0)
TELEGRAM_ONLY = AlertRules(channels=("telegram",), retry=RETRY)
EMAIL_ONLY = AlertRules(channels=("email",), retry=RETRY)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- a local stand-in for api.telegram.org
class FakeTelegram:
    """Records every request; answers from `script` (status, json body, headers) in order, then 200 ok."""

    def __init__(self):
        self.requests: list[dict] = []
        self.script: list[tuple[int, dict | None, dict]] = []
        self.delay_s = 0.0
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with fake.lock:
                    fake.requests.append({"path": self.path, "json": json.loads(body),
                                          "headers": dict(self.headers)})
                    status, payload, headers = fake.script.pop(0) if fake.script else (200, None, {})
                    n = len(fake.requests)
                time.sleep(fake.delay_s)
                if payload is None and status == 200:
                    payload = {"ok": True,
                               "result": {"message_id": n, "text": fake.requests[-1]["json"]["text"]}}
                data = json.dumps(payload).encode() if payload is not None else b""
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(autouse=True)
def clean_alert_env(monkeypatch):
    """No test sees the developer's real channel settings (nothing may reach real Telegram or mail)."""
    for name in ALERT_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def telegram(monkeypatch):
    fake = FakeTelegram()
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("TELEGRAM_CHAT_ID", "-1001234567890")
    monkeypatch.setenv("TELEGRAM_API_BASE", fake.url)
    yield fake
    fake.close()


# ---------------------------------------------------------------- a real SMTP server (aiosmtpd)
class Mailbox:
    """aiosmtpd handler: keeps each message; answers DATA from `replies` in order, then 250."""

    def __init__(self):
        self.envelopes = []
        self.replies: list[str] = []
        self.logins: list[tuple[bytes, bytes]] = []

    async def handle_DATA(self, server, session, envelope):
        reply = self.replies.pop(0) if self.replies else "250 Message accepted for delivery"
        if reply.startswith("250"):
            self.envelopes.append(envelope)
        return reply

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        if isinstance(auth_data, LoginPassword):
            self.logins.append((auth_data.login, auth_data.password))
            return AuthResult(
                success=auth_data.login == b"alerts" and auth_data.password == PASSWORD.encode()
            )
        return AuthResult(success=False, handled=False)

    def messages(self):
        return [email.message_from_bytes(e.original_content, policy=email.policy.default)
                for e in self.envelopes]


def smtp_env(monkeypatch, port: int, starttls: str = "false"):
    monkeypatch.setenv("SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("SMTP_PORT", str(port))
    monkeypatch.setenv("SMTP_FROM", "engine@example.com")
    monkeypatch.setenv("ALERT_EMAIL_TO", "ops@example.com, lead@example.com")
    monkeypatch.setenv("SMTP_STARTTLS", starttls)


@pytest.fixture
def smtp(monkeypatch):
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    smtp_env(monkeypatch, controller.port)
    yield box
    controller.stop()


@pytest.fixture
def tls_files(tmp_path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (openssl), for a STARTTLS server."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1", "-addext",
                    "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True)
    return cert, key


def no_secrets(caplog, deliveries, *secrets):
    """Assert that no secret appears in any captured log record (message or attribute) or delivery."""
    everything = caplog.text + "".join(repr(r.__dict__) + r.getMessage()
                                       for r in caplog.records) + repr(deliveries)
    for secret in secrets:
        assert secret not in everything


# ================================================================= email
def test_email_reaches_a_real_smtp_server(smtp, tmp_path):
    [alert] = evaluate_rules(FAILED_RUN, None, EMAIL_ONLY)
    [d] = send_alerts([alert], EMAIL_ONLY, state_dir=tmp_path, sleep=pytest.fail)
    assert (d.channel, d.status, d.attempts, d.error) == ("email", "sent", 1, "")
    [env] = smtp.envelopes
    assert env.mail_from == "engine@example.com" and env.rcpt_tos == ["ops@example.com", "lead@example.com"]
    [msg] = smtp.messages()
    assert msg["Subject"] == "[strategy-engine] [ERROR] Run 2024-11-22_all_0of1 failed"
    assert msg["From"] == "engine@example.com" and msg["To"] == "ops@example.com, lead@example.com"
    assert msg["X-Alert-Key"] == alert.digest and msg["X-Strategy-Engine-Run"] == "2024-11-22_all_0of1"
    body = msg.get_content()
    assert "Run 2024-11-22_all_0of1 (production, as of 2024-11-22) failed (status failed)." in body
    assert "INFY.csv: line 11: date '2010-13-45' is not a date" in body
    record = json.loads((tmp_path / f"{alert.digest}-email.json").read_text())
    assert record["state"] == "sent" and record["key"] == ["2024-11-22_all_0of1",
                                                           "failed"] and record["attempts"] == 1


def test_email_4xx_is_retried_5xx_is_not(smtp, tmp_path):
    [alert] = evaluate_rules(FAILED_RUN, None, EMAIL_ONLY)
    smtp.replies = ["451 4.3.0 Try again later"]
    waits = []
    [d] = send_alerts([alert], EMAIL_ONLY, state_dir=tmp_path, sleep=waits.append)
    assert (d.status, d.attempts, waits, len(smtp.envelopes)) == ("sent", 2, [0.25], 1)

    [other] = evaluate_rules({**FAILED_RUN, "status": "killed"}, None, EMAIL_ONLY)
    smtp.replies = ["554 5.7.1 Message rejected"]
    waits.clear()
    [d] = send_alerts([other], EMAIL_ONLY, state_dir=tmp_path, sleep=waits.append)
    assert (d.status, d.attempts, waits, len(smtp.envelopes)) == ("failed", 1, [], 1)
    assert "SMTP 554" in d.error and "Message rejected" in d.error
    assert not (tmp_path / f"{other.digest}-email.json").exists()           # released: a later retry may send


def test_email_starttls_with_login(monkeypatch, tls_files, tmp_path, caplog):
    cert, key = tls_files
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert), str(key))
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port(), tls_context=context,
                            require_starttls=True, authenticator=box.authenticate, auth_require_tls=True)
    controller.start()
    try:
        smtp_env(monkeypatch, controller.port, starttls="true")
        monkeypatch.setenv("SMTP_USER", "alerts")
        monkeypatch.setenv("SMTP_PASSWORD", PASSWORD)
        caplog.set_level(logging.DEBUG)
        [alert] = evaluate_rules(FAILED_RUN, None, EMAIL_ONLY)

        # the server's certificate is not trusted yet: a permanent failure, not retried
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "nothing-trusted.pem"))
        [d] = send_alerts([alert], EMAIL_ONLY, state_dir=tmp_path / "a", sleep=pytest.fail)
        assert (d.status, d.attempts) == ("failed", 1) and "certificate" in d.error, d
        assert box.logins == [] and box.envelopes == []

        # now trusted, as a CA bundle would
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        [d] = send_alerts([alert], EMAIL_ONLY, state_dir=tmp_path / "a", sleep=pytest.fail)
        assert (d.status, d.attempts) == ("sent", 1), d
        assert box.logins == [(b"alerts", PASSWORD.encode())] and len(box.envelopes) == 1
        assert box.messages()[0]["Subject"].endswith("Run 2024-11-22_all_0of1 failed")
        no_secrets(caplog, [d], PASSWORD)
    finally:
        controller.stop()


def test_email_starttls_required_but_server_lacks_it(smtp, monkeypatch, tmp_path):
    monkeypatch.setenv("SMTP_STARTTLS", "true")
    [alert] = evaluate_rules(FAILED_RUN, None, EMAIL_ONLY)
    [d] = send_alerts([alert], EMAIL_ONLY, state_dir=tmp_path, sleep=pytest.fail)
    assert (d.status, d.attempts) == ("failed", 1) and "STARTTLS" in d.error, d
    assert smtp.envelopes == []


# ================================================================= telegram
def test_telegram_message_sent_and_token_never_logged(telegram, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    [alert] = evaluate_rules(FAILED_RUN, None, TELEGRAM_ONLY)
    [d] = send_alerts([alert], TELEGRAM_ONLY, state_dir=tmp_path, sleep=pytest.fail)
    assert (d.channel, d.status, d.attempts) == ("telegram", "sent", 1)
    [req] = telegram.requests
    # the token really is in the URL ...
    assert req["path"] == f"/bot{TOKEN}/sendMessage"
    assert req["json"]["chat_id"] == "-1001234567890" and "parse_mode" not in req["json"]
    assert req["json"]["text"].startswith("[ERROR] Run 2024-11-22_all_0of1 failed\n\n")
    assert "line 11" in req["json"]["text"]
    httpx_lines = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert httpx_lines == [f'HTTP Request: POST {telegram.url}/bot***/sendMessage "HTTP/1.0 200 '
                           'OK"'], httpx_lines
    no_secrets(caplog, [d], TOKEN)                                          # ... and nowhere in the logs
    [sent] = [r for r in caplog.records if r.name == "strategy_engine.alerts"]
    assert (sent.run_id, sent.status, sent.channel, sent.delivery) == (
        "2024-11-22_all_0of1",
        "failed",
        "telegram",
        "sent",
    )


def test_a_token_quoted_in_a_run_error_is_not_sent(telegram, smtp, tmp_path):
    run = {**FAILED_RUN,
           "error": f"HTTPStatusError for url https://api.telegram.org/bot{TOKEN}/getMe (token {TOKEN})"}
    deliveries = notify_run(run, None, AlertRules(retry=RETRY), state_dir=tmp_path, sleep=pytest.fail)
    assert [d.status for d in deliveries] == ["sent", "sent"]
    [req], [msg] = telegram.requests, smtp.messages()
    for text in (req["json"]["text"], msg.get_content()):
        assert "https://api.telegram.org/bot***/getMe (token ***)" in text and TOKEN not in text


@pytest.mark.parametrize("answer, expected_wait", [
    ((429, {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 3",
            "parameters": {"retry_after": 3}}, {}), 3.0),
    ((429, {"ok": False, "error_code": 429, "description": "Too Many Requests",
            "parameters": {"retry_after": 3600}}, {}), 5.0),
    ((429, None, {"Retry-After": "2"}), 2.0),
])
def test_telegram_429_honours_retry_after(telegram, tmp_path, answer, expected_wait):
    """RELIABILITY 24: Telegram 429 retry_after is honoured; the run's status is unaffected."""
    telegram.script = [answer]
    waits = []
    [d] = send_alerts(evaluate_rules(FAILED_RUN, None, TELEGRAM_ONLY), TELEGRAM_ONLY, state_dir=tmp_path,
                      sleep=waits.append)
    assert (d.status, d.attempts, waits, len(telegram.requests)) == ("sent", 2, [expected_wait], 2)


def test_telegram_5xx_backs_off_exponentially_then_succeeds(telegram, tmp_path):
    telegram.script = [(500, {"ok": False, "error_code": 500, "description": "Internal Server Error"}, {}),
                       (502, None, {}), (503, None, {})]
    waits = []
    [d] = send_alerts(evaluate_rules(FAILED_RUN, None, TELEGRAM_ONLY), TELEGRAM_ONLY, state_dir=tmp_path,
                      sleep=waits.append)
    assert (d.status, d.attempts, waits, len(telegram.requests)) == ("sent", 4, [0.25, 0.5, 1.0], 4)


def test_telegram_always_500_fails_the_alert_not_the_run(telegram, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    telegram.script = [(500, {"ok": False, "error_code": 500, "description": "Internal Server Error"},
                        {})] * 4
    waits = []
    # returns, never raises
    deliveries = notify_run(FAILED_RUN, None, TELEGRAM_ONLY, state_dir=tmp_path, sleep=waits.append)
    [d] = deliveries
    assert (d.status, d.attempts, waits, len(telegram.requests)) == ("failed", 4, [0.25, 0.5, 1.0], 4)
    assert d.error == "HTTP 500 Internal Server Error (gave up after 4 tries)", d.error
    errors = [r for r in caplog.records if r.name == "strategy_engine.alerts" and r.levelno == logging.ERROR]
    assert len(errors) == 1 and errors[0].run_id == FAILED_RUN["run_id"] and errors[0].delivery == "failed"
    assert "HTTP 500 Internal Server Error" in errors[0].getMessage()
    assert sum(r.levelno == logging.WARNING
               for r in caplog.records if r.name == "strategy_engine.alerts") == 3
    no_secrets(caplog, deliveries, TOKEN)
    assert list(tmp_path.iterdir()) == []                                   # claim released ...
    [d] = notify_run(FAILED_RUN, None, TELEGRAM_ONLY, state_dir=tmp_path, sleep=pytest.fail)
    # ... so the retried run alerts once it works
    assert (d.status, len(telegram.requests)) == ("sent", 5)


def test_telegram_400_is_not_retried(telegram, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    telegram.script = [(400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"},
                        {})]
    [d] = send_alerts(evaluate_rules(FAILED_RUN, None, TELEGRAM_ONLY), TELEGRAM_ONLY, state_dir=tmp_path,
                      sleep=pytest.fail)
    assert (d.status, d.attempts, d.error, len(telegram.requests)) == (
        "failed",
        1,
        "HTTP 400 Bad Request: chat not found",
        1,
    )
    no_secrets(caplog, [d], TOKEN)


def test_unconfigured_channel_is_skipped_the_other_still_sends(smtp, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    # both channels; only SMTP is configured
    rules = AlertRules(retry=RETRY)
    deliveries = notify_run(FAILED_RUN, None, rules, state_dir=tmp_path, sleep=pytest.fail)
    assert [(d.channel, d.status) for d in deliveries] == [("telegram", "skipped"), ("email", "sent")]
    assert deliveries[0].error == "telegram is not configured: TELEGRAM_BOT_TOKEN, TELEGRAM_CHAT_ID not set"
    skipped = [r for r in caplog.records if getattr(r, "delivery", "") == "skipped"]
    assert (
        len(skipped) == 1
        and skipped[0].levelno == logging.WARNING
        and "TELEGRAM_BOT_TOKEN" in skipped[0].getMessage()
    )
    assert len(smtp.envelopes) == 1


# ================================================================= at most one alert per key
def test_same_alert_twice_is_delivered_once_also_from_a_second_process(telegram, tmp_path):
    """RELIABILITY 24: at most one alert per (run, status), across processes."""
    alerts = evaluate_rules(FAILED_RUN, None, TELEGRAM_ONLY)
    [first] = send_alerts(alerts, TELEGRAM_ONLY, state_dir=tmp_path)
    [again] = send_alerts(evaluate_rules({**FAILED_RUN, "error": "a retry failed differently"}, None,
                                         TELEGRAM_ONLY),
                          TELEGRAM_ONLY, state_dir=tmp_path)
    assert (first.status, again.status, len(telegram.requests)) == ("sent", "duplicate", 1)
    child = subprocess.run([sys.executable, "-c", CHILD, json.dumps(FAILED_RUN), str(tmp_path)],
                           capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr
    assert json.loads(child.stdout) == ["duplicate"] and len(telegram.requests) == 1
    # a different status of the same run is a different alert
    [timeout] = send_alerts(evaluate_rules({**FAILED_RUN, "status": "timeout"}, None,
                                           TELEGRAM_ONLY), TELEGRAM_ONLY,
                            state_dir=tmp_path)
    assert timeout.status == "sent" and len(telegram.requests) == 2


CHILD = """
import json, sys
from strategy_engine.alerts import AlertRules, RetryPolicy, evaluate_rules, send_alerts
rules = AlertRules(channels=("telegram",),
                   retry=RetryPolicy(attempts=1, base_delay_s=0, max_delay_s=0, timeout_s=10))
alerts = evaluate_rules(json.loads(sys.argv[1]), None, rules)
print(json.dumps([d.status for d in send_alerts(alerts, rules, state_dir=sys.argv[2])]))
"""


def test_concurrent_senders_deliver_once(telegram, tmp_path):
    # the winner is still sending while others try
    telegram.delay_s = 0.3
    alerts = evaluate_rules(FAILED_RUN, None, TELEGRAM_ONLY)
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(FAILED_RUN), str(tmp_path)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    barrier, results = threading.Barrier(6), []

    def sender():
        barrier.wait()
        results.extend(d.status for d in send_alerts(alerts, TELEGRAM_ONLY, state_dir=tmp_path))

    threads = [threading.Thread(target=sender) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        results.extend(json.loads(out))
    assert sorted(results) == ["duplicate"] * 8 + ["sent"], results
    assert len(telegram.requests) == 1


def test_notify_run_end_to_end_on_both_channels(telegram, smtp, tmp_path):
    """A successful run with one weak strategy: two result alerts, each on both channels, once."""
    perf = pd.DataFrame({"sharpe_ratio": [1.8, 0.6], "max_drawdown": [-0.03, -0.09]},
                        index=pd.Index(["momentum", "breakout"], name="strategy"))
    run = {"run_id": "2024-11-22_all_0of1", "status": "succeeded", "as_of": "2024-11-22",
           "kind": "production"}
    rules = AlertRules(retry=RETRY)
    deliveries = notify_run(run, perf, rules, state_dir=tmp_path, sleep=pytest.fail)
    assert [(d.key[2:], d.channel, d.status) for d in deliveries] == [
        (("min_sharpe", "breakout"), "telegram", "sent"), (("min_sharpe", "breakout"), "email", "sent"),
        (("max_drawdown", "breakout"), "telegram", "sent"), (("max_drawdown", "breakout"), "email", "sent")]
    assert [r["json"]["text"].splitlines()[0] for r in telegram.requests] == [
        "[WARNING] breakout: Sharpe 0.60 below 1.00", "[WARNING] breakout: drawdown 9.0% beyond 5.0%"]
    assert [m["Subject"] for m in smtp.messages()] == [
        "[strategy-engine] [WARNING] breakout: Sharpe 0.60 below 1.00",
        "[strategy-engine] [WARNING] breakout: drawdown 9.0% beyond 5.0%"]
    again = notify_run(run, perf, rules, state_dir=tmp_path, sleep=pytest.fail)
    assert (
        {d.status for d in again} == {"duplicate"}
        and len(telegram.requests) == 2
        and len(smtp.envelopes) == 2
    )


# ======================================================== the channel contract: every registered channel
def _telegram_double(monkeypatch):
    """The local Bot API; what it received, as text."""
    fake = FakeTelegram()
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("TELEGRAM_CHAT_ID", "-1001234567890")
    monkeypatch.setenv("TELEGRAM_API_BASE", fake.url)
    return fake.close, lambda: [r["path"] + json.dumps(r["json"]) for r in fake.requests]


def _email_double(monkeypatch):
    """A local SMTP server that takes a login on loopback; what it received, headers and body."""
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port(), authenticator=box.authenticate,
                            auth_require_tls=False)
    controller.start()
    smtp_env(monkeypatch, controller.port)
    monkeypatch.setenv("SMTP_USER", "alerts")
    monkeypatch.setenv("SMTP_PASSWORD", PASSWORD)
    return controller.stop, lambda: [str(m) for m in box.messages()]


LOCAL_DOUBLES = {"telegram": _telegram_double, "email": _email_double}   # channel -> a server on loopback


@pytest.mark.parametrize("name", alerts.channel_names())
def test_channel_contract(name, monkeypatch, tmp_path, caplog):
    """Every registered channel: it declares its environment and secrets, is skipped without them (naming the
    variables), delivers once through a real local server, and never lets a secret it declares out."""
    channel = alerts.get_channel(name)
    assert channel.name == name and channel.required_env
    assert all(isinstance(v, str) and v.isupper() for v in channel.required_env + channel.secret_env)
    rules = AlertRules(channels=(name,), retry=RETRY)
    [alert] = evaluate_rules(FAILED_RUN, None, rules)
    [skipped] = send_alerts([alert], rules, state_dir=tmp_path / "skipped", env={}, sleep=pytest.fail)
    assert skipped.status == "skipped" and all(v in skipped.error for v in channel.required_env), skipped
    if name not in LOCAL_DOUBLES:
        pytest.fail(f"channel {name!r} has no local server in LOCAL_DOUBLES: add one (tests/test_alerts.py)")
    stop, received = LOCAL_DOUBLES[name](monkeypatch)
    try:
        secrets = [os.environ[k] for k in channel.secret_env]
        leaky = {**FAILED_RUN, "error": "the run quoted " + " and ".join(secrets or ["nothing"])}
        [alert] = evaluate_rules(leaky, None, rules)
        caplog.set_level(logging.DEBUG)
        [sent] = send_alerts([alert], rules, state_dir=tmp_path / "store", sleep=pytest.fail)
        assert (sent.status, sent.attempts) == ("sent", 1), sent
        [text] = received()
        assert "the run quoted" in text and not any(s in text.replace(f"/bot{TOKEN}/", "") for s in secrets)
        no_secrets(caplog, [sent], *secrets)
        [again] = send_alerts([alert], rules, state_dir=tmp_path / "store", sleep=pytest.fail)
        assert again.status == "duplicate" and len(received()) == 1
    finally:
        stop()


def test_an_unknown_channel_fails_validation_listing_the_registered_ones():
    from strategy_engine.alerts import rules_from_dict
    from strategy_engine.core import ConfigError
    with pytest.raises(ConfigError) as e:
        rules_from_dict({"alerts": {"channels": ["telegram", "sms"]}}, "alerts.yaml")
    assert "'sms' is not a channel" in str(e.value)
    assert f"Allowed: {', '.join(alerts.channel_names())}." in str(e.value)
