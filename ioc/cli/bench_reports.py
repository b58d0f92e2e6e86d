"""``ioc bench reports``: citizen report submissions with a photo, against a bare upload endpoint.

Two HTTP servers run side by side in the same run, each its own uvicorn process: ``ioc serve``
(fresh database with the sample district) and a bare FastAPI app whose endpoint only receives the
same multipart body and answers 201. C client threads post N reports, each with a JPEG of about
M MB, to each in turn. Reported: reports/s, p50/p99 ms, refusals, and the same for the baseline,
with ``ratio_to_bare_upload`` (throughput) and ``ratio_to_bare_upload_p99``.
"""

from __future__ import annotations

import io
import os
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

ROOT_DIR = Path(__file__).resolve().parent.parent.parent

BARE_APP = """
from fastapi import FastAPI, File, Form, UploadFile
app = FastAPI()
@app.post("/upload", status_code=201)
async def upload(category: str = Form(), description: str = Form(), lat: float = Form(), lon: float = Form(),
                 photos: list[UploadFile] = File()):
    for photo in photos:
        await photo.read()
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
        "p50": ok[len(ok) // 2] if ok else None,
        "p99": ok[min(len(ok) - 1, int(0.99 * (len(ok) - 1)))] if ok else None,
        "refused": len(results) - len(ok),
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
    from ioc.embedded.broker import free_port

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
        bare = _run_load(f"http://127.0.0.1:{bare_port}/upload", body, content_type, reports, concurrency)
        system = _run_load(f"http://127.0.0.1:{api_port}/api/public/reports", body, content_type, reports, concurrency)

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
    }
