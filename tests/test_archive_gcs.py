"""The run archive over the google-cloud-storage client, against a local emulator of the GCS JSON API.

A small HTTP server on 127.0.0.1 implements the request paths the client uses (multipart and
resumable upload with `ifGenerationMatch`, media download with `x-goog-hash`, object metadata,
paginated listing) with GCS's create-only semantics, and records every request.

What this proves: `GCSArchive` sends `ifGenerationMatch=0` on every upload (multipart and
resumable), treats 412 as "compare the bytes", survives the client's own retry of an upload
whose response was lost, lists across pages, and `verify` finds tampering there as it does
locally. What it does NOT prove: behaviour of the real service (consistency, error bodies,
quotas), retention policies/locks, IAM permissions, CMEK, or authentication.
"""
import base64
import hashlib
import itertools
import json
import re
import struct
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

import google_crc32c
import nbformat
import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from strategy_engine.runs.archive import (
    ALREADY,
    CREATED,
    ArchiveConflict,
    ArchiveError,
    GCSArchive,
    archive_run,
    build_manifest,
    list_runs,
    open_archive,
    scan_for_secrets,
    show_run,
    verify,
)
from strategy_engine.runs.contract import make_run_id

BUCKET = "audit-bucket"


class FakeGCS:
    """In-memory buckets with GCS's generation preconditions, plus a log of every request."""

    def __init__(self, page_size: int = 3):
        self.objects: dict[str, tuple[bytes, int]] = {}   # object name -> (bytes, generation)
        self.requests: list[dict] = []
        self.sessions: dict[str, dict] = {}
        self.page_size = page_size
        self.lose_responses = 0                            # store the next N uploads, then answer 503
        self.lock = threading.Lock()
        self.generations = itertools.count(1_700_000_000_000_000)

    def resource(self, name: str) -> dict:
        data, gen = self.objects[name]
        crc = base64.b64encode(struct.pack(">I", google_crc32c.value(data))).decode()
        return {"kind": "storage#object", "bucket": BUCKET, "name": name, "generation": str(gen),
                "metageneration": "1", "size": str(len(data)), "crc32c": crc,
                "md5Hash": base64.b64encode(hashlib.md5(data).digest()).decode(),
                "id": f"{BUCKET}/{name}/{gen}"}

    def create(self, name: str, data: bytes, if_generation_match: str | None) -> tuple[int, dict]:
        """Create or replace an object, honouring ifGenerationMatch (0: only if absent) atomically."""
        with self.lock:
            current = self.objects.get(name)
            if if_generation_match is not None and int(if_generation_match) != (current[1] if current else 0):
                return 412, {"error": {"code": 412, "message": "At least one of the pre-conditions you "
                                                               "specified did not hold."}}
            self.objects[name] = (data, next(self.generations))
            return 200, self.resource(name)


