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
import math
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
# Allowed values of numeric settings: declared beside each field with ``setting(default, ...)``,
# checked once by parse_params and listed in docs/settings.md (a test keeps the two in step).


@dataclass(frozen=True)
class Range:
    """The values a numeric setting allows (for a list or mapping setting: each entry).

    ``ge``/``le`` are inclusive bounds, ``gt``/``lt`` exclusive ones; NaN and infinities are
    never allowed. ``power_of_two`` and ``multiple_of`` add what network shapes need.
    """

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    power_of_two: bool = False
    multiple_of: int | None = None

    def allows(self, value: float) -> bool:
        return (
            math.isfinite(value)
            and (self.ge is None or value >= self.ge)
            and (self.gt is None or value > self.gt)
            and (self.le is None or value <= self.le)
            and (self.lt is None or value < self.lt)
            and (not self.power_of_two or (value >= 1 and value == int(value) and _is_pow2(int(value))))
            and (self.multiple_of is None or value % self.multiple_of == 0)
        )

    def describe(self, integer: bool) -> str:
        """E.g. ``integer >= 1``, ``number in (0, 1]``, ``power of two in [32, 1024]``."""
        noun = "power of two" if self.power_of_two else "integer" if integer else "number"
        if self.multiple_of is not None:
            noun += f" divisible by {self.multiple_of},"
        low = (
            f"[{_fmt(self.ge)}" if self.ge is not None else f"({_fmt(self.gt)}" if self.gt is not None else ""
        )
        high = (
            f"{_fmt(self.le)}]" if self.le is not None else f"{_fmt(self.lt)})" if self.lt is not None else ""
        )
        if low and high:
            return f"{noun} in {low}, {high}"
        if low:
            return f"{noun} {'>=' if low[0] == '[' else '>'} {low[1:]}"
        if high:
            return f"{noun} {'<=' if high[-1] == ']' else '<'} {high[:-1]}"
        return noun.rstrip(",")

    def check(self, where: str, value: float) -> None:
        if not self.allows(value):
            text = self.describe(isinstance(value, int))
            text = text if math.isfinite(value) else f"finite {text}"
            raise ConfigError(f"{where} = {value!r}: must be {'an' if text[0] in 'aeiou' else 'a'} {text}")


def setting(default: Any = dataclasses.MISSING, *, factory: Any = dataclasses.MISSING, **bounds: Any) -> Any:
    """A dataclass field with its default (or default ``factory``) and its :class:`Range`."""
    return field(default=default, default_factory=factory, metadata={"range": Range(**bounds)})


def _is_pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def _fmt(x: float) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


SEED = {"ge": 0, "lt": 2**32}  # every seed of the project: one convention, fits any framework's RNG


# --------------------------------------------------------------------------------------------
# Models: each role names a registered builder plus free-form options that the builder checks.


@dataclass(frozen=True)
class ModelSpec:
    name: str  # registry name, see ``fam models`` / fam.models.factory
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelsConfig:
    # metadata role: the numeric options are checked against MODEL_OPTION_RANGES (below)
    generator: ModelSpec = field(
        default_factory=lambda: ModelSpec("stylegan2"), metadata={"role": "generator"}
    )
    inverter: ModelSpec = field(
        default_factory=lambda: ModelSpec("projection"), metadata={"role": "inverter"}
    )
    identity: ModelSpec = field(default_factory=lambda: ModelSpec("dlib"), metadata={"role": "identity"})
    attribute: ModelSpec = field(
        default_factory=lambda: ModelSpec("fam-attr"), metadata={"role": "attribute"}
    )


# Numeric options of the built-in models, checked at load time like the sections' fields
# ((role, name) -> option -> (type, range); name "*" = every model of the role). The builders
# (fam.models.factory's registry) still refuse option names they do not know.
MODEL_OPTION_RANGES: dict[tuple[str, str], dict[str, tuple[Any, Range]]] = {
    ("generator", "stylegan2"): {
        "resolution": (int, Range(ge=32, le=1024, power_of_two=True)),
        "channels": (Mapping[int, int] | None, Range(ge=1)),
        "channel_multiplier": (int, Range(ge=1)),
        "n_mlp": (int, Range(ge=1)),
        "w_dim": (int, Range(ge=1)),
        "seed": (int, Range(**SEED)),
        "noise_seed": (int | None, Range(**SEED)),
    },
    ("inverter", "projection"): {
        "steps": (int, Range(ge=0)),  # 0 = start from w_avg (no projection)
        "lr": (float, Range(gt=0)),
    },
    ("inverter", "fam-encoder"): {
        "refine_steps": (int, Range(ge=0)),
        "refine_lr": (float, Range(gt=0)),
        "identity_weight": (float, Range(ge=0)),
    },
    ("recognizer", "*"): {"batch_size": (int, Range(ge=1))},  # fam.recognizers.RecognizerOptions
}


