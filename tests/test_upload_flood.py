"""An upload flood against a real ``ioc serve`` process: pixel bombs, 4K videos and 200 MB bodies
at once. The API process grows by at most 300 MB and comes back within 100 MB of where it
started; nothing is half-stored (no partial file, every stored file referenced, every report's
file present); the API keeps answering meanwhile.

The API runs as its own process so its memory is its own (``psutil`` reads its RSS and that of
its media workers). The 4K clips are 2 s long (30 frames) to keep ``make test`` short; the work
per frame is that of any 4K clip.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import psutil
import psycopg
import pytest
import requests
from PIL import Image
from staff import SECRET

from ioc.district.bootstrap import load_district_into
from ioc.net import free_port
from ioc.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
MB = 1024 * 1024


@pytest.fixture(scope="module")
def api(database_factory: Callable[..., str], mqtt_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    url = database_factory(migrated=True)
    load_district_into(url, Settings(_env_file=None, database_url=url), environ={})  # type: ignore[call-arg]
    var = tmp_path_factory.mktemp("flood-var")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOC_")}
    env.update(IOC_DATABASE_URL=url, IOC_MQTT_URL=mqtt_url, IOC_SECRET_KEY=SECRET, IOC_VAR_DIR=str(var),
               IOC_HTTP_HOST="127.0.0.1", IOC_HTTP_PORT=str(port), IOC_PUBLIC_SUBMIT_BURST="1000",
               IOC_PUBLIC_SUBMIT_PER_MIN="6000", IOC_LOG_LEVEL="WARNING")  # fmt: skip
    log = (var / "api.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "ioc.cli.main", "serve"], cwd=ROOT, env=env, stdout=log,
                               stderr=subprocess.STDOUT)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError((var / "api.log").read_text(errors="replace")[-3000:])
            time.sleep(0.3)
        yield base, process.pid, url, var
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def _pixel_bomb() -> bytes:
    """~150 KB of PNG that decodes to 6000 x 6600 RGBA (158 MB of pixels), under the pixel limit."""
    image = Image.new("RGBA", (6000, 6600), (30, 120, 60, 255))
    image.paste((200, 10, 10, 255), (100, 100, 5900, 200))
    out = io.BytesIO()
    image.save(out, "PNG", optimize=False, compress_level=9)
    return out.getvalue()


def _clip_4k(path: Path, frames: int = 30) -> bytes:
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 15, (3840, 2160))
    rng = np.random.default_rng(4)
    base = rng.integers(0, 255, (2160 // 8, 3840 // 8, 3), dtype=np.uint8)
    for i in range(frames):
        frame = cv2.resize(np.roll(base, i * 3, axis=1), (3840, 2160), interpolation=cv2.INTER_NEAREST)
        writer.write(frame)
    writer.release()
    return path.read_bytes()


class Sampler:
    """RSS of the API process (and of its children, the media workers) every 50 ms."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak_api = self.peak_tree = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def api_rss(self) -> int:
        return self.process.memory_info().rss

    def tree_rss(self) -> int:
        total = self.api_rss()
        for child in self.process.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += child.memory_info().rss
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_api = max(self.peak_api, self.api_rss())
            self.peak_tree = max(self.peak_tree, self.tree_rss())
            time.sleep(0.05)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


ANSWERS: list[str] = []


def _report(base: str, files: list[tuple[str, tuple[str, bytes, str]]]) -> int:
    response = requests.post(f"{base}/api/public/reports", timeout=300, files=files,
                             data={"category": "moi-truong", "description": "Ảnh hiện trường ngập"})  # fmt: skip
    ANSWERS.append(f"{response.status_code} {response.text[:200]}")
    return response.status_code