def make_handler(gcs: FakeGCS):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # headers and body in separate packets would cost ~40 ms per request
        disable_nagle_algorithm = True
        wbufsize = 1 << 16

        def log_message(self, *args):  # keep pytest output clean
            pass

        def _send(self, code: int, body: bytes | dict = b"", headers: dict | None = None):
            if isinstance(body, dict):
                body, headers = json.dumps(body).encode(), {"Content-Type": "application/json",
                                                            **(headers or {})}
            self.send_response(code)
            for k, v in (headers or {}).items(): self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _parse(self) -> tuple[str, dict, bytes]:
            url = urlsplit(self.path)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            gcs.requests.append({"method": self.command, "path": url.path, "query": query,
                                 "bytes": len(body)})
            return url.path, query, body

        def _finish_upload(self, name: str, data: bytes, query: dict):
            code, resource = gcs.create(name, data, query.get("ifGenerationMatch"))
            if code == 200 and gcs.lose_responses:
                gcs.lose_responses -= 1
                return self._send(503, {"error": {"code": 503, "message": "backend error (response lost)"}})
            self._send(code, resource)

        def do_POST(self):
            path, query, body = self._parse()
            if path != f"/upload/storage/v1/b/{BUCKET}/o":
                return self._send(404, {"error": {"code": 404, "message": f"no route {path}"}})
            if query.get("uploadType") == "multipart":
                boundary = re.search(r'boundary="?([^";]+)"?', self.headers["Content-Type"])[1].encode()
                parts = body.split(b"--" + boundary)
                meta_part, data_part = parts[1], parts[2]
                meta = json.loads(meta_part[meta_part.index(b"\r\n\r\n") + 4:-2])
                data = data_part[data_part.index(b"\r\n\r\n") + 4:-2]
                crc = base64.b64encode(struct.pack(">I", google_crc32c.value(data))).decode()
                if "crc32c" in meta and meta["crc32c"] != crc:
                    return self._send(400, {"error": {"code": 400, "message": "crc32c mismatch"}})
                return self._finish_upload(meta["name"], data, query)
            if query.get("uploadType") == "resumable":
                meta = json.loads(body or b"{}")
                if query.get("ifGenerationMatch") == "0" and meta["name"] in gcs.objects:
                    return self._send(412, {"error": {"code": 412, "message": "precondition failed"}})
                sid = hashlib.sha256(f"{meta['name']}{len(gcs.sessions)}".encode()).hexdigest()[:16]
                gcs.sessions[sid] = {"name": meta["name"], "query": query, "data": b""}
                host = f"http://127.0.0.1:{self.server.server_address[1]}"
                return self._send(200, b"",
                                  {"Location": f"{host}{path}?uploadType=resumable&upload_id={sid}"})
            self._send(400, {"error": {"code": 400, "message": "unsupported uploadType"}})

        def do_PUT(self):
            path, query, body = self._parse()
            session = gcs.sessions.get(query.get("upload_id", ""))
            if session is None: return self._send(404, {"error": {"code": 404, "message": "no such upload"}})
            m = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+|\*)", self.headers.get("Content-Range", ""))
            session["data"] += body
            if m and m[3] != "*" and int(m[2]) + 1 == int(m[3]):
                return self._finish_upload(session["name"], session["data"], session["query"])
            self._send(308, b"", {"Range": f"bytes=0-{len(session['data']) - 1}"})

        def do_GET(self):
            path, query, _ = self._parse()
            download = re.fullmatch(rf"/download/storage/v1/b/{BUCKET}/o/(.+)", path)
            meta = re.fullmatch(rf"/storage/v1/b/{BUCKET}/o/(.+)", path)
            if download or meta:
                name = unquote((download or meta)[1])
                if name not in gcs.objects:
                    return self._send(404, {"error": {"code": 404, "message": f"No such object: {name}"}})
                if meta: return self._send(200, gcs.resource(name))
                r = gcs.resource(name)
                return self._send(200, gcs.objects[name][0], {
                    "Content-Type": "application/octet-stream", "x-goog-generation": r["generation"],
                    "x-goog-hash": f"crc32c={r['crc32c']},md5={r['md5Hash']}"})
            if path == f"/storage/v1/b/{BUCKET}":         # the client's background bucket-metadata fetch
                return self._send(200, {"kind": "storage#bucket", "name": BUCKET, "id": BUCKET,
                                        "location": "ASIA-SOUTH1", "metageneration": "1",
                                        "storageClass": "STANDARD"})
            if path == f"/storage/v1/b/{BUCKET}/o":
                names = sorted(n for n in gcs.objects if n.startswith(query.get("prefix", "")))
                start = int(query.get("pageToken", 0))
                page = names[start:start + gcs.page_size]
                out: dict = {"kind": "storage#objects", "items": [gcs.resource(n) for n in page]}
                if start + gcs.page_size < len(names): out["nextPageToken"] = str(start + gcs.page_size)
                return self._send(200, out)
            self._send(404, {"error": {"code": 404, "message": f"no route {path}"}})

    return Handler


@pytest.fixture
def gcs():
    fake = FakeGCS()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(fake))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    fake.client = storage.Client(
        project="test",
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": f"http://127.0.0.1:{server.server_address[1]}"},
    )
    yield fake
    server.shutdown()
    server.server_close()


def uploads(gcs: FakeGCS) -> list[dict]:
    return [r for r in gcs.requests if r["method"] in ("POST", "PUT") and r["path"].startswith("/upload/")]


