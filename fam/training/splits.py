"""The LFW people split: who may be trained on, and who is held out for the evaluation.

Rule (recorded in ``splits/lfw_people_split.json``): a person is held out when the first 8 bytes
of ``sha256(SALT + name)``, read as a big-endian integer and divided by 2**64, fall below
``HELDOUT_FRACTION``. The rule depends on the name alone, so adding or removing other people
never moves anyone across the line. Every image of a held-out person is refused by the packer
and by the training data loader (:func:`check_trainable`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from fam.errors import InputError
from fam.io_utils import atomic_write_text

SALT = "fam-lfw-people-split-v1:"
HELDOUT_FRACTION = 0.25
SPLIT_FILE = Path(__file__).resolve().parents[2] / "splits" / "lfw_people_split.json"


def heldout_score(name: str) -> float:
    """Deterministic number in [0, 1) per person name."""
    digest = hashlib.sha256((SALT + name).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def is_heldout_by_rule(name: str) -> bool:
    return heldout_score(name) < HELDOUT_FRACTION


@dataclass(frozen=True)
class PeopleSplit:
    train: frozenset[str]
    heldout: frozenset[str]
    content_sha256: str  # hash of the two sorted name lists (see make_split)

    def role(self, person: str) -> str:
        """``"train"`` or ``"heldout"``; unknown names are an error (not in LFW's people list)."""
        if person in self.train:
            return "train"
        if person in self.heldout:
            return "heldout"
        raise InputError(f"person {person!r} is not in the LFW people split {SPLIT_FILE.name}")


def _content_hash(train: Iterable[str], heldout: Iterable[str]) -> str:
    blob = json.dumps({"heldout": sorted(heldout), "train": sorted(train)}, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def make_split(image_counts: Mapping[str, int]) -> dict[str, object]:
    """The split document for ``{person: number of images}`` (LFW's people, from the image tree)."""
    heldout = sorted(n for n in image_counts if is_heldout_by_rule(n))
    train = sorted(n for n in image_counts if not is_heldout_by_rule(n))
    multi = [n for n in image_counts if image_counts[n] >= 2]
    multi_held = [n for n in heldout if image_counts[n] >= 2]
    return {
        "rule": (
            f"heldout iff int.from_bytes(sha256(({SALT!r} + name).encode('utf-8'))[:8], 'big') / 2**64 "
            f"< {HELDOUT_FRACTION}"
        ),
        "source": "LFW deep-funneled data/lfw/images/<Name>/ (one folder per person)",
        "counts": {
            "people": len(image_counts),
            "images": sum(image_counts.values()),
            "train_people": len(train),
            "train_images": sum(image_counts[n] for n in train),
            "heldout_people": len(heldout),
            "heldout_images": sum(image_counts[n] for n in heldout),
            "people_with_2plus_images": len(multi),
            "heldout_people_with_2plus_images": len(multi_held),
            "heldout_share_of_2plus_people": round(len(multi_held) / max(len(multi), 1), 4),
        },
        "content_sha256": _content_hash(train, heldout),
        "heldout": heldout,
        "train": train,
    }


@cache
def load_split(path: Path = SPLIT_FILE) -> PeopleSplit:
    """Read and verify the committed split (its content hash and its rule)."""
    if not Path(path).is_file():
        raise InputError(
            f"people split {path} is missing; regenerate it with `python -m fam.training.splits`"
        )
    doc = json.loads(Path(path).read_text())
    train, heldout = doc["train"], doc["heldout"]
    if _content_hash(train, heldout) != doc["content_sha256"]:
        raise InputError(f"people split {path}: the name lists do not match content_sha256 (edited by hand?)")
    wrong = [n for n in train if is_heldout_by_rule(n)] + [n for n in heldout if not is_heldout_by_rule(n)]
    if wrong:
        raise InputError(f"people split {path}: {len(wrong)} names break the recorded rule, e.g. {wrong[:3]}")
    return PeopleSplit(frozenset(train), frozenset(heldout), doc["content_sha256"])


def check_trainable(people: Iterable[str], split: PeopleSplit | None = None) -> None:
    """Refuse any held-out (or unknown) person: their images must never reach training."""
    split = split or load_split()
    names = set(people)
    held = sorted(names & split.heldout)
    if held:
        raise InputError(
            f"{len(held)} held-out people would be trained on (e.g. {held[:3]}); the evaluation relies on "
            f"never having seen them. Rebuild the data with the packer, which keeps the train split only"
        )
    unknown = sorted(names - split.train)
    if unknown:
        raise InputError(
            f"{len(unknown)} people are not in the LFW split (e.g. {unknown[:3]}); refusing them"
        )


def main() -> None:
    """Regenerate ``splits/lfw_people_split.json`` from ``data/lfw/images``."""
    images = Path("data/lfw/images")
    if not images.is_dir():
        raise SystemExit("data/lfw/images is missing: run `dvc pull` from the project root first")
    counts = {d.name: sum(1 for _ in d.glob("*.jpg")) for d in sorted(images.iterdir()) if d.is_dir()}
    doc = make_split(counts)
    atomic_write_text(SPLIT_FILE, json.dumps(doc, indent=1) + "\n")
    print(json.dumps(doc["counts"], indent=1))


if __name__ == "__main__":
    main()
