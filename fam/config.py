"""Typed, frozen settings parsed once from ``params.yaml``.

``params.yaml`` is the single source of settings: the CLI, the DVC stages and the Prefect flows
all call :func:`load_params`, and nothing else reads the YAML. Every section is a frozen
dataclass; unknown keys and wrong types are :class:`~fam.errors.ConfigError` naming the key
path, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from fam.errors import ConfigError

DEFAULT_PARAMS_PATH = Path("params.yaml")


# --------------------------------------------------------------------------------------------
# Models: each role names a registered builder plus free-form options that the builder checks.


@dataclass(frozen=True)
class ModelSpec:
    name: str  # registry name, see ``fam models`` / fam.models.factory
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelsConfig:
    generator: ModelSpec = field(default_factory=lambda: ModelSpec("stylegan2"))
    inverter: ModelSpec = field(default_factory=lambda: ModelSpec("projection"))
    identity: ModelSpec = field(default_factory=lambda: ModelSpec("dlib"))
    attribute: ModelSpec = field(default_factory=lambda: ModelSpec("fam-attr"))


# --------------------------------------------------------------------------------------------
# The method (paper sections 3.3-3.5 and 4).


@dataclass(frozen=True)
class LayerGroupsConfig:
    """W+ layer indices per group; ``"auto"`` applies the documented rule in fam.layers."""

    coarse: Literal["auto"] | tuple[int, ...] = "auto"
    identity: Literal["auto"] | tuple[int, ...] = "auto"
    fine: Literal["auto"] | tuple[int, ...] = "auto"


@dataclass(frozen=True)
class KeyConfig:
    truncation_psi: float = 0.7
    env_var: str = "FAM_KEY"  # where key material may come from instead of a key file


@dataclass(frozen=True)
class MixingConfig:
    # paper: eq. 1 [real coarse | key identity | real fine];
    # authors_code: [key coarse | real identity | real fine] (docs/reference.md)
    mode: Literal["paper", "authors_code"] = "paper"
    optimise_layers: tuple[Literal["coarse", "identity", "fine"], ...] = ("identity",)


@dataclass(frozen=True)
class LossWeights:
    anonymity: float = 10.0
    consistency: float = 10.0
    attribute: float = 0.15


@dataclass(frozen=True)
class OptimiseConfig:
    steps: int = 50
    lr: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    # Fractions of ``steps`` at which the learning rate is multiplied by lr_gamma.
    # The paper uses none; the authors' code uses (0.75, 0.9) with gamma 0.8.
    lr_milestones: tuple[float, ...] = ()
    lr_gamma: float = 0.8
    margin: float = 0.0
    # hinge: eq. 2 max(0, cos - m); abs: the authors' code |cos - m|
    anonymity_form: Literal["hinge", "abs"] = "hinge"
    weights: LossWeights = field(default_factory=LossWeights)


@dataclass(frozen=True)
class AugmentConfig:
    flip: bool = True
    max_rotation_deg: float = 10.0
    brightness: float = 0.15
    contrast: float = 0.15
    saturation: float = 0.10
    hue: float = 0.03
    crop_min: float = 0.85
    crop_max: float = 1.0
    seed: int = 0  # mixed with each image's content hash: the views are a function of the input


@dataclass(frozen=True)
class GroupsConfig:
    single_image_views: int = 5  # N augmented views for a person with one image (never released)
    max_batch_views: int = 24  # memory bound: views that go through the models in one batch
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass(frozen=True)
class ReleaseConfig:
    allow_research_keys: bool = False
    image_format: Literal["png"] = "png"


@dataclass(frozen=True)
class RuntimeConfig:
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int = 0  # torch intra-op threads; 0 = the physical cores
    # auto = bf16 autocast where it is native and measured faster (CUDA; CPUs with AVX-512 BF16
    # or AMX), fp32 elsewhere; weights stay fp32 (fam.runtime)
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    modconv: Literal["auto", "fused", "split"] = "auto"  # auto: split on CPUs, fused on GPUs


# --------------------------------------------------------------------------------------------
# Sections owned by later stages (alignment, evaluation, orchestration, training).
# --- section: align ---


@dataclass(frozen=True)
class AlignConfig:
    """Face detection + FFHQ-style alignment of raw photos (fam.faces.align, ``fam align``)."""

    # Side of the square aligned output. The generator's resolution is models.generator.resolution;
    # the protect step resizes aligned faces to it, so one alignment serves several generators.
    size: int = 256
    min_face_px: int = 40  # detection box side (input pixels) below which a face is "face_too_small"
    min_det_score: float = 0.9  # MTCNN ONet face probability below which a detection is ignored
    # Which face when several are found: the largest, the one nearest the image centre, or
    # reject every photo with more than one face. With largest/centre a photo is still rejected
    # as "several_faces" when another face is nearly as large (area > ambiguity_ratio * chosen).
    main_face: Literal["largest", "centre", "reject"] = "largest"
    ambiguity_ratio: float = 0.8
    grayscale: Literal["convert", "reject"] = "convert"  # convert = replicate to 3 channels
    max_pixels: int = 64_000_000  # decompression-bomb guard: larger images are "too_large", never decoded
    detect_max_side: int = 1024  # photos are downscaled to this for detection; landmarks map back
    batch_size: int = 32  # images per detector batch

    def __post_init__(self) -> None:
        if self.size < 16:
            raise ValueError(f"align.size = {self.size}; use at least 16 pixels")
        if not 0.0 < self.ambiguity_ratio <= 1.0:
            raise ValueError(f"align.ambiguity_ratio = {self.ambiguity_ratio}; must be in (0, 1]")
        if not 0.0 <= self.min_det_score < 1.0:
            raise ValueError(f"align.min_det_score = {self.min_det_score}; must be in [0, 1)")
        if self.min_face_px < 1 or self.max_pixels < 1 or self.detect_max_side < 48 or self.batch_size < 1:
            raise ValueError(
                "align.min_face_px, max_pixels and batch_size must be positive and detect_max_side >= 48"
            )


# --- section: evaluate ---


@dataclass(frozen=True)
class MapperAttackConfig:
    """The learned image-to-image attack (paper table 4): a small U-Net trained on
    (protected, original) pairs of training people, applied to held-out people."""

    size: int = 64  # px the mapper works at (CPU-trainable)
    channels: int = 16  # width of the first U-Net level
    steps: int = 300
    lr: float = 0.002
    batch: int = 16
    train_fraction: float = 0.5  # share of people (by a hash of the name) used for training
    max_train_images: int = 2000
    seed: int = 0


@dataclass(frozen=True)
class EvaluateConfig:
    # FR evaluators (fam.recognizers names); options go beside the name, e.g. weight paths
    recognizers: tuple[ModelSpec, ...] = (ModelSpec("dlib"),)
    fmrs: tuple[float, ...] = (1e-3, 1e-4, 1e-5)  # FMR 0.1 %, 0.01 %, 0.001 %
    min_impostor_pairs: int = 300_000  # 3e5+ for a stable FMR 1e-5 threshold (docs/reference.md)
    threshold_max_images: int = 4000  # cap on clean impostor-set images (deterministic pick)
    literature_thresholds: bool = False  # also report PSR at the fixed published table
    unlinkability_bins: int = 100  # Gomez-Barrero density histogram bins
    embed_batch: int = 32
    score_chunk: int = 2048  # rows per block of a similarity matrix
    fid: bool = True
    fid_batch: int = 16
    baselines: tuple[Literal["blur", "pixelate"], ...] = ("blur", "pixelate")
    blur_sigma: float = 0.04  # Gaussian sigma as a fraction of the image side
    pixelate_blocks: int = 8  # the image becomes pixelate_blocks x pixelate_blocks cells
    attacks: tuple[Literal["latent_replacement", "mapper"], ...] = ("latent_replacement", "mapper")
    attack_max_images: int = 32  # latent replacement inverts each image: keep it small on CPU
    mapper: MapperAttackConfig = field(default_factory=MapperAttackConfig)
    tsne_max_people: int = 20
    grid_rows: int = 6
    image_size: int = 128  # px of the grid cells


# --- section: mlops ---


@dataclass(frozen=True)
class MlopsSubset:
    person: tuple[str, ...] = (
        "Aaron_Peirsol",
        "Abdoulaye_Wade",
        "Abel_Pacheco",
        "Adam_Sandler",
        "Alec_Baldwin",
        "Amanda_Bynes",
        "Angela_Merkel",
        "Arianna_Huffington",
    )


@dataclass(frozen=True)
class MlopsImpostors:
    """Clean images of people outside the subset, for the FMR thresholds of the evaluation:
    the first ``n_people`` other LFW people (by name) with at least ``images_per_person`` images,
    that many each. 400 x 2 = 800 images give ~319k impostor pairs (evaluate.min_impostor_pairs)."""

    n_people: int = 400
    images_per_person: int = 2


@dataclass(frozen=True)
class ResearchKeyRef:
    name: str  # folder name under runs/protect/
    seed: int  # research seed: insecure by design, for reproducing tables only


@dataclass(frozen=True)
class MlopsConfig:
    """Orchestration settings: read by dvc.yaml, the Prefect flows (flows/) and MLflow lineage."""

    # People of data/lfw/images that the default pipeline protects (8 people with 4-5 images each,
    # so `dvc repro` finishes in minutes on a CPU). A mapping so that DVC unpacks it into
    # `fam align --person A --person B ...` (.dvc/config: parsing.list = append); [] = all of LFW.
    subset: MlopsSubset = field(default_factory=lambda: MlopsSubset())
    impostors: MlopsImpostors = field(default_factory=MlopsImpostors)
    # Keys the DVC pipeline protects under, one `protect@<name>` stage each (the paper's "key 1,
    # key 2"; research keys are insecure by design and used for reproducing tables only).
    research_keys: tuple[ResearchKeyRef, ...] = (ResearchKeyRef("k1", 1), ResearchKeyRef("k2", 2))
    tracking_uri: str = "sqlite:///runs/mlflow.db"  # MLflow lineage store
    artifact_root: str = "runs/mlartifacts"  # where MLflow stores artifacts of new experiments
    experiment: str = "fam"
    shard_size: int = 4  # people per Prefect task (a task is the unit of retry and caching)
    task_runner: Literal["threads", "dask"] = "threads"
    max_workers: int = 2
    retries: int = 2  # retries of a task on a transient failure (I/O, worker lost)
    retry_delay_s: float = 5.0

    def __post_init__(self) -> None:
        names = [k.name for k in self.research_keys]
        if len(set(names)) != len(names) or any(k.seed < 0 for k in self.research_keys):
            raise ConfigError("mlops.research_keys needs unique names and non-negative seeds")
        if self.shard_size < 1 or self.max_workers < 1 or self.retries < 0:
            raise ConfigError("mlops.shard_size and mlops.max_workers must be >= 1, mlops.retries >= 0")


# --- section: training ---


@dataclass(frozen=True)
class PriorTrainingConfig:
    """StyleGAN2 prior training for small data (docs/training.md)."""

    resolution: int = 64
    # Widths per resolution (G 3.4M, D 3.5M parameters), sized to CPU training: docs/training.md.
    # The discriminator mirrors them.
    channels: Mapping[int, int] = field(
        default_factory=lambda: types.MappingProxyType({4: 256, 8: 256, 16: 128, 32: 64, 64: 32})
    )
    w_dim: int = 256
    n_mlp: int = 8
    batch: int = 32
    g_lr: float = 0.0025
    d_lr: float = 0.0025
    betas: tuple[float, float] = (0.0, 0.99)  # beta1 = 0 as in StyleGAN2
    r1_gamma: float = 0.05  # lazy R1 weight; ~0.0002 * R^2 / batch by the ADA heuristic is 0.013 at 64 px
    r1_interval: int = 16
    pl_weight: float = 0.0  # path-length regularisation (off: costs ~25% speed, matters little at 64 px)
    pl_interval: int = 4
    style_mixing: float = 0.9  # probability of a two-latent crossover per sample
    ema_kimg: float = 10.0  # EMA half-life in thousands of images
    ema_rampup: float = 0.05  # half-life <= rampup * images seen (0 disables)
    w_avg_beta: float = 0.995
    augment: tuple[Literal["color", "translation", "cutout"], ...] = ("color", "translation", "cutout")
    mirror: bool = True  # random horizontal flips of real faces
    seed: int = 0
    kimg: float = 3000.0  # total length of training
    fid_every_kimg: float = 250.0  # 0 disables periodic FID
    fid_samples: int = 5000
    checkpoint_every_minutes: float = 4.0
    # Vision-aided D: a trainable head on a frozen ImageNet EfficientNet-Lite0 (docs/training.md).
    vision_weight: float = 0.0  # its weight in G's loss; 0 = off (the head is not built)
    vision_start_kimg: float = 150.0  # the head trains and feeds G from here on
    vision_rampup_kimg: float = 20.0  # G's weight ramps linearly from 0 over this span (0 = at once)
    vision_size: int = 128  # side the images are upsampled to for the extractor (power of two >= 128)
    vision_lr: float = 0.0025  # Adam lr of the head (equalised-lr layers, like the pixel D)

    def __post_init__(self) -> None:
        if self.vision_weight < 0 or self.vision_start_kimg < 0 or self.vision_rampup_kimg < 0:
            raise ValueError(
                "training.prior.vision_weight, vision_start_kimg and vision_rampup_kimg must be >= 0"
            )
        if self.vision_size < 128 or self.vision_size & (self.vision_size - 1):
            raise ValueError(f"training.prior.vision_size = {self.vision_size}; use a power of two >= 128")
        if self.vision_lr <= 0:
            raise ValueError(f"training.prior.vision_lr = {self.vision_lr}; must be > 0")


@dataclass(frozen=True)
class EncoderTrainingConfig:
    """W+ encoder for the trained prior: generated pairs plus real train faces."""

    channels: tuple[int, ...] = (64, 128, 256, 256, 256)  # at R, R/2, R/4, R/8, R/16
    batch: int = 32
    lr: float = 0.0001
    synthetic_fraction: float = 0.5  # share of each batch that is generated (w known)
    truncation_psi: float = 0.9  # for the generated pairs
    latent_weight: float = 1.0  # L2 on w+ (generated pairs only)
    pixel_weight: float = 1.0  # L2 on images
    perceptual_weight: float = 0.5  # L2 between discriminator features (LPIPS-free proxy)
    identity_weight: float = 0.1  # 1 - cos between identity embeddings (real faces)
    identity: ModelSpec = field(default_factory=lambda: ModelSpec("dlib"))
    delta_weight: float = 0.0002  # e4e's delta regulariser: keeps w+ near one w
    seed: int = 0
    kimg: float = 1000.0
    checkpoint_every_minutes: float = 4.0


@dataclass(frozen=True)
class TrainingConfig:
    prior: PriorTrainingConfig = field(default_factory=PriorTrainingConfig)
    encoder: EncoderTrainingConfig = field(default_factory=EncoderTrainingConfig)


METHOD_SECTIONS = ("models", "layers", "key", "mixing", "optimise", "groups", "release")


@dataclass(frozen=True)
class Params:
    models: ModelsConfig = field(default_factory=ModelsConfig)
    align: AlignConfig = field(default_factory=AlignConfig)
    layers: LayerGroupsConfig = field(default_factory=LayerGroupsConfig)
    key: KeyConfig = field(default_factory=KeyConfig)
    mixing: MixingConfig = field(default_factory=MixingConfig)
    optimise: OptimiseConfig = field(default_factory=OptimiseConfig)
    groups: GroupsConfig = field(default_factory=GroupsConfig)
    release: ReleaseConfig = field(default_factory=ReleaseConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    mlops: MlopsConfig = field(default_factory=MlopsConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)

    def to_dict(self) -> dict[str, Any]:
        return _to_plain(self)

    def digest(self, sections: tuple[str, ...] | None = None) -> str:
        """sha256 of the canonical JSON of the resolved settings (or of some sections only)."""
        data = self.to_dict()
        if sections is not None:
            data = {k: data[k] for k in sections}
        blob = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str).encode()
        return hashlib.sha256(blob).hexdigest()

    def method_digest(self) -> str:
        """Digest of the sections that determine protected outputs (recorded in manifests).

        Orchestration, evaluation and training settings are left out, so changing a shard size
        or a report option does not make a finished release look stale to ``--resume``.
        """
        return self.digest(METHOD_SECTIONS)

    def replace(self, overrides: Mapping[str, Any]) -> Params:
        """A copy with dotted-path overrides applied, e.g. ``{"optimise.steps": 5}``."""
        return parse_params(_apply_overrides(self.to_dict(), overrides))


def load_params(path: str | Path = DEFAULT_PARAMS_PATH, overrides: Mapping[str, Any] | None = None) -> Params:
    """Read ``params.yaml`` (all keys optional; defaults are the paper's settings)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(
            f"settings file {path} does not exist; run from the project root or pass --params PATH"
        )
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must hold a mapping of sections at the top level")
    return parse_params(_apply_overrides(raw, overrides or {}))