def _huge_body(base: str, declared: bool) -> int:
    """A well-formed multipart report whose photo is 200 MB, sent with its Content-Length declared
    or chunked (no length): refused 413 either way, the chunked one after ~100 MB at most."""
    import http.client
    from urllib.parse import urlsplit

    head = (b'--xx\r\nContent-Disposition: form-data; name="photos"; filename="big.jpg"\r\n'
            b"Content-Type: image/jpeg\r\n\r\n")  # fmt: skip
    size = 200 * MB
    address = urlsplit(base)
    conn = http.client.HTTPConnection(address.hostname, address.port, timeout=120)
    conn.putrequest("POST", "/api/public/reports")
    conn.putheader("Content-Type", "multipart/form-data; boundary=xx")
    if declared:
        conn.putheader("Content-Length", str(len(head) + size))
    else:
        conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    block = b"\xff" * MB
    try:
        for piece in [head] + [block] * (size // MB):
            conn.send(piece if declared else b"%x\r\n%s\r\n" % (len(piece), piece))
    except OSError:  # the server answered and closed: read what it said
        pass
    try:
        return conn.getresponse().status
    except (OSError, http.client.HTTPException):
        return -1
    finally:
        conn.close()


def test_an_upload_flood_keeps_the_api_within_its_memory_and_stores_nothing_half(api, tmp_path: Path) -> None:
    base, pid, database_url, var = api
    bomb = _pixel_bomb()
    clip = _clip_4k(tmp_path / "clip.mp4")
    photo = io.BytesIO()
    Image.new("RGB", (1600, 1200), (90, 90, 200)).save(photo, "JPEG")
    assert _report(base, [("photos", ("ok.jpg", photo.getvalue(), "image/jpeg"))]) == 201  # warm: pool started
    time.sleep(1.0)
    sampler = Sampler(pid)
    start_api, start_tree = sampler.api_rss(), sampler.tree_rss()
    latencies: list[float] = []
    with sampler, ThreadPoolExecutor(14) as pool:
        jobs = [pool.submit(_report, base, [("photos", (f"bomb{i}.png", bomb, "image/png"))]) for i in range(5)]
        jobs += [pool.submit(_report, base, [("video", (f"clip{i}.mp4", clip, "video/mp4"))]) for i in range(3)]
        jobs += [pool.submit(_huge_body, base, declared) for declared in (True, False)]
        while not all(j.done() for j in jobs):
            started = time.monotonic()
            assert requests.get(f"{base}/api/public/report-categories", timeout=30).status_code == 200
            latencies.append(time.monotonic() - started)
            time.sleep(0.2)
        statuses = [j.result() for j in jobs]
    assert statuses[-2:] == [413, 413], (statuses, ANSWERS)
    assert set(statuses[:8]) <= {201, 400, 503}, ANSWERS
    print("answers:", ANSWERS)
    time.sleep(2.0)
    end_api, end_tree = sampler.api_rss(), sampler.tree_rss()
    figures = {
        "api_start_mb": round(start_api / MB), "api_peak_growth_mb": round((sampler.peak_api - start_api) / MB),
        "api_after_delta_mb": round((end_api - start_api) / MB), "tree_start_mb": round(start_tree / MB),
        "tree_peak_growth_mb": round((sampler.peak_tree - start_tree) / MB),
        "tree_after_delta_mb": round((end_tree - start_tree) / MB), "statuses": statuses,
        "probe_max_s": round(max(latencies), 3),
    }  # fmt: skip
    print("flood:", figures)
    assert sampler.peak_api - start_api <= 300 * MB, figures
    assert end_api - start_api <= 100 * MB, figures
    assert end_tree - start_tree <= 100 * MB, figures
    # Nothing half-stored.
    media = var / "media"
    assert not [p for p in (media / "tmp").glob("*") if p.is_file()], "partial files left behind"
    on_disk = {str(p.relative_to(media)) for p in (media / "reports").rglob("*") if p.is_file()}
    with psycopg.connect(database_url) as conn:
        refs = dict(conn.execute("SELECT storage_key, refs FROM media_refs").fetchall())
        used = {k for row in conn.execute("SELECT storage_key, thumb_key FROM report_media").fetchall() for k in row}
        reports = conn.execute("SELECT count(*) FROM reports").fetchone()[0]
    assert on_disk <= {k for k, n in refs.items() if n > 0}, on_disk - set(refs)
    assert {k for k in used if k} <= on_disk
    assert reports == 1 + statuses.count(201)