def test_put_is_create_only(gcs):
    """RELIABILITY 4: a second upload to an existing object path fails 412; same bytes: already archived."""
    arc = open_archive(f"gs://{BUCKET}/prod/runs", client=gcs.client)
    assert isinstance(arc, GCSArchive)
    key = "2024/11/22/daily-2024-11-22-abcd1234/attempt-1/manifest.json"
    assert arc.put(key, b'{"status":"succeeded"}') == CREATED
    assert list(gcs.objects) == [f"prod/runs/{key}"]
    generation = gcs.objects[f"prod/runs/{key}"][1]
    assert arc.put(key, b'{"status":"succeeded"}') == ALREADY
    with pytest.raises(ArchiveConflict,
                       match=f"gs://{BUCKET}/prod/runs/{key} is already archived with different bytes"):
        arc.put(key, b'{"status":"failed"}')
    # same bytes, same generation
    assert gcs.objects[f"prod/runs/{key}"] == (b'{"status":"succeeded"}', generation)
    ups = uploads(gcs)
    assert len(ups) == 3 and all(u["query"].get("ifGenerationMatch") == "0" for u in ups), ups
    assert all(u["query"]["uploadType"] == "multipart" for u in ups)
    assert arc.get(key) == b'{"status":"succeeded"}' and arc.exists(key) and not arc.exists(key + ".x")
    with pytest.raises(ArchiveError, match="is not in the archive"):
        arc.get("ledger/00000009.json")
    # control: the emulator does overwrite when the precondition is left out, so the checks above can fail
    gcs.client.bucket(BUCKET).blob(f"prod/runs/{key}").upload_from_string(b"overwritten")
    assert arc.get(key) == b"overwritten"


def test_list_pages_and_prefixes(gcs):
    arc = GCSArchive(BUCKET, "p", gcs.client)
    keys = [f"ledger/{i:08d}.json" for i in range(7)] + ["2024/01/02/r/attempt-1/manifest.json"]
    for k in keys: arc.put(k, k.encode())
    gcs.objects["pp/ledger/00000099.json"] = (b"not ours", 1)      # a sibling prefix must not leak in
    gcs.requests.clear()
    assert arc.list("ledger/") == keys[:7]
    assert arc.list() == sorted(keys)
    pages = [r for r in gcs.requests if r["path"] == f"/storage/v1/b/{BUCKET}/o"]
    assert len(pages) == 3 + 3 and pages[1]["query"]["pageToken"] == "3"   # 7 and 8 objects in pages of 3


def test_lost_response_is_retried_and_reads_as_already_archived(gcs):
    arc = GCSArchive(BUCKET, "", gcs.client)
    # stored, but the client sees 503 and retries with the same precondition
    gcs.lose_responses = 1
    assert arc.put("ledger/00000000.json", b"entry") == ALREADY
    ups = uploads(gcs)
    assert len(ups) == 2 and all(u["query"]["ifGenerationMatch"] == "0" for u in ups)
    assert gcs.objects["ledger/00000000.json"][0] == b"entry" and len(gcs.objects) == 1


def test_large_object_uses_resumable_upload_with_precondition(gcs):
    arc = GCSArchive(BUCKET, "big", gcs.client)
    data = bytes(range(256)) * (9 * 4096)                  # 9 MiB: above the client's 8 MiB multipart limit
    key = "2024/11/22/r/attempt-1/daily_signals.ipynb"
    assert arc.put(key, data) == CREATED and arc.get(key) == data
    assert arc.put(key, data) == ALREADY
    with pytest.raises(ArchiveConflict):
        arc.put(key, data[:-1] + b"!")
    starts = [u for u in uploads(gcs) if u["method"] == "POST"]
    assert [u["query"]["uploadType"] for u in starts] == ["resumable"] * 3
    assert all(u["query"]["ifGenerationMatch"] == "0" for u in starts)
    assert gcs.objects[f"big/{key}"][0] == data


def _toy_notebook(path: Path, text: str) -> Path:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("print(text)", execution_count=1)
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text + "\n")]
    nb.cells = [cell]
    nbformat.write(nb, str(path))
    return path


def _archive_day(arc, tmp_path: Path, day: str, text: str, status: str = "succeeded") -> dict:
    run_id = make_run_id("daily", day, {"strategies": ["momentum"], "shard": [0, 1]})
    folder = tmp_path / f"{day}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"
    folder.mkdir()
    nb = _toy_notebook(folder / "daily_signals.ipynb", text)
    t0 = datetime(2024, 11, 22, 10, tzinfo=UTC)
    manifest = build_manifest(run_id, "daily", status, day, t0, t0 + timedelta(seconds=42), {"as_of": day},
                              notebook=nb, warehouse_rows={"signals": 7}, env={})
    return archive_run(arc, manifest, nb, secrets={})


