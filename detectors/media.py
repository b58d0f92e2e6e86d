"""Sample videos for tests and benchmarks: OpenCV's ``vtest.avi`` from Debian's ``opencv-doc`` package, and short
clips shipped in ``tests/data`` (see ``shipped_clip``).

``vtest.avi`` is fetched with ``apt-get download`` (no root needed), unpacked with ``dpkg-deb``, checked
against a pinned sha256 and cached beside the models, so tests and ``ioc bench detect`` run on the same pixels
everywhere. A shipped clip is checked against its pinned sha256 on every use.
"""

from __future__ import annotations

import subprocess
import tarfile
import tempfile
from pathlib import Path

from detectors.model_store import PROJECT_ROOT, ModelUnavailable, model_dir, sha256_of

VTEST_SHA256 = "45cddc9490be69345cbdab64ca583be65987e864ca408038e648db99e10516cf"
_VTEST_MEMBER = "./usr/share/doc/opencv-doc/examples/data/vtest.avi"


def vtest_video(cache: Path | None = None) -> Path:
    """Path of the cached, verified ``vtest.avi`` (768x576, 795 frames of pedestrians)."""
    target = (cache or model_dir()).parent / "media" / "vtest.avi"
    if target.exists() and sha256_of(target) == VTEST_SHA256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ioc-media-") as tmp:
        got = subprocess.run(["apt-get", "download", "opencv-doc"], cwd=tmp, capture_output=True, text=True)
        debs = list(Path(tmp).glob("opencv-doc_*.deb"))
        if got.returncode != 0 or not debs:
            raise ModelUnavailable(f"apt-get download opencv-doc failed (offline?): {got.stderr.strip()[-400:]}")
        tar_path = Path(tmp) / "data.tar"
        with tar_path.open("wb") as out:
            subprocess.run(["dpkg-deb", "--fsys-tarfile", str(debs[0])], stdout=out, check=True)
        with tarfile.open(tar_path) as archive:
            member = archive.extractfile(_VTEST_MEMBER)
            if member is None:
                raise ModelUnavailable("vtest.avi is missing from the opencv-doc package")
            partial = target.with_suffix(".part")
            partial.write_bytes(member.read())
    if sha256_of(partial) != VTEST_SHA256:
        partial.unlink()
        raise ModelUnavailable(f"vtest.avi does not match its pinned sha256 {VTEST_SHA256}")
    partial.replace(target)
    return target


def shipped_clip(relative: str, sha256: str) -> Path:
    """A short clip kept in the repository (small enough to ship, so the tests need no network), checked
    against its pinned sha256: a checkout that holds a Git LFS pointer or a truncated file fails here by name
    instead of scoring the detector on the wrong pixels."""
    path = PROJECT_ROOT / relative
    if not path.exists():
        raise ModelUnavailable(f"{relative} is missing from this checkout")
    if sha256_of(path) != sha256:
        raise ModelUnavailable(f"{relative} does not match its pinned sha256 {sha256}")
    return path
