"""Quality gates of the embedded prior (the 64-px StyleGAN2 trained on LFW train-split people).

    python -m benchmarks.bench_prior --prior ~/.cache/fam/prior/export [--encoder PATH] \
        [--keys 1000] [--inversions 500] [--pairs 500] [--fid-samples 5000] [--skip fid,...]

Every metric runs at the prior's resolution (64 px); identity is dlib's descriptor (the ``dlib``
evaluator of ``fam.recognizers``: aligned ``[-1, 1]`` faces, its fixed crop template, cosine of
normalised descriptors), faces and landmarks are MTCNN's (``fam.faces.mtcnn``).

- ``threshold`` (shared): the cosine at FMR 1e-3 from the impostor pairs (different people) among
  all REAL held-out faces of the aligned folder, resized to 64 px and embedded like generated ones.
- ``face_rate``: share of the key faces (research keys 1..N through ``fam.keys.key_latent`` at
  ``key.truncation_psi``) in which MTCNN finds exactly one face with probability >= 0.9.
- ``distinct``: share of pairs of key faces (different keys) that do NOT match at the threshold.
  Printed beside it: the descriptor spread of key faces and of real held-out faces, and what real
  faces would score if truncation shrank them as it shrinks this prior's (a reference for how far
  the gate is from a prior exactly as diverse as real faces).
- ``memorised``: share of key faces closer to some training-split face of the pack (nearest dlib
  cosine) than 99% of the real held-out faces are: unseen real faces score 0.01 by construction.
- ``inv_match``: share of M held-out faces whose reconstruction by the default inverter
  (``models.inverter`` with the prior as generator) matches the original; ``inv_match_encoder``
  the same with a ``fam-encoder`` checkpoint (``--encoder``).
- ``swap_change``: for P generated pairs (w from the mapping, psi 0.7), A with its identity layers
  (``fam.layers``) taken from B (``fam.mixing.mix``): share where swapped A no longer matches A.
  ``landmark_shift_px``: median over pairs of the mean MTCNN 5-point displacement A -> swapped A.
- ``fid``: FID of S EMA samples (psi 1) against the pack's first S faces (``run_prior``).
- ``dlib_fd``: Frechet distance between the dlib descriptors of S EMA samples (psi 1) and of all
  training faces of the pack: how far the prior's identities are from real ones, in the space the
  method's identity loss works in (Inception's FID judges image statistics, not identity).

Real-face reference values are printed beside face_rate so that a number can be
read against what real, never-trained-on faces score under the same detector and threshold.
Embeddings of the held-out faces and of the pack are cached under ``~/.cache/fam/bench_prior``
(keyed by content), since embedding 10k faces costs minutes on a CPU.

Last line: ``fid=<> face_rate=<> distinct=<> memorised=<> inv_match=<> inv_match_encoder=<>
swap_change=<> landmark_shift_px=<> dlib_fd=<>`` (``nan`` = skipped or not measurable).
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F

from fam.errors import InputError, UserError
from fam.evaluate.fid import fid_from_features
from fam.evaluate.thresholds import quantile_thresholds
from fam.interfaces import Generator, Inverter
from fam.keys import key_latent, research_key
from fam.layers import LayerGroups
from fam.mixing import mix

CACHE_ROOT = Path(os.environ.get("FAM_CACHE_DIR", Path.home() / ".cache" / "fam"))
DEFAULT_PRIOR = CACHE_ROOT / "prior" / "export"
DEFAULT_ALIGNED = CACHE_ROOT / "aligned" / "lfw128"
DEFAULT_PACK = CACHE_ROOT / "packed" / "lfw64_q90.npz"
EMBED_CACHE = CACHE_ROOT / "bench_prior"

SUMMARY_ORDER = (
    "fid",
    "face_rate",
    "distinct",
    "memorised",
    "inv_match",
    "inv_match_encoder",
    "swap_change",
    "landmark_shift_px",
    "dlib_fd",
)


# --------------------------------------------------------------------------------------------
# Plain data passed between the pieces.


@dataclass(frozen=True)
class Detection:
    score: float  # MTCNN face probability
    landmarks: np.ndarray  # [5, 2] (x, y) in pixels: eyes, nose, mouth corners


# images [B, 3, R, R] in [-1, 1] -> detections per image
Detector = Callable[[torch.Tensor], list[list[Detection]]]
# images [B, 3, R, R] in [-1, 1] -> L2-normalised embeddings [B, D] on the CPU
Embedder = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class FaceSet:
    images: torch.Tensor  # uint8 [N, 3, R, R] RGB at the prior's resolution
    people: list[str]  # [N]
    tag: str  # identifies the content for the embedding cache ("" = never cache)


@dataclass(frozen=True)
class Threshold:
    value: float  # cosine; a pair matches when its score >= value
    pairs: int  # impostor pairs behind the quantile
    images: int
    people: int


@dataclass(frozen=True)
class Result:
    value: float
    detail: str  # counts and context, printed after the value


@dataclass(frozen=True)
class Options:
    keys: int = 1000
    inversions: int = 500
    pairs: int = 500
    fid_samples: int = 5000
    fd_samples: int = 5000  # generated faces for the dlib Frechet distance
    memorised_quantile: float = 0.99  # share of unseen real faces the memorisation rule lets pass
    psi: float = 0.7  # key.truncation_psi, also for the swap pairs
    fmr: float = 1e-3
    min_prob: float = 0.9  # MTCNN probability for "a face"
    batch: int = 50
    seed: int = 0  # swap pairs and the held-out subset for inversion


# --------------------------------------------------------------------------------------------
# Pure pieces (unit-tested on constructed inputs).


def confident(faces: Sequence[Detection], min_prob: float) -> list[Detection]:
    return [f for f in faces if f.score >= min_prob]


def single_face_count(detections: Sequence[Sequence[Detection]], min_prob: float) -> int:
    """Images in which exactly one face reaches ``min_prob``."""
    return sum(1 for faces in detections if len(confident(faces, min_prob)) == 1)


def impostor_similarities(embeddings: torch.Tensor, people: Sequence[str]) -> np.ndarray:
    """Cosines of all pairs of different people (each pair once), float64."""
    if len(people) != embeddings.shape[0]:
        raise ValueError(f"{embeddings.shape[0]} embeddings but {len(people)} person names")
    _, codes = np.unique(np.asarray(people), return_inverse=True)
    codes_t = torch.from_numpy(codes)
    sims = embeddings.float() @ embeddings.float().T
    upper = torch.triu(torch.ones_like(sims, dtype=torch.bool), diagonal=1)
    impostor = sims[upper & (codes_t[:, None] != codes_t[None, :])].double().numpy()
    if impostor.size == 0:
        raise InputError("no impostor pairs: the held-out faces must come from at least two people")
    return impostor


def impostor_threshold(embeddings: torch.Tensor, people: Sequence[str], fmr: float) -> Threshold:
    """Cosine threshold at ``fmr`` from all pairs of different people (each pair once)."""
    impostor = impostor_similarities(embeddings, people)
    thresholds, _ = quantile_thresholds(impostor, (fmr,))
    return Threshold(next(iter(thresholds.values())), int(impostor.size), len(people), len(set(people)))


@dataclass(frozen=True)
class Spread:
    """How widely descriptors ``[N, D]`` scatter: the covariance's trace (total variance) and its
    participation ratio ``(sum ev)^2 / sum ev^2`` (how many directions carry that variance)."""

    trace: float
    dims: float


def descriptor_spread(embeddings: torch.Tensor) -> Spread:
    if embeddings.shape[0] < 2:
        raise InputError("the spread of descriptors needs at least two of them")
    ev = torch.linalg.eigvalsh(torch.cov(embeddings.double().T)).clamp_min(0)
    total = float(ev.sum())
    return Spread(total, total**2 / float(ev.square().sum()) if total > 0 else 0.0)


def shrunk_distinct(
    embeddings: torch.Tensor, people: Sequence[str], factor: float, threshold: float
) -> float:
    """Share of different-person pairs that still do not match after every (unit) descriptor is
    moved towards the set's mean by ``factor`` and re-normalised.

    What ``distinct`` could reach for a prior exactly as diverse as these real faces, if truncation
    shrank its identities the way it shrinks this prior's (``factor`` measured on key faces): an
    approximation in descriptor space, printed as a reference, never a gate."""
    mean = embeddings.double().mean(0)
    moved = F.normalize(mean + factor * (embeddings.double() - mean), dim=1)
    return float((impostor_similarities(moved, people) < threshold).mean())


def distinct_pairs(embeddings: torch.Tensor, threshold: float) -> tuple[int, int]:
    """(pairs that do NOT match, all pairs) over every unordered pair of rows."""
    sims = embeddings.float() @ embeddings.float().T
    upper = torch.triu(torch.ones_like(sims, dtype=torch.bool), diagonal=1)
    scores = sims[upper]
    return int((scores < threshold).sum()), int(scores.numel())


def nearest_similarity(probes: torch.Tensor, gallery: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """``[N]`` highest cosine of each probe over the gallery, in gallery chunks (bounded memory)."""
    best = torch.full((probes.shape[0],), -math.inf)
    p = probes.float()
    for start in range(0, gallery.shape[0], chunk):
        best = torch.maximum(best, (p @ gallery[start : start + chunk].float().T).max(dim=1).values)
    return best


def row_matches(a: torch.Tensor, b: torch.Tensor, threshold: float) -> torch.Tensor:
    """``[N]`` bool: row i of ``a`` matches row i of ``b`` (cosine of unit vectors >= threshold)."""
    return (a.float() * b.float()).sum(dim=1) >= threshold


def swap_identity(w_a: torch.Tensor, w_b: torch.Tensor, groups: LayerGroups) -> torch.Tensor:
    """A's W+ with its identity layers from B: the method's own mixing rule (paper eq. 1)."""
    return mix(w_a, w_b, groups, mode="paper")


def landmark_shifts(
    before: Sequence[Sequence[Detection]], after: Sequence[Sequence[Detection]], min_prob: float
) -> tuple[np.ndarray, int]:
    """(mean 5-point displacement per pair where both images hold a face, pairs without one).

    The most probable face of each image is compared; a face below ``min_prob`` counts as none.
    """
    shifts, missing = [], 0
    for faces_a, faces_b in zip(before, after, strict=True):
        a, b = confident(faces_a, min_prob), confident(faces_b, min_prob)
        if not a or not b:
            missing += 1
            continue
        la = max(a, key=lambda f: f.score).landmarks
        lb = max(b, key=lambda f: f.score).landmarks
        shifts.append(float(np.linalg.norm(la - lb, axis=1).mean()))
    return np.asarray(shifts, dtype=np.float64), missing


def share(count: int, total: int) -> float:
    return count / total if total else math.nan


# --------------------------------------------------------------------------------------------
# Generation and embedding, batched.


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``[0, 255]`` -> float ``[-1, 1]``."""
    return images.float() / 127.5 - 1.0


