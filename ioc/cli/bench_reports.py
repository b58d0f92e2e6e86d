"""``ioc bench reports``: citizen report submissions with a photo, against two baselines.

Two HTTP servers run side by side in the same run, each its own uvicorn process: ``ioc serve``
(fresh database with the sample district) and a bare FastAPI app with two endpoints: ``/upload``
only receives the same multipart body and answers 201; ``/media`` does the media work the
contract needs on the same photo (decode, re-encode, thumbnail: the same ``prepare_photo`` in the
same kind of media process pool) and nothing else (no database, routing, alert). C client threads
post N reports, each with a JPEG of about M MB, to each in turn, interleaved in rounds. Reported:
reports/s, p50/p99 ms, refusals, the same for both baselines, ``ratio_to_bare_upload`` and
``ratio_to_bare_media`` (throughput).

Then ``GET /api/alerts`` (a staff token) is timed idle and again while C threads flood the API
with the same reports, 200 reads of each in 4 alternating rounds (a busy minute of a shared
machine falls on both alike), timed from a process of their own (not behind the flood threads'
client work for this one's interpreter): ``alerts_p99_idle_ms``, ``alerts_p99_flood_ms`` and their ratio
(the event loop neither decodes nor parses multipart bodies, so reads should stay fast under a
media flood).
"""

from __future__ import annotations

import io
import logging
import multiprocessing
import os
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

ROOT_DIR = Path(__file__).resolve().parent.parent.parent
log = logging.getLogger("ioc.bench.reports")

BARE_APP = """
import contextlib, tempfile
from pathlib import Path
from fastapi import FastAPI, File, Form, UploadFile
from ioc.reports.media import prepare_photo
from ioc.reports.media_pool import MediaPool
from ioc.reports.mediarefs import discard_parts
pool = MediaPool()
@contextlib.asynccontextmanager
async def lifespan(app):
    pool.warm()
    yield
    pool.shutdown()
app = FastAPI(lifespan=lifespan)
root = Path(tempfile.mkdtemp(prefix="ioc-bare-media-"))
@app.post("/upload", status_code=201)
async def upload(category: str = Form(), description: str = Form(), lat: float = Form(), lon: float = Form(),
                 photos: list[UploadFile] = File()):
    for photo in photos:
        await photo.read()
    return {"ok": True}
@app.post("/media", status_code=201)
async def media(category: str = Form(), description: str = Form(), lat: float = Form(), lon: float = Form(),
                photos: list[UploadFile] = File()):
    for photo in photos:
        stored = await pool.run(prepare_photo, await photo.read(), root, timeout_s=60)
        discard_parts(stored.parts)
    return {"ok": True}
"""


def photo_of_size(megabytes: float) -> bytes:
    """A JPEG of about ``megabytes`` MB (noise compresses badly, like a real photo's detail)."""
    from PIL import Image

    side = max(64, int((megabytes * 1e6 / 0.75) ** 0.5))  # noise JPEG at q92: about 1 byte a pixel
    rng = np.random.default_rng(7)
    image = Image.fromarray(rng.integers(0, 255, (side * 3 // 4, side, 3), dtype=np.uint8))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=92)
    return out.getvalue()


def _multipart(fields: dict[str, str], photo: bytes) -> tuple[bytes, str]:
    boundary = secrets.token_hex(16)
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in fields.items()]  # fmt: skip
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="photos"; filename="p.jpg"\r\n'
                 "Content-Type: image/jpeg\r\n\r\n".encode() + photo + b"\r\n")  # fmt: skip
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def _post(url: str, body: bytes, content_type: str) -> tuple[int, float]:
    started = time.perf_counter()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - our own local servers
            status = response.status
            response.read()
    except urllib.error.HTTPError as exc:
        status = exc.code
    return status, (time.perf_counter() - started) * 1000


def _run_load(url: str, body: bytes, content_type: str, n: int, concurrency: int) -> dict[str, Any]:
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(lambda _: _post(url, body, content_type), range(n)))
    elapsed = time.perf_counter() - started
    ok = sorted(ms for status, ms in results if status == 201)
    return {
        "per_s": len(ok) / elapsed if elapsed else 0.0,
        "p50": _pct(ok, 0.5),
        "p99": _pct(ok, 0.99),
        "refused": len(results) - len(ok),
        "latencies": ok,
        "elapsed": elapsed,
    }