# --------------------------------------------------------------------------------------------
# The method (paper sections 3.3-3.5 and 4).


@dataclass(frozen=True)
class LayerGroupsConfig:
    """W+ layer indices per group; ``"auto"`` applies the documented rule in fam.layers."""

    coarse: Literal["auto"] | tuple[int, ...] = setting("auto", ge=0)
    identity: Literal["auto"] | tuple[int, ...] = setting("auto", ge=0)
    fine: Literal["auto"] | tuple[int, ...] = setting("auto", ge=0)


@dataclass(frozen=True)
class KeyConfig:
    # Truncation of the key face towards w_avg (fam.keys.key_latent): 1 = none, towards 0 every
    # key gives the average face.
    truncation_psi: float = setting(0.7, gt=0, le=1)
    env_var: str = "FAM_KEY"  # where key material may come from instead of a key file


@dataclass(frozen=True)
class MixingConfig:
    # paper: eq. 1 [real coarse | key identity | real fine];
    # authors_code: [key coarse | real identity | real fine] (docs/reference.md)
    mode: Literal["paper", "authors_code"] = "paper"
    # Algorithm 1 updates the whole mixed latent; the authors' code only the identity layers
    optimise_layers: tuple[Literal["coarse", "identity", "fine"], ...] = ("coarse", "identity", "fine")


@dataclass(frozen=True)
class LossWeights:
    anonymity: float = setting(10.0, ge=0)  # 0 switches a term off (the ablations)
    consistency: float = setting(10.0, ge=0)
    attribute: float = setting(0.15, ge=0)


@dataclass(frozen=True)
class OptimiseConfig:
    steps: int = setting(50, ge=0)  # 0 = naive mixing (eq. 1 only), the evaluation's baseline
    lr: float = setting(0.01, gt=0)
    betas: tuple[float, float] = setting((0.9, 0.999), ge=0, lt=1)  # Adam's
    # Fractions of ``steps`` at which the learning rate is multiplied by lr_gamma.
    # The paper uses none; the authors' code uses (0.75, 0.9) with gamma 0.8.
    lr_milestones: tuple[float, ...] = setting((), gt=0, lt=1)
    lr_gamma: float = setting(0.8, gt=0, le=1)
    # m of eq. 2, a cosine; auto = the identity model's mean impostor cosine (fam.calibration)
    margin: Literal["auto"] | float = setting("auto", ge=-1, le=1)
    # hinge: eq. 2 max(0, cos - m); abs: the authors' code |cos - m|
    anonymity_form: Literal["hinge", "abs"] = "hinge"
    weights: LossWeights = field(default_factory=LossWeights)


@dataclass(frozen=True)
class AugmentConfig:
    flip: bool = True
    max_rotation_deg: float = setting(10.0, ge=0, le=180)
    # Colour jitter: factors drawn from [1 - x, 1 + x] (hue: a shift in [-x, x] turns)
    brightness: float = setting(0.15, ge=0, le=1)
    contrast: float = setting(0.15, ge=0, le=1)
    saturation: float = setting(0.10, ge=0, le=1)
    hue: float = setting(0.03, ge=0, le=0.5)
    crop_min: float = setting(0.85, gt=0, le=1)  # crop side as a share of the image side
    crop_max: float = setting(1.0, gt=0, le=1)
    seed: int = setting(
        0, **SEED
    )  # mixed with each image's content hash: the views are a function of the input

    def __post_init__(self) -> None:
        if self.crop_min > self.crop_max:
            raise ValueError(f"crop_min = {self.crop_min} is above crop_max = {self.crop_max}")