@torch.no_grad()
def synthesize(generator: Generator, ws: torch.Tensor, batch: int) -> torch.Tensor:
    """``ws [N, num_ws, w_dim]`` -> images ``[N, 3, R, R]`` in [-1, 1] on the CPU."""
    device = generator.w_avg.device
    parts = [
        generator.synthesis(ws[i : i + batch].to(device)).clamp(-1, 1).float().cpu()
        for i in range(0, ws.shape[0], batch)
    ]
    return torch.cat(parts) if parts else torch.zeros(0, 3, generator.resolution, generator.resolution)


def key_latents(generator: Generator, n: int, psi: float) -> torch.Tensor:
    """W+ codes of research keys 1..n, exactly as a user's key face is derived."""
    return torch.cat([key_latent(research_key(seed), generator, psi).cpu() for seed in range(1, n + 1)])


@torch.no_grad()
def random_latents(generator: Generator, n: int, psi: float, seed: int) -> torch.Tensor:
    """``n`` truncated W+ codes (one w broadcast to all layers) from a seeded CPU generator."""
    z = torch.randn(n, generator.z_dim, generator=torch.Generator().manual_seed(seed))
    w_avg = generator.w_avg
    w = generator.mapping(z.to(w_avg.device))
    w = w_avg + psi * (w - w_avg)
    return w.unsqueeze(1).repeat(1, generator.num_ws, 1).cpu()