def _wait(url: str, proc: subprocess.Popen) -> None:
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            raise ConnectionError(f"a server exited during start-up ({url})")
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310
                return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.2)
    raise ConnectionError(f"{url} did not come up")


def run_bench(settings: Any, *, concurrency: int, photo_mb: float, reports: int) -> dict[str, Any]:
    from ingest.bench import _fresh_database, _server, _Stack
    from ioc.district.bootstrap import load_district_into
    from ioc.net import free_port

    photo = photo_of_size(photo_mb)
    with tempfile.TemporaryDirectory(prefix="ioc-bench-reports-") as tmpdir, _Stack() as stack:
        tmp = Path(tmpdir)
        admin_url, db_kind = _server(settings, stack, tmp)
        db = _fresh_database(admin_url, stack)
        load_district_into(db, settings.model_copy(update={"database_url": db}), environ={})
        api_port, bare_port = free_port(), free_port()
        env = dict(os.environ, IOC_DATABASE_URL=db, IOC_MQTT_URL=settings.mqtt_url or "mqtt://127.0.0.1:1",
                   IOC_LOG_LEVEL="WARNING", IOC_VAR_DIR=str(tmp / "var"), IOC_SECRET_KEY=secrets.token_urlsafe(32),
                   IOC_PUBLIC_SUBMIT_BURST=str(reports * 2), IOC_PUBLIC_SUBMIT_PER_MIN="100000")  # fmt: skip
        (tmp / "bare_app.py").write_text(BARE_APP)
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "ioc.cli.main", "serve", "--port", str(api_port)], cwd=ROOT_DIR, env=env
            ),  # fmt: skip
            subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "bare_app:app", "--port", str(bare_port), "--log-level", "warning"],
                cwd=tmp,
                env=env,
            ),  # fmt: skip
        ]

        def stop() -> None:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()

        stack.callback(stop)
        _wait(f"http://127.0.0.1:{api_port}/healthz", procs[0])
        _wait(f"http://127.0.0.1:{bare_port}/docs", procs[1])
        fields = {"category": "ha-tang", "description": "Cầu treo hỏng ván, nguy hiểm cho học sinh.",
                  "lat": "15.4300", "lon": "108.0700"}  # fmt: skip
        body, content_type = _multipart(fields, photo)
        targets = {"bare": f"http://127.0.0.1:{bare_port}/upload", "media": f"http://127.0.0.1:{bare_port}/media",
                   "system": f"http://127.0.0.1:{api_port}/api/public/reports"}  # fmt: skip
        log.info("servers up; warming up")
        for url in targets.values():  # warm: pools started, first-request costs paid
            _run_load(url, body, content_type, min(reports, concurrency), concurrency)
        rounds = 3
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
        log.info("measuring %d rounds", rounds)
        for _ in range(rounds):  # interleaved, so a slow minute of the machine hits all three alike
            for name, url in targets.items():
                runs[name].append(_run_load(url, body, content_type, max(1, reports // rounds), concurrency))
        bare, media, system = (_merge(runs[name]) for name in ("bare", "media", "system"))
        log.info("GET /api/alerts idle, then under a media flood")
        alerts = _alerts_under_flood(db, f"http://127.0.0.1:{api_port}", targets["system"], body, content_type,
                                     concurrency)  # fmt: skip

    def rnd(value: float | None) -> float | None:
        return None if value is None else round(value, 2)

    return {
        "bench": "reports",
        "concurrency": concurrency,
        "photo_mb": round(len(photo) / 1e6, 2),
        "reports": reports,
        "database": db_kind,
        "cpu_count": os.cpu_count(),
        "reports_per_s": rnd(system["per_s"]),
        "p50_ms": rnd(system["p50"]),
        "p99_ms": rnd(system["p99"]),
        "refused": system["refused"],
        "bare_upload_per_s": rnd(bare["per_s"]),
        "bare_upload_p50_ms": rnd(bare["p50"]),
        "bare_upload_p99_ms": rnd(bare["p99"]),
        "ratio_to_bare_upload": rnd(system["per_s"] / bare["per_s"]) if bare["per_s"] else None,
        "ratio_to_bare_upload_p99": rnd(system["p99"] / bare["p99"]) if system["p99"] and bare["p99"] else None,
        "bare_media_per_s": rnd(media["per_s"]),
        "bare_media_p50_ms": rnd(media["p50"]),
        "bare_media_p99_ms": rnd(media["p99"]),
        "ratio_to_bare_media": rnd(system["per_s"] / media["per_s"]) if media["per_s"] else None,
        "alerts_p50_idle_ms": rnd(alerts["idle_p50"]),
        "alerts_p99_idle_ms": rnd(alerts["idle_p99"]),
        "alerts_p50_flood_ms": rnd(alerts["flood_p50"]),
        "alerts_p99_flood_ms": rnd(alerts["flood_p99"]),
        "alerts_p99_ratio_flood_to_idle": rnd(alerts["flood_p99"] / alerts["idle_p99"]) if alerts["idle_p99"] else None,
        "flood_reports_sent": alerts["flood_sent"],
    }


def _merge(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Rounds of one target as one figure: total accepted over total time; pooled percentiles."""
    ok = sorted(ms for run in runs for ms in run["latencies"])
    elapsed = sum(run["elapsed"] for run in runs)
    return {"per_s": len(ok) / elapsed if elapsed else 0.0, "p50": _pct(ok, 0.5), "p99": _pct(ok, 0.99),
            "refused": sum(run["refused"] for run in runs)}  # fmt: skip


def _pct(values: list[float], q: float) -> float | None:
    return values[min(len(values) - 1, int(q * (len(values) - 1)))] if values else None


def _timed_reads(url: str, token: str, n: int) -> list[float]:
    """``n`` timed ``GET`` of ``url`` (ms), one at a time, 10 ms apart."""
    out = []
    for _ in range(n):
        started = time.perf_counter()
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - our own local server
            response.read()
        out.append((time.perf_counter() - started) * 1000)
        time.sleep(0.01)
    return out


def _alerts_under_flood(database_url: str, base: str, report_url: str, body: bytes, content_type: str,
                        concurrency: int, samples: int = 200, rounds: int = 4) -> dict[str, Any]:  # fmt: skip
    """``GET /api/alerts`` p50/p99 idle and while ``concurrency`` threads post reports nonstop,
    ``samples`` reads of each, in ``rounds`` alternating rounds."""
    import json
    import threading

    import psycopg

    from ioc.auth import passwords, repository

    password = secrets.token_urlsafe(16)
    with psycopg.connect(database_url) as conn:
        repository.create_user(conn, username="bench-operator", display_name="bench", role="operator", unit_id=None,
                               password_hash=passwords.hash_password(password))  # fmt: skip
    credentials = json.dumps({"username": "bench-operator", "password": password}).encode()
    login = urllib.request.Request(f"{base}/api/auth/login", method="POST", data=credentials,
                                   headers={"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(login, timeout=30) as response:  # noqa: S310 - our own local server
        token = json.load(response)["access_token"]

    sent = 0

    def flooded_reads(n: int) -> list[float]:
        nonlocal sent
        stop = threading.Event()

        def flood() -> None:
            nonlocal sent
            while not stop.is_set():
                _post(report_url, body, content_type)
                sent += 1

        threads = [threading.Thread(target=flood, daemon=True) for _ in range(concurrency)]
        for thread in threads:
            thread.start()
        time.sleep(2.0)  # the flood is under way
        try:
            return reader.submit(_timed_reads, url, token, n).result()
        finally:
            stop.set()
            for thread in threads:  # the flood's last requests finish: the next idle round is idle
                thread.join(120)

    # Idle and flooded reads alternate in rounds, so that a busy minute of a shared machine (its
    # other processes) falls on both alike rather than on one of them.
    # The reads are timed from a process of their own: in this one they would wait for the
    # interpreter behind the 20 flood threads' HTTP client work, and count that as the API's time.
    idle: list[float] = []
    loaded: list[float] = []
    url = f"{base}/api/alerts?limit=50"
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as reader:
        reader.submit(_timed_reads, url, token, 1).result()  # started before any flood thread
        for index in range(rounds):
            idle += reader.submit(_timed_reads, url, token, samples // rounds).result()
            log.info("round %d/%d: idle reads done; flooding", index + 1, rounds)
            loaded += flooded_reads(samples // rounds)
            log.info("round %d/%d: reads under the flood done", index + 1, rounds)
    idle.sort()
    loaded.sort()
    return {"idle_p50": _pct(idle, 0.5), "idle_p99": _pct(idle, 0.99), "flood_p50": _pct(loaded, 0.5),
            "flood_p99": _pct(loaded, 0.99), "flood_sent": sent}  # fmt: skip