def test_archive_verify_and_tampering_over_gcs(gcs, tmp_path):
    arc = open_archive(f"gs://{BUCKET}/runs", client=gcs.client)
    r = [_archive_day(arc, tmp_path, d, f"run {d}") for d in ("2024-11-20", "2024-11-21", "2024-11-22")]
    assert [x["seq"] for x in r] == [0, 1, 2]
    assert (
        r[1]["notebook_uri"]
        == f"gs://{BUCKET}/runs/2024/11/21/{r[1]['run_id']}/attempt-1/daily_signals.ipynb"
    )
    report = verify(arc)
    assert report.ok and report.entries == 3 and report.head == r[2]["hash"], report.summary()
    assert list(list_runs(arc)["run_id"]) == [x["run_id"] for x in r]
    assert show_run(arc, r[1]["run_id"])["verified"]
    assert all(u["query"].get("ifGenerationMatch") == "0" for u in uploads(gcs))
    # notebook, manifest, ledger entry per run; nothing rewritten
    assert len(uploads(gcs)) == 9

    # someone with overwrite rights (no retention lock) changes one byte of run 2's notebook
    name = f"runs/2024/11/21/{r[1]['run_id']}/attempt-1/daily_signals.ipynb"
    data = bytearray(gcs.objects[name][0])
    data[len(data) // 2] ^= 1
    gcs.objects[name] = (bytes(data), gcs.objects[name][1] + 1)
    report = verify(arc)
    assert [(p.run_id, p.kind) for p in report.problems] == [(r[1]["run_id"],
                                                              "notebook_hash")], report.summary()
    assert not show_run(arc, r[1]["run_id"])["verified"] and show_run(arc, r[2]["run_id"])["verified"]

    # ... or deletes a ledger entry
    del gcs.objects["runs/ledger/00000001.json"]
    kinds = [(p.run_id, p.kind) for p in verify(arc).problems]
    assert kinds[0] == (r[2]["run_id"], "chain_link") and (r[1]["run_id"], "not_in_ledger") in kinds


def test_concurrent_runs_never_fork_the_chain(gcs, tmp_path):
    arc = GCSArchive(BUCKET, "runs", gcs.client)
    days = [f"2024-12-{d:02d}" for d in range(2, 14)]
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda d: _archive_day(arc, tmp_path, d, f"run {d}"), days))
    report = verify(arc)
    assert report.ok and report.entries == len(days), report.summary()
    assert sorted(x["seq"] for x in results) == list(range(len(days)))
    assert all(u["query"].get("ifGenerationMatch") == "0" for u in uploads(gcs))
    print(f"{sum(x['ledger_retries'] for x in results)} ledger retries under 6 threads")


def test_secret_scan_over_gcs(gcs, tmp_path):
    arc = GCSArchive(BUCKET, "runs", gcs.client)
    _archive_day(arc, tmp_path, "2024-11-22", "clean output")
    secret = {"SMTP_PASSWORD": "hunter2-but-longer"}
    assert scan_for_secrets(arc, secret) == []
    arc.put("2024/11/22/leaky/attempt-1/daily_signals.ipynb",
            json.dumps({"text": "pw=hunter2-but-longer"}).encode())
    assert [(h.key, h.name) for h in scan_for_secrets(arc, secret)] == [
        ("2024/11/22/leaky/attempt-1/daily_signals.ipynb", "SMTP_PASSWORD")]


def test_object_names_are_url_quoted(gcs):
    arc = GCSArchive(BUCKET, "x", gcs.client)
    arc.put("2024/11/22/a.b_c-d/attempt-1/manifest.json", b"{}")
    assert arc.get("2024/11/22/a.b_c-d/attempt-1/manifest.json") == b"{}"
    downloads = [r for r in gcs.requests if r["path"].startswith("/download/")]
    quoted = quote("x/2024/11/22/a.b_c-d/attempt-1/manifest.json", safe="")
    assert [(r["path"], r["query"]) for r in downloads] == [(f"/download/storage/v1/b/{BUCKET}/o/{quoted}",
                                                             {"alt": "media"})]