def embed_uint8(embed: Embedder, images: torch.Tensor, batch: int) -> torch.Tensor:
    """Embed uint8 faces, converting one batch at a time (10k float faces would be 0.5 GB)."""
    parts = [embed(to_unit_range(images[i : i + batch])) for i in range(0, images.shape[0], batch)]
    return torch.cat(parts) if parts else torch.zeros(0, 0)


# --------------------------------------------------------------------------------------------
# The benchmark state: every shared input computed once, on first use.


@dataclass
class Bench:
    generator: Generator
    groups: LayerGroups
    embed: Embedder
    detect: Detector
    options: Options = field(default_factory=Options)
    heldout_source: Callable[[], FaceSet] | None = None  # real held-out faces (threshold, inversion)
    train_source: Callable[[], FaceSet] | None = None  # the training pack (memorised)
    inverters: Mapping[str, Callable[[], Inverter]] = field(default_factory=dict)  # "default", "encoder"
    fid: Callable[[int], float] | None = None  # samples -> FID
    cache_dir: Path | None = None  # embedding cache; None = no cache
    embedder_tag: str = "dlib"

    # --- inputs

    @cached_property
    def heldout(self) -> FaceSet:
        if self.heldout_source is None:
            raise InputError("this metric needs the real held-out faces: pass --aligned DIR")
        return self.heldout_source()

    @cached_property
    def train(self) -> FaceSet:
        if self.train_source is None:
            raise InputError("this metric needs the training faces: pass --pack FILE")
        return self.train_source()

    def _embedded(self, faces: FaceSet) -> torch.Tensor:
        """Embeddings of a face set, from the cache when its content was embedded before."""
        file = None
        if self.cache_dir is not None and faces.tag:
            name = hashlib.sha256(f"{faces.tag}|{self.embedder_tag}".encode()).hexdigest()[:20]
            file = self.cache_dir / f"{name}.pt"
            if file.is_file():
                cached = torch.load(file, map_location="cpu", weights_only=True)
                if cached.shape[0] == faces.images.shape[0]:
                    return cached
        emb = embed_uint8(self.embed, faces.images, self.options.batch)
        if file is not None:
            file.parent.mkdir(parents=True, exist_ok=True)
            tmp = file.with_suffix(f".{os.getpid()}.tmp")
            torch.save(emb, tmp)
            os.replace(tmp, file)
        return emb

    @cached_property
    def heldout_embeddings(self) -> torch.Tensor:
        return self._embedded(self.heldout)

    @cached_property
    def train_embeddings(self) -> torch.Tensor:
        return self._embedded(self.train)

    @cached_property
    def threshold(self) -> Threshold:
        t = impostor_threshold(self.heldout_embeddings, self.heldout.people, self.options.fmr)
        print(
            f"threshold: dlib cosine {t.value:.4f} at FMR {self.options.fmr:g} from {t.pairs:,} impostor "
            f"pairs ({t.images:,} real held-out faces of {t.people:,} people, "
            f"{self.generator.resolution} px)",
            flush=True,
        )
        return t

    # --- generated faces

    @cached_property
    def key_images(self) -> torch.Tensor:
        ws = key_latents(self.generator, self.options.keys, self.options.psi)
        return synthesize(self.generator, ws, self.options.batch)

    @cached_property
    def key_embeddings(self) -> torch.Tensor:
        return self.embed_images(self.key_images)

    def embed_images(self, images: torch.Tensor) -> torch.Tensor:
        b = self.options.batch
        return torch.cat([self.embed(images[i : i + b]) for i in range(0, images.shape[0], b)])

    def detect_images(self, images: torch.Tensor) -> list[list[Detection]]:
        b = self.options.batch
        return [faces for i in range(0, images.shape[0], b) for faces in self.detect(images[i : i + b])]

    @cached_property
    def swap(self) -> SwapPairs:
        o = self.options
        w = random_latents(self.generator, 2 * o.pairs, o.psi, o.seed)
        w_a, w_b = w[: o.pairs], w[o.pairs :]
        images_a = synthesize(self.generator, w_a, o.batch)
        swapped = synthesize(self.generator, swap_identity(w_a, w_b, self.groups), o.batch)
        return SwapPairs(
            images_a,
            swapped,
            self.embed_images(images_a),
            self.embed_images(swapped),
            self.detect_images(images_a),
            self.detect_images(swapped),
        )

    def heldout_subset(self, n: int) -> torch.Tensor:
        """Indices of ``n`` held-out faces drawn with the benchmark seed (not the first names A-Z)."""
        order = np.random.default_rng(self.options.seed).permutation(self.heldout.images.shape[0])
        return torch.from_numpy(order[:n])