@dataclass(frozen=True)
class GroupsConfig:
    # N augmented views for a person with one image (never released); >= 1 so that the
    # consistency term has a pair to work on
    single_image_views: int = setting(5, ge=1)
    # memory bound: views that go through the models in one batch (>= 2: the consistency term needs pairs)
    max_batch_views: int = setting(24, ge=2)
    # false: every batch holds one person's views, so a person's protected images are the same
    # bytes whoever else is in the run or shard (float rounding in batched kernels depends on
    # the batch); true: small persons share batches (faster, results depend on the company)
    pack_persons: bool = False
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass(frozen=True)
class ReleaseConfig:
    allow_research_keys: bool = False
    image_format: Literal["png"] = "png"


@dataclass(frozen=True)
class RuntimeConfig:
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int = setting(0, ge=0)  # torch intra-op threads; 0 = the physical cores
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
    size: int = setting(256, ge=16)
    min_face_px: int = setting(
        40, ge=1
    )  # detection box side (input pixels) below which a face is "face_too_small"
    min_det_score: float = setting(
        0.9, ge=0, lt=1
    )  # MTCNN ONet face probability below which a detection is ignored
    # Which face when several are found: the largest, the one nearest the image centre, or
    # reject every photo with more than one face. With largest/centre a photo is still rejected
    # as "several_faces" when another face is nearly as large (area > ambiguity_ratio * chosen).
    main_face: Literal["largest", "centre", "reject"] = "largest"
    ambiguity_ratio: float = setting(0.8, gt=0, le=1)
    grayscale: Literal["convert", "reject"] = "convert"  # convert = replicate to 3 channels
    max_pixels: int = setting(
        64_000_000, ge=1
    )  # decompression-bomb guard: larger images are "too_large", never decoded
    # files larger than this are "file_too_large", never read (a huge file that starts as a valid JPEG)
    max_file_bytes: int = setting(200_000_000, ge=1)
    detect_max_side: int = setting(
        1024, ge=48
    )  # photos are downscaled to this for detection; landmarks map back
    batch_size: int = setting(32, ge=1)  # images per detector batch


# --- section: evaluate ---


@dataclass(frozen=True)
class MapperAttackConfig:
    """The learned image-to-image attack (paper table 4): a small U-Net trained on
    (protected, original) pairs of training people, applied to held-out people."""

    size: int = setting(64, ge=8, multiple_of=4)  # px the mapper works at (CPU-trainable; two 2x poolings)
    channels: int = setting(16, ge=1)  # width of the first U-Net level
    steps: int = setting(300, ge=1)
    lr: float = setting(0.002, gt=0)
    batch: int = setting(16, ge=1)
    train_fraction: float = setting(
        0.5, gt=0, lt=1
    )  # share of people (by a hash of the name) used for training
    max_train_images: int = setting(2000, ge=1)
    # weight of the identity term (1 - cosine of models.identity embeddings, the method's own
    # identity model: the attacker knows the method) beside L1; 0 = the L1-only mapper
    identity_weight: float = setting(0.5, ge=0)
    seed: int = setting(0, **SEED)


@dataclass(frozen=True)
class StolenKeyAttackConfig:
    """The attacker with the key inverts the whole protection (fam.evaluate.stolen_key)."""

    max_images: int = setting(8, ge=1)  # held-out protected images attacked (each person's together)
    iterations: int = setting(20, ge=1)  # Adam steps on the candidate originals (~5 s each on 2 CPU cores)
    # Algorithm 1 steps unrolled per iteration, with the learning rate scaled to cover the same
    # distance; 0 = all of the release's optimise.steps (exact, costly: use on a GPU)
    unroll_steps: int = setting(3, ge=0)
    lr: float = setting(0.01, gt=0)
    # weight of 1 - cos(models.identity) between the re-protected and the protected images, beside L1
    identity_weight: float = setting(0.5, ge=0)


