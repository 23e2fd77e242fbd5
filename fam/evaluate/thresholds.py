"""Similarity thresholds at fixed false match rates, from clean impostor scores.

The threshold for FMR ``f`` is the ``1 - f`` quantile of the FR evaluator's similarity scores of
clean (unprotected) images of *different* people, taken from people disjoint from those
evaluated. Every threshold is stored with its pair count, the evaluator and a hash of the image
list, and one file is reused by every metric of an evaluation.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from fam.errors import InputError
from fam.io_utils import atomic_write_json

THRESHOLDS_FORMAT = "fam-thresholds/v1"

# The cosine table many face-privacy codebases copy, of unknown origin (docs/reference.md).
# Only meaningful for these exact models and only for comparison with published numbers.
LITERATURE_THRESHOLDS: dict[str, dict[float, float]] = {
    "arcface-ir152": {1e-3: 0.094632, 1e-4: 0.166788, 1e-5: 0.227922},
    "arcface-irse50": {1e-3: 0.144840, 1e-4: 0.241045, 1e-5: 0.312703},
    "facenet": {1e-3: 0.256587, 1e-4: 0.409131, 1e-5: 0.591191},
    "mobileface": {1e-3: 0.183635, 1e-4: 0.301611, 1e-5: 0.380878},
}


def fmr_tag(fmr: float) -> str:
    """``1e-3`` -> ``"1e-3"`` (metric names and JSON keys)."""
    mantissa, exponent = f"{fmr:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


@dataclass(frozen=True)
class EvaluatorThresholds:
    evaluator: str
    source: str  # "impostors" (measured here) or "literature" (the fixed table)
    thresholds: dict[str, float]  # fmr tag -> similarity threshold (match when score >= it)
    n_pairs: int  # impostor pairs behind the quantiles (0 for literature)
    n_images: int
    n_people: int
    data_hash: str  # sha256 of the impostor image list with sizes ("" for literature)
    people: tuple[str, ...] = field(default=())  # person hashes, for the disjointness check
    above: dict[str, int] = field(default_factory=dict)  # impostor pairs >= each threshold
    image_size: int = 0  # px the impostor images were scored at (0: each at its own size, or literature)

    def at(self, fmr: float) -> float:
        return self.thresholds[fmr_tag(fmr)]


def quantile_thresholds(
    impostor: np.ndarray, fmrs: tuple[float, ...]
) -> tuple[dict[str, float], dict[str, int]]:
    """(threshold per FMR tag, count of impostor scores at or above it) from raw scores."""
    impostor = np.asarray(impostor, dtype=np.float64)
    thresholds = {fmr_tag(f): float(np.quantile(impostor, 1.0 - f)) for f in fmrs}
    above = {tag: int(np.count_nonzero(impostor >= t)) for tag, t in thresholds.items()}
    return thresholds, above


def from_impostor_scores(
    evaluator: str,
    impostor: np.ndarray,  # similarity scores of different-person pairs of clean images
    fmrs: tuple[float, ...],
    *,
    n_images: int,
    people: tuple[str, ...],  # person hashes of the impostor set
    data_hash: str,
    min_pairs: int,
    image_size: int = 0,
) -> EvaluatorThresholds:
    if impostor.size < min_pairs:
        raise InputError(
            f"{evaluator}: only {impostor.size} impostor pairs for the FMR thresholds; at least {min_pairs} "
            "are required (evaluate.min_impostor_pairs). Give --thresholds-from a larger aligned set of "
            "people not in the release (e.g. the rest of LFW), or raise evaluate.threshold_max_images"
        )
    thresholds, above = quantile_thresholds(impostor, fmrs)
    return EvaluatorThresholds(
        evaluator=evaluator,
        source="impostors",
        thresholds=thresholds,
        n_pairs=int(impostor.size),
        n_images=n_images,
        n_people=len(people),
        data_hash=data_hash,
        people=tuple(sorted(people)),
        above=above,
        image_size=image_size,
    )


def literature(evaluator: str, fmrs: tuple[float, ...]) -> EvaluatorThresholds | None:
    """The fixed published table for this evaluator, or None if it is not one of its models."""
    table = LITERATURE_THRESHOLDS.get(evaluator)
    if table is None or not all(f in table for f in fmrs):
        return None
    return EvaluatorThresholds(
        evaluator=evaluator,
        source="literature",
        thresholds={fmr_tag(f): table[f] for f in fmrs},
        n_pairs=0,
        n_images=0,
        n_people=0,
        data_hash="",
    )


def save(path: str | Path, sets: dict[str, EvaluatorThresholds]) -> None:
    doc = {"format": THRESHOLDS_FORMAT, "match_rule": "score >= threshold", "evaluators": {}}
    for name, s in sets.items():
        entry = asdict(s)
        entry["people"] = list(s.people)
        doc["evaluators"][name] = entry
    atomic_write_json(path, doc, sort_keys=False)


def load(path: str | Path) -> dict[str, EvaluatorThresholds]:
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: cannot read thresholds ({exc})") from exc
    if doc.get("format") != THRESHOLDS_FORMAT:
        raise InputError(f"{path} has format {doc.get('format')!r}; expected {THRESHOLDS_FORMAT!r}")
    out = {}
    for name, e in doc["evaluators"].items():
        e = dict(e)
        e["people"] = tuple(e.get("people", ()))
        out[name] = EvaluatorThresholds(**e)
    return out


def check_disjoint(sets: dict[str, EvaluatorThresholds], evaluated_people: set[str]) -> None:
    """Refuse thresholds measured on any person who is also being evaluated."""
    for s in sets.values():
        shared = set(s.people) & evaluated_people
        if shared:
            raise InputError(
                f"thresholds for {s.evaluator} were measured on {len(shared)} of the evaluated people; "
                "the impostor set must be disjoint from them (use other people for --thresholds-from)"
            )