@dataclass(frozen=True)
class SwapPairs:
    images_a: torch.Tensor
    swapped: torch.Tensor
    emb_a: torch.Tensor
    emb_swapped: torch.Tensor
    faces_a: list[list[Detection]]
    faces_swapped: list[list[Detection]]


# --------------------------------------------------------------------------------------------
# The metrics: name -> function of the shared state. Each can run alone.


def metric_face_rate(b: Bench) -> Result:
    n = b.options.keys
    single = single_face_count(b.detect_images(b.key_images), b.options.min_prob)
    detail = f"{single}/{n} key faces with exactly one MTCNN face at p >= {b.options.min_prob}"
    if b.heldout_source is not None:  # the detector's own rate on real faces at this resolution
        idx = b.heldout_subset(n)
        real = single_face_count(b.detect_images(to_unit_range(b.heldout.images[idx])), b.options.min_prob)
        detail += f"; real held-out faces: {share(real, len(idx)):.4f} ({real}/{len(idx)})"
    return Result(share(single, n), detail)


def metric_distinct(b: Bench) -> Result:
    t = b.threshold.value
    apart, total = distinct_pairs(b.key_embeddings, t)
    keys, real = descriptor_spread(b.key_embeddings), descriptor_spread(b.heldout_embeddings)
    detail = (
        f"{apart:,}/{total:,} pairs of key faces do not match (cos < {t:.4f}); descriptor spread "
        f"(covariance trace, effective dims): key faces {keys.trace:.4f} ({keys.dims:.1f}), real held-out "
        f"faces {real.trace:.4f} ({real.dims:.1f})"
    )
    if b.options.psi < 1.0:  # how far truncation alone lets a prior as diverse as real faces get
        full = descriptor_spread(
            b.embed_images(
                synthesize(b.generator, key_latents(b.generator, b.options.keys, 1.0), b.options.batch)
            )
        )
        if full.trace > 0:  # a generator that draws one face for every key has nothing to shrink
            factor = math.sqrt(keys.trace / full.trace)
            reach = shrunk_distinct(b.heldout_embeddings, b.heldout.people, factor, t)
            detail += (
                f"; psi {b.options.psi} shrinks this prior's spread by {factor:.2f}x (key faces at psi 1: "
                f"{full.trace:.4f}), which would leave real held-out faces {reach:.4f} distinct"
            )
    return Result(share(apart, total), detail)