@dataclass(frozen=True)
class EvaluateConfig:
    # FR evaluators (fam.recognizers names); options go beside the name, e.g. weight paths
    recognizers: tuple[ModelSpec, ...] = field(default=(ModelSpec("dlib"),), metadata={"role": "recognizer"})
    # release: every image set (originals, threshold set, baselines, protected, reconstructions) is
    # resized to the release's resolution before the evaluator sees it, so resolution alone cannot
    # lower genuine scores and inflate PSR; native: each set at the size it is stored in (old reports)
    score_at: Literal["release", "native"] = "release"
    fmrs: tuple[float, ...] = setting((1e-3, 1e-4, 1e-5), gt=0, lt=1)  # FMR 0.1 %, 0.01 %, 0.001 %
    min_impostor_pairs: int = setting(
        300_000, ge=1
    )  # 3e5+ for a stable FMR 1e-5 threshold (docs/reference.md)
    threshold_max_images: int = setting(4000, ge=2)  # cap on clean impostor-set images (deterministic pick)
    literature_thresholds: bool = False  # also report PSR at the fixed published table
    unlinkability_bins: int = setting(100, ge=2)  # Gomez-Barrero density histogram bins
    embed_batch: int = setting(32, ge=1)
    score_chunk: int = setting(2048, ge=1)  # rows per block of a similarity matrix
    fid: bool = True
    fid_batch: int = setting(16, ge=1)
    # downsample: the original at the release resolution and nothing else (what resolution alone does)
    baselines: tuple[Literal["blur", "pixelate", "downsample"], ...] = ("blur", "pixelate", "downsample")
    blur_sigma: float = setting(0.04, gt=0)  # Gaussian sigma as a fraction of the image side
    pixelate_blocks: int = setting(8, ge=1)  # the image becomes pixelate_blocks x pixelate_blocks cells
    attacks: tuple[Literal["latent_replacement", "mapper", "stolen_key"], ...] = (
        "latent_replacement",
        "mapper",
        "stolen_key",
    )
    attack_max_images: int = setting(32, ge=1)  # latent replacement inverts each image: keep it small on CPU
    mapper: MapperAttackConfig = field(default_factory=MapperAttackConfig)
    stolen_key: StolenKeyAttackConfig = field(default_factory=StolenKeyAttackConfig)
    tsne_max_people: int = setting(20, ge=0)  # the plot needs 5+ images of the people picked
    grid_rows: int = setting(6, ge=0)  # 0 = no image grid
    image_size: int = setting(128, ge=1)  # px of the grid cells


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

    n_people: int = setting(400, ge=2)  # impostor pairs need two people at least
    images_per_person: int = setting(2, ge=1)


@dataclass(frozen=True)
class MlopsConfig:
    """Orchestration settings: read by dvc.yaml, the Prefect flows (flows/) and MLflow lineage."""

    # People of data/lfw/images that the default pipeline protects (8 people with 4-5 images each,
    # so `dvc repro` finishes in minutes on a CPU). A mapping so that DVC unpacks it into
    # `fam align --person A --person B ...` (.dvc/config: parsing.list = append); [] = all of LFW.
    subset: MlopsSubset = field(default_factory=lambda: MlopsSubset())
    impostors: MlopsImpostors = field(default_factory=MlopsImpostors)
    # Research seeds the DVC pipeline protects under, one `protect@<seed>` stage each writing
    # runs/protect/k<seed> (the paper's "key 1, key 2"; a plain list, so that DVC names the stages by
    # seed; research keys are insecure by design and used for reproducing tables only).
    research_keys: tuple[int, ...] = setting((1, 2), ge=0)
    tracking_uri: str = "sqlite:///runs/mlflow.db"  # MLflow lineage store
    artifact_root: str = "runs/mlartifacts"  # where MLflow stores artifacts of new experiments
    experiment: str = "fam"
    shard_size: int = setting(4, ge=1)  # people per Prefect task (a task is the unit of retry and caching)
    task_runner: Literal["threads", "dask"] = "threads"
    max_workers: int = setting(2, ge=1)  # threads, or local Dask worker processes
    # dask only: the scheduler of an existing cluster ("tcp://host:8786"); "" = a LocalCluster of
    # max_workers processes started for the flow run
    dask_address: str = ""
    # dask only: modules every worker imports at start (e.g. one that registers your own models,
    # docs/extending.md), as distributed's --preload
    worker_preload: tuple[str, ...] = ()
    retries: int = setting(2, ge=0)  # retries of a task on a transient failure (I/O, worker lost)
    retry_delay_s: float = setting(5.0, ge=0)


@dataclass(frozen=True)
class LineageConfig:
    """What the MLflow lineage store may hold (docs/orchestration.md, "MLflow lineage")."""

    # Original faces (the evaluation's image grid) and real names (the protect manifest, the
    # subset's person names in params and settings, validation examples) go to the tracking and
    # artifact store only when true. Off by default: the store is usually shared more widely than
    # the raw data, and hashes of the withheld files keep the lineage verifiable without them.
    log_originals: bool = False


# --- section: training ---