def parse_params(raw: Mapping[str, Any]) -> Params:
    return _build(Params, raw, "")


def parse_override(text: str) -> tuple[str, Any]:
    """``"optimise.steps=5"`` -> ``("optimise.steps", 5)``; the value is read as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value")
    key, value = text.split("=", 1)
    return key.strip(), yaml.safe_load(value)


# --------------------------------------------------------------------------------------------


def _apply_overrides(raw: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = copy.deepcopy(dict(raw))
    for dotted, value in overrides.items():
        node = out
        parts = dotted.split(".")
        for part in parts[:-1]:
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"override {dotted}: {part} is not a section")
            node = nxt
        node[parts[-1]] = value
    return out


def _build(cls: type, raw: Any, where: str) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where or 'params'} must be a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown setting(s) {', '.join(_join(where, u) for u in unknown)}; "
            f"valid keys here: {', '.join(sorted(fields))}"
        )
    kwargs = {name: _coerce(hints[name], raw[name], _join(where, name)) for name in fields if name in raw}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where or 'params'}: {exc}") from exc


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        if tp is ModelSpec and isinstance(value, str):
            return ModelSpec(value)
        if tp is ModelSpec:
            if not isinstance(value, Mapping) or "name" not in value:
                raise ConfigError(f"{where} must be a model name or a mapping with 'name' and options")
            options = {k: v for k, v in value.items() if k != "name"}
            return ModelSpec(str(value["name"]), types.MappingProxyType(options))
        return _build(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for alt in args:
            try:
                return _coerce(alt, value, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{where}: {value!r} matches none of the allowed forms ({'; '.join(errors)})")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where} = {value!r}; valid values: {', '.join(map(repr, args))}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise ConfigError(f"{where} must have {len(args)} entries, got {len(value)}")
        return tuple(_coerce(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))
    if origin in (Mapping, dict) or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where} must be a mapping")
        if len(args) != 2:
            return types.MappingProxyType(dict(value))
        key_type, value_type = args
        return types.MappingProxyType(
            {
                _coerce_key(key_type, k, where): _coerce(value_type, v, _join(where, str(k)))
                for k, v in value.items()
            }
        )
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return value
    if tp is Any:
        return value
    raise ConfigError(f"{where}: unsupported setting type {tp}")  # pragma: no cover - programming error


def _coerce_key(tp: Any, key: Any, where: str) -> Any:
    # JSON object keys are text (a saved settings.json holds channels {"16": 128}); read them back.
    if tp is int and isinstance(key, str) and key.lstrip("-").isdigit():
        return int(key)
    return _coerce(tp, key, f"{where} key {key!r}")


def _to_plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        if isinstance(obj, ModelSpec):
            return {"name": obj.name, **{k: _to_plain(v) for k, v in obj.options.items()}}
        return {f.name: _to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {k: _to_plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_to_plain(v) for v in obj]
    return obj


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name