def memorisation_threshold(real_nearest: torch.Tensor, quantile: float) -> float:
    """The nearest-training-face similarity that only ``1 - quantile`` of unseen real faces exceed."""
    if real_nearest.numel() == 0:
        raise InputError("no real held-out faces to calibrate the memorisation rule on")
    return float(torch.quantile(real_nearest.double(), quantile))


def metric_memorised(b: Bench) -> Result:
    # "Matches someone in a 10k gallery" is chance at FMR 1e-3 (84% of unseen real faces do), so
    # the rule is calibrated on faces no training can have seen: a key face counts as memorised-
    # like when it sits closer to a training face than all but 1% of real held-out faces do.
    gallery = b.train_embeddings
    q = b.options.memorised_quantile
    t = memorisation_threshold(nearest_similarity(b.heldout_embeddings, gallery), q)
    hits = int((nearest_similarity(b.key_embeddings, gallery) > t).sum())
    n = b.key_embeddings.shape[0]
    return Result(
        share(hits, n),
        f"{hits}/{n} key faces are closer to one of {gallery.shape[0]:,} training faces than "
        f"{q:.0%} of {b.heldout_embeddings.shape[0]:,} real held-out faces are (cos > {t:.4f}); "
        f"unseen real faces score {1 - q:.2f} by construction",
    )


def metric_dlib_fd(b: Bench) -> Result:
    o = b.options
    ws = random_latents(b.generator, o.fd_samples, 1.0, o.seed + 1)
    fake = torch.cat(
        [b.embed(synthesize(b.generator, ws[i : i + o.batch], o.batch)) for i in range(0, len(ws), o.batch)]
    )
    real = b.train_embeddings
    value = fid_from_features(fake.double().numpy(), real.double().numpy())
    return Result(
        value,
        f"Frechet distance of L2-normalised dlib descriptors: {len(fake)} samples (psi 1) against all "
        f"{len(real):,} training faces of the pack",
    )


def _inversion_match(b: Bench, which: str) -> Result:
    idx = b.heldout_subset(b.options.inversions)
    inverter = b.inverters[which]()
    originals = to_unit_range(b.heldout.images[idx])
    device = b.generator.w_avg.device
    recs = []
    for i in range(0, originals.shape[0], b.options.batch):
        ws = inverter.invert(originals[i : i + b.options.batch].to(device))
        recs.append(synthesize(b.generator, ws, b.options.batch))
    rec = torch.cat(recs)
    t = b.threshold.value
    hits = int(row_matches(b.embed_images(originals), b.embed_images(rec), t).sum())
    return Result(share(hits, len(idx)), f"{hits}/{len(idx)} reconstructions match their original ({which})")


def metric_inv_match(b: Bench) -> Result:
    return _inversion_match(b, "default")


def metric_inv_match_encoder(b: Bench) -> Result:
    if "encoder" not in b.inverters:
        return Result(math.nan, "no encoder was given (pass --encoder PATH to a fam-encoder checkpoint)")
    return _inversion_match(b, "encoder")


def metric_swap_change(b: Bench) -> Result:
    s, t = b.swap, b.threshold.value
    changed = int((~row_matches(s.emb_a, s.emb_swapped, t)).sum())
    n = s.emb_a.shape[0]
    layers = ",".join(map(str, b.groups.identity))
    return Result(share(changed, n), f"{changed}/{n} swaps (identity layers {layers}) no longer match A")


def metric_landmark_shift(b: Bench) -> Result:
    s = b.swap
    shifts, missing = landmark_shifts(s.faces_a, s.faces_swapped, b.options.min_prob)
    value = float(np.median(shifts)) if shifts.size else math.nan
    return Result(
        value,
        f"median over {shifts.size} pairs of the mean 5-point shift in px at {b.generator.resolution} px; "
        f"{missing} pairs without a face (p >= {b.options.min_prob}) in A or swapped A",
    )