@dataclass(frozen=True)
class PriorTrainingConfig:
    """StyleGAN2 prior training for small data (docs/training.md)."""

    resolution: int = setting(64, ge=32, le=1024, power_of_two=True)
    # Generator widths per resolution (G 3.4M, D 3.5M parameters from scratch), sized to CPU
    # training: docs/training.md.
    channels: Mapping[int, int] = setting(
        factory=lambda: types.MappingProxyType({4: 256, 8: 256, 16: 128, 32: 64, 64: 32}), ge=1
    )
    # Discriminator widths; unset, it mirrors ``channels``. Set when G is widened alone
    # (``fam widen-prior``): D already wins against this G, so G's capacity is the one to grow.
    d_channels: Mapping[int, int] | None = setting(None, ge=1)
    w_dim: int = setting(256, ge=1)
    n_mlp: int = setting(8, ge=1)
    batch: int = setting(32, ge=1)
    g_lr: float = setting(0.0025, gt=0)
    d_lr: float = setting(0.0025, gt=0)
    betas: tuple[float, float] = setting((0.0, 0.99), ge=0, lt=1)  # beta1 = 0 as in StyleGAN2
    r1_gamma: float = setting(
        0.05, ge=0
    )  # lazy R1 weight; ~0.0002 * R^2 / batch by the ADA heuristic is 0.013 at 64 px
    r1_interval: int = setting(16, ge=1)
    pl_weight: float = setting(
        0.0, ge=0
    )  # path-length regularisation (off: costs ~25% speed, matters little at 64 px)
    pl_interval: int = setting(4, ge=1)
    style_mixing: float = setting(0.9, ge=0, le=1)  # probability of a two-latent crossover per sample
    ema_kimg: float = setting(10.0, ge=0)  # EMA half-life in thousands of images
    ema_rampup: float = setting(0.05, ge=0)  # half-life <= rampup * images seen (0 disables)
    w_avg_beta: float = setting(0.995, ge=0, lt=1)
    augment: tuple[Literal["color", "translation", "cutout"], ...] = ("color", "translation", "cutout")
    mirror: bool = True  # random horizontal flips of real faces
    seed: int = setting(0, **SEED)
    kimg: float = setting(3000.0, gt=0)  # total length of training
    fid_every_kimg: float = setting(250.0, ge=0)  # 0 disables periodic FID
    fid_samples: int = setting(5000, ge=2)
    checkpoint_every_minutes: float = setting(4.0, gt=0)
    # Vision-aided D: a trainable head on a frozen ImageNet EfficientNet-Lite0 (docs/training.md).
    vision_weight: float = setting(0.0, ge=0)  # its weight in G's loss; 0 = off (the head is not built)
    vision_start_kimg: float = setting(150.0, ge=0)  # the head trains and feeds G from here on
    vision_rampup_kimg: float = setting(
        20.0, ge=0
    )  # G's weight ramps linearly from 0 over this span (0 = at once)
    vision_size: int = setting(
        128, ge=128, power_of_two=True
    )  # side the images are upsampled to for the extractor
    vision_lr: float = setting(0.0025, gt=0)  # Adam lr of the head (equalised-lr layers, like the pixel D)
    # Mode-seeking term (MSGAN, Mao et al. 2019): G is paid for pairs of its fakes whose pooled frozen
    # EfficientNet features lie apart (docs/training.md); rides on the vision D's pass, so it needs it.
    diversity_weight: float = setting(0.0, ge=0)  # 0 = off

    def __post_init__(self) -> None:
        if self.diversity_weight > 0 and self.vision_weight <= 0:
            raise ValueError("diversity_weight > 0 needs vision_weight > 0 (it uses the vision D's features)")


@dataclass(frozen=True)
class EncoderTrainingConfig:
    """W+ encoder for the trained prior: generated pairs plus real train faces."""

    channels: tuple[int, int, int, int, int] = setting(
        (64, 128, 256, 256, 256), ge=1
    )  # at R, R/2, R/4, R/8, R/16
    batch: int = setting(32, ge=1)
    lr: float = setting(0.0001, gt=0)
    synthetic_fraction: float = setting(0.5, ge=0, le=1)  # share of each batch that is generated (w known)
    truncation_psi: float = setting(0.9, gt=0, le=1)  # for the generated pairs
    latent_weight: float = setting(1.0, ge=0)  # L2 on w+ (generated pairs only)
    pixel_weight: float = setting(1.0, ge=0)  # L2 on images
    perceptual_weight: float = setting(0.5, ge=0)  # L2 between discriminator features (LPIPS-free proxy)
    identity_weight: float = setting(0.1, ge=0)  # 1 - cos between identity embeddings (real faces)
    identity: ModelSpec = field(default_factory=lambda: ModelSpec("dlib"), metadata={"role": "identity"})
    delta_weight: float = setting(0.0002, ge=0)  # e4e's delta regulariser: keeps w+ near one w
    seed: int = setting(0, **SEED)
    kimg: float = setting(1000.0, gt=0)
    checkpoint_every_minutes: float = setting(4.0, gt=0)


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
    lineage: LineageConfig = field(default_factory=LineageConfig)
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