def metric_fid(b: Bench) -> Result:
    if b.fid is None:
        raise InputError("FID needs the training pack: pass --pack FILE")
    n = b.options.fid_samples
    return Result(b.fid(n), f"{n} EMA samples (psi 1) against the pack's first {n} faces")


METRICS: dict[str, Callable[[Bench], Result]] = {
    "face_rate": metric_face_rate,
    "distinct": metric_distinct,
    "memorised": metric_memorised,
    "inv_match": metric_inv_match,
    "inv_match_encoder": metric_inv_match_encoder,
    "swap_change": metric_swap_change,
    "landmark_shift_px": metric_landmark_shift,
    "fid": metric_fid,
    "dlib_fd": metric_dlib_fd,
}

# Which inputs each metric reads, so that a missing one is reported before any work starts.
NEEDS_HELDOUT = {"distinct", "memorised", "inv_match", "inv_match_encoder", "swap_change"}
NEEDS_PACK = {"memorised", "fid", "dlib_fd"}


# --------------------------------------------------------------------------------------------
# Gates.


@dataclass(frozen=True)
class Condition:
    metric: str
    op: str  # ">=" or "<="
    bound: float
    min_fid_samples: int = 0  # FID only counts at this many samples or more

    def check(self, value: float) -> bool:
        return value >= self.bound if self.op == ">=" else value <= self.bound


GATES: dict[str, tuple[Condition, ...]] = {
    "Gate 1": (
        Condition("face_rate", ">=", 0.90),
        Condition("distinct", ">=", 0.99),
        Condition("memorised", "<=", 0.02),
        Condition("fid", "<=", 60.0, min_fid_samples=5000),
    ),
    "Gate 2": (
        Condition("fid", "<=", 30.0, min_fid_samples=10000),
        Condition("face_rate", ">=", 0.97),
        Condition("inv_match", ">=", 0.90),
        Condition("inv_match_encoder", ">=", 0.60),
        Condition("swap_change", ">=", 0.95),
        Condition("landmark_shift_px", "<=", 2.0),
    ),
}


def gate_verdict(name: str, values: Mapping[str, float], fid_samples: int) -> str:
    """``PASS`` (all met), ``FAIL`` (one measured and missed) or ``INCOMPLETE``, with each check."""
    parts, failed, unmeasured = [], False, False
    for c in GATES[name]:
        value = values.get(c.metric, math.nan)
        if c.metric == "fid" and fid_samples < c.min_fid_samples and not math.isnan(value):
            parts.append(f"{c.metric} {value:.2f} not at {c.min_fid_samples} samples")
            unmeasured = True
        elif math.isnan(value):
            parts.append(f"{c.metric} not measured")
            unmeasured = True
        else:
            ok = c.check(value)
            failed |= not ok
            parts.append(f"{c.metric} {value:.4g} {c.op} {c.bound:g} {'yes' if ok else 'NO'}")
    verdict = "FAIL" if failed else "INCOMPLETE" if unmeasured else "PASS"
    return f"{name}: {verdict} ({'; '.join(parts)})"


def summary_line(values: Mapping[str, float]) -> str:
    def fmt(name: str) -> str:
        v = values.get(name, math.nan)
        return "nan" if math.isnan(v) else f"{v:.2f}" if name in ("fid", "landmark_shift_px") else f"{v:.4f}"

    return " ".join(f"{name}={fmt(name)}" for name in SUMMARY_ORDER)


def run_metrics(bench: Bench, names: Sequence[str]) -> dict[str, float]:
    """Run ``names`` in registry order, printing one line each; others are reported as skipped."""
    values: dict[str, float] = {}
    for name, fn in METRICS.items():
        if name not in names:
            values[name] = math.nan
            print(f"{name}: nan (skipped)", flush=True)
            continue
        t0 = time.perf_counter()
        with torch.no_grad():  # the projection inverter re-enables gradients for its own steps
            r = fn(bench)
        values[name] = r.value
        print(f"{name}: {r.value:.4f} ({r.detail}; {time.perf_counter() - t0:.0f} s)", flush=True)
    return values


# --------------------------------------------------------------------------------------------
# Real inputs: the prior, MTCNN, dlib, the aligned folder and the pack.


def _load_face(path: Path, resolution: int) -> np.ndarray:
    with Image.open(path) as im:
        rgb = im.convert("RGB")
    if rgb.width != resolution:  # Lanczos, as the pack was made (fam.training.pack)
        rgb = rgb.resize((resolution, resolution), Image.Resampling.LANCZOS)
    return np.asarray(rgb)


def no_aligned_error(aligned: Path) -> InputError:
    return InputError(
        f"aligned faces {aligned} do not exist; align LFW with `fam align --input data/lfw/images "
        f"--out {aligned} --set align.size=128` or pass --aligned DIR"
    )


def load_heldout(aligned: Path, resolution: int) -> FaceSet:
    """Every aligned face of a held-out-split person, at ``resolution``."""
    from fam.dataset import scan_aligned
    from fam.training.splits import load_split

    if not Path(aligned).is_dir():
        raise no_aligned_error(aligned)
    split = load_split()
    people, _ = scan_aligned(Path(aligned))
    files = [(p.name, f.path) for p in people if p.name in split.heldout for f in p.files]
    if not files:
        raise InputError(f"{aligned} holds no faces of held-out-split people (splits/lfw_people_split.json)")
    images = np.stack([_load_face(path, resolution) for _, path in files])
    tag = hashlib.sha256(
        "\n".join(f"{path.name}:{path.stat().st_size}" for _, path in files).encode()
    ).hexdigest()
    return FaceSet(
        torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(),
        [name for name, _ in files],
        f"heldout:{resolution}:{tag}",
    )


def load_train(pack: Path, resolution: int) -> FaceSet:
    from fam.io_utils import sha256_file
    from fam.training.pack import load_pack

    faces = load_pack(pack)  # refuses held-out people; says how to make a missing pack
    if faces.resolution != resolution:
        raise InputError(f"{pack} holds {faces.resolution} px faces; the prior is {resolution} px")
    return FaceSet(faces.images, faces.person, f"pack:{sha256_file(pack)}")


def mtcnn_detector(device: torch.device) -> Detector:
    from fam.faces.mtcnn import Mtcnn

    net = Mtcnn(device)

    def detect(images: torch.Tensor) -> list[list[Detection]]:
        raw = net.detect(((images.float().clamp(-1, 1) + 1.0) * 127.5).to(device))
        out: list[list[Detection]] = [[] for _ in range(images.shape[0])]
        scores, marks = raw.scores.cpu().double().numpy(), raw.landmarks.cpu().double().numpy()
        for k, i in enumerate(raw.image_index.cpu().tolist()):
            out[i].append(Detection(float(scores[k]), marks[k]))
        return out

    return detect


def prior_fid(generator: Generator, pack: Path, samples: int, device: torch.device) -> float:
    from fam.evaluate.fid import InceptionFeatures, fid_from_features
    from fam.training.run_prior import _sample_batches, reference_features

    real = reference_features(pack, samples, device)
    fake = InceptionFeatures(device).features(_sample_batches(generator, samples, device))  # type: ignore[arg-type]
    return fid_from_features(fake, real)


def encoder_inverter(path: Path, generator: Generator, device: torch.device) -> Callable[[], Inverter]:
    from fam.config import ModelSpec
    from fam.io_utils import sha256_file
    from fam.models.factory import BuildContext, build

    spec = ModelSpec("fam-encoder", {"checkpoint": str(path), "sha256": sha256_file(Path(path))})
    return lambda: build("inverter", spec, BuildContext(device, generator=generator))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prior", type=Path, default=DEFAULT_PRIOR, help="lifeboat folder with prior.pt")
    ap.add_argument("--encoder", type=Path, default=None, help="fam-encoder checkpoint (encoder.pt)")
    ap.add_argument("--keys", type=int, default=1000, help="research keys 1..N")
    ap.add_argument("--inversions", type=int, default=500, help="held-out faces to invert")
    ap.add_argument("--pairs", type=int, default=500, help="generated pairs for the identity swap")
    ap.add_argument("--fid-samples", type=int, default=5000)
    ap.add_argument("--fd-samples", type=int, default=5000, help="generated faces for dlib_fd")
    ap.add_argument("--aligned", type=Path, default=DEFAULT_ALIGNED, help="`fam align` output (LFW)")
    ap.add_argument("--pack", type=Path, default=DEFAULT_PACK, help="packed train-split faces (.npz)")
    ap.add_argument("--skip", default="", help=f"comma-separated metrics to skip: {', '.join(METRICS)}")
    ap.add_argument("--only", default="", help="comma-separated metrics to run (default: all)")
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-cache", action="store_true", help="do not read or write cached embeddings")
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="params override KEY=VALUE")
    return ap.parse_args(argv)


def selected_metrics(only: str, skip: str) -> list[str]:
    def names(text: str) -> list[str]:
        out = [n.strip() for n in text.split(",") if n.strip()]
        unknown = sorted(set(out) - set(METRICS))
        if unknown:
            raise InputError(f"unknown metric(s) {', '.join(unknown)}; valid: {', '.join(METRICS)}")
        return out

    chosen = names(only) or list(METRICS)
    dropped = set(names(skip))
    return [n for n in chosen if n not in dropped]