def range_table() -> list[tuple[str, str]]:
    """(dotted key, allowed values) of every numeric setting and built-in model option, in the
    order of the sections; docs/settings.md shows the same table."""
    rows = _field_ranges(Params, "")
    for (role, name), options in MODEL_OPTION_RANGES.items():
        where = "evaluate.recognizers[]" if role == "recognizer" else f"models.{role}"
        for option, (tp, rng) in options.items():
            rows.append((f"{where}.{option} ({'any' if name == '*' else name})", _describe(tp, rng)))
    return rows


def _field_ranges(cls: type, where: str) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp, key = hints[f.name], _join(where, f.name)
        if "range" in f.metadata:
            rows.append((key, _describe(tp, f.metadata["range"])))
        elif dataclasses.is_dataclass(tp):
            rows += _field_ranges(tp, key)
        elif typing.get_origin(tp) is tuple and dataclasses.is_dataclass(typing.get_args(tp)[0]):
            rows += _field_ranges(typing.get_args(tp)[0], f"{key}[]")
    return rows


def _describe(tp: Any, rng: Range) -> str:
    text = rng.describe(_is_integer(tp))
    origins = {typing.get_origin(a) for a in (*typing.get_args(tp), tp)}
    return f"each {text}" if origins & {tuple, Mapping, dict} else text


def _is_integer(tp: Any) -> bool:
    """Whether the numbers of a setting of type ``tp`` are integers (else any number)."""
    if tp is int:
        return True
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType, tuple):
        return any(_is_integer(a) for a in args)
    if origin in (Mapping, dict):
        return _is_integer(args[1])
    return False


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
    for name, value in kwargs.items():
        _check_field(fields[name], value, _join(where, name))
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where or 'params'}: {exc}") from exc


def _check_field(f: dataclasses.Field, value: Any, where: str) -> None:
    """The field's declared :class:`Range`, and for a model setting its options' ranges."""
    rng = f.metadata.get("range")
    if rng is not None:
        for at, number in _numbers(value, where):
            rng.check(at, number)
    role = f.metadata.get("role")
    if role is not None:
        specs = (
            [(where, value)]
            if isinstance(value, ModelSpec)
            else [(f"{where}[{i}]", v) for i, v in enumerate(value)]
        )
        for at, spec in specs:
            _check_model_options(role, spec, at)


def _check_model_options(role: str, spec: ModelSpec, where: str) -> None:
    table = {**MODEL_OPTION_RANGES.get((role, "*"), {}), **MODEL_OPTION_RANGES.get((role, spec.name), {})}
    for option, (tp, rng) in table.items():
        if option in spec.options:
            at = f"{where}.{option}"
            # Checked only: the spec keeps the value as written, so digests of settings stay put.
            for number_at, number in _numbers(_coerce(tp, spec.options[option], at), at):
                rng.check(number_at, number)


def _numbers(value: Any, where: str) -> list[tuple[str, float]]:
    """Every number in a coerced value with its path: itself, or the entries of a list or mapping."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return []
    if isinstance(value, int | float):
        return [(where, value)]
    if isinstance(value, Mapping):
        return [n for k, v in value.items() for n in _numbers(v, f"{where}[{k}]")]
    if isinstance(value, tuple | list):
        return [n for i, v in enumerate(value) for n in _numbers(v, f"{where}[{i}]")]
    return []


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
        # keys of the declared type (YAML gives ints, a saved settings.json text); values likewise
        return types.MappingProxyType(
            {_coerce_key(args[0], k, where): _coerce(args[1], v, f"{where}[{k}]") for k, v in value.items()}
        )
    if tp is type(None):
        if value is not None:
            raise ConfigError(f"{where} must be null, got {value!r}")
        return None
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