def check_inputs(args: argparse.Namespace, names: Sequence[str]) -> None:
    """Report a missing input of the chosen metrics before minutes are spent on the others."""
    if not (args.prior / "prior.pt").is_file():
        raise InputError(
            f"{args.prior / 'prior.pt'} is missing: pass --prior the folder a `fam train-prior --export DIR` "
            "run wrote (the background run exports to ~/.cache/fam/prior/export)"
        )
    if set(names) & NEEDS_HELDOUT and not args.aligned.is_dir():
        raise no_aligned_error(args.aligned)
    if set(names) & NEEDS_PACK and not args.pack.is_file():
        raise InputError(
            f"packed training faces {args.pack} do not exist; make them with `python -m "
            "benchmarks.pack_dataset --aligned ALIGNED --out DIR --resolution 64 --quality 90` "
            "(docs/training.md) or pass --pack FILE"
        )
    if args.encoder is not None and "inv_match_encoder" in names and not args.encoder.is_file():
        raise InputError(
            f"--encoder {args.encoder} does not exist; train one with `fam train-encoder ... --export DIR`"
        )


def build_bench(args: argparse.Namespace, names: Sequence[str]) -> Bench:
    from benchmarks.machine import machine_line
    from fam import recognizers
    from fam.cli.common import load_cli_params
    from fam.layers import resolve_groups_for
    from fam.models.factory import BuildContext, build, resolve_device
    from fam.runtime import Engine, apply_threads, resolve_modconv
    from fam.training.encoder import load_prior

    params = load_cli_params(args.params, tuple(args.overrides))
    device = resolve_device(params.runtime.device)
    if device.type == "cpu":
        apply_threads(params.runtime.threads)
    # fp32 throughout: the gates measure the network, not bf16 rounding; the modulated
    # convolution path only changes speed (same function to float rounding).
    engine = Engine(device, "fp32", resolve_modconv(params.runtime.modconv, device))
    print(machine_line(engine), flush=True)
    generator, _, digest = load_prior(args.prior, device)
    engine.prepare(generator)  # type: ignore[arg-type]
    spec = params.models.inverter
    inverters: dict[str, Callable[[], Inverter]] = {
        "default": lambda: build("inverter", spec, BuildContext(device, generator=generator))
    }
    if args.encoder is not None:
        inverters["encoder"] = encoder_inverter(args.encoder, generator, device)
    options = Options(
        keys=args.keys,
        inversions=args.inversions,
        pairs=args.pairs,
        fid_samples=args.fid_samples,
        fd_samples=args.fd_samples,
        psi=params.key.truncation_psi,
        batch=args.batch,
        seed=args.seed,
    )
    recognizer = recognizers.get("dlib", device=device, batch_size=args.batch)
    res = generator.resolution
    print(
        f"prior: {args.prior / 'prior.pt'} sha256 {digest[:16]} ({res} px, {generator.num_ws} W+ layers); "
        f"inverter {params.models.inverter.name}; keys={args.keys} inversions={args.inversions} "
        f"pairs={args.pairs} fid_samples={args.fid_samples} psi={options.psi} seed={args.seed}",
        flush=True,
    )
    return Bench(
        generator=generator,
        groups=resolve_groups_for(params.layers, generator),
        embed=recognizer.embed,
        detect=mtcnn_detector(device),
        options=options,
        heldout_source=(lambda: load_heldout(args.aligned, res)) if args.aligned.is_dir() else None,
        train_source=lambda: load_train(args.pack, res),
        inverters=inverters,
        fid=lambda n: prior_fid(generator, args.pack, n, device),
        cache_dir=None if args.no_cache else EMBED_CACHE,
    )


def bench_for(names: Sequence[str], args: argparse.Namespace, options: Sequence[str]) -> Bench:
    """The bench another script measures with: its ``args`` give this script's ``options`` (same
    names, e.g. ``prior``, ``keys``) and their ``overrides`` (``--set``)."""
    argv = [x for name in options for x in (f"--{name.replace('_', '-')}", str(getattr(args, name)))]
    bench_args = parse_args(argv + [x for o in args.overrides for x in ("--set", o)])
    check_inputs(bench_args, names)
    return build_bench(bench_args, names)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        names = selected_metrics(args.only, args.skip)
        check_inputs(args, names)
        bench = build_bench(args, names)
        values = run_metrics(bench, names)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for gate in GATES:
        print(gate_verdict(gate, values, args.fid_samples))
    print(summary_line(values))
    return 0


if __name__ == "__main__":
    sys.exit(main())
