"""LFW verification accuracy of a face recognition evaluator (10-fold, 6,000 pairs).

Protocol (LFW View 2, ``pairs.txt``): 10 folds of 300 same + 300 different pairs; for each
fold the similarity threshold that maximises accuracy on the other 9 folds is applied to it;
the mean over folds is reported. Scores are the cosine of L2-normalised embeddings, as the
evaluators of ``fam.recognizers`` compute them (``--recognizer``, default ``dlib``). For dlib the
accuracy of dlib's own rule (raw descriptor L2 < 0.6) is printed as well.

Development pairs (LFW View 1, ``--pairs pairsDevTrain.txt`` / ``pairsDevTest.txt``: one set of
same + different pairs) are for choosing settings, such as an evaluator's crop: there the
accuracy at the best threshold on the set itself is printed. ``--crops SCALE:CY,...`` replaces
the evaluator's crop template by square crops of half-width SCALE centred at (0, CY), in the
aligned image's normalised coordinates (``fam.faces.chip``), one result row per crop.

Aligners:
- ``dlib-chip`` (reference): dlib HOG detector + 5-point predictor + ``get_face_chip`` (150 px,
  padding 0.25). Where HOG finds no face, the 5-point predictor runs in a fixed box at the
  centre of the photo (LFW photos are centred on the face by construction); the count is printed.
- ``fam``: the project's FFHQ alignment (``fam.faces.align.align_image``), then the fixed dlib
  crop template of ``fam.faces.chip``. A photo it rejects scores -inf with everything (counted).

Degradation: the aligned faces are also downsampled (antialiased) to 128 and 64 px and
resampled back up for the network.

Precision: ``--precision bf16`` runs the network under bf16 autocast (as ``runtime.precision``
does in protection); ``--precision fp32,bf16`` scores both side by side, for the check that bf16
keeps the accuracy within 0.1 pp.

``--aligner dlib-chip`` is dlib's own pipeline and serves ``--recognizer dlib`` only.

Usage: ``nice -n 10 python benchmarks/bench_lfw_verify.py --aligner dlib-chip``, or for another
evaluator on faces `fam align` wrote: ``... --aligner fam --aligned-dir DIR --recognizer faceres``.
Last line: ``lfw_acc=<full> lfw_acc_128=<x> lfw_acc_64=<y>`` (of the last precision and crop;
each side given with ``--sides``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from fam.faces.chip import CropTemplate
from fam.interfaces import FaceRecognizer


def read_pairs(pairs_file: Path) -> tuple[list[tuple[str, str]], np.ndarray, np.ndarray]:
    """-> (pairs of image keys ``Name/Name_NNNN``, same-person flags [6000], fold ids [6000])."""
    lines = pairs_file.read_text().split("\n")
    header = [int(v) for v in lines[0].split()]  # View 2: "folds per-fold"; View 1: "per" (one set)
    folds, per = (header[0], header[1]) if len(header) == 2 else (1, header[0])
    pairs, same, fold = [], [], []
    rows = [line.split() for line in lines[1:] if line.strip()]
    if len(rows) != folds * 2 * per:
        raise SystemExit(f"{pairs_file}: {len(rows)} pairs, expected {folds * 2 * per}")
    for index, row in enumerate(rows):
        if len(row) == 3:
            a, b = (row[0], int(row[1])), (row[0], int(row[2]))
        else:
            a, b = (row[0], int(row[1])), (row[2], int(row[3]))
        pairs.append((f"{a[0]}/{a[0]}_{a[1]:04d}", f"{b[0]}/{b[0]}_{b[1]:04d}"))
        same.append(len(row) == 3)
        fold.append(index // (2 * per))
    return pairs, np.array(same), np.array(fold)


def best_threshold(scores: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """-> (threshold, accuracy) of the rule "same if score > threshold" that is most accurate here."""
    finite = np.unique(scores[np.isfinite(scores)])
    candidates = np.concatenate([[-np.inf], (finite[1:] + finite[:-1]) / 2, [np.inf]])
    # accuracy of every candidate at once
    order = np.sort(scores)
    pos_sorted = np.sort(scores[same])
    tp = len(pos_sorted) - np.searchsorted(pos_sorted, candidates, side="right")
    below = np.searchsorted(order, candidates, side="right")
    neg_below = below - (len(pos_sorted) - tp)
    acc = (tp + neg_below) / len(scores)
    best = int(np.argmax(acc))
    return float(candidates[best]), float(acc[best])


def ten_fold_accuracy(scores: np.ndarray, same: np.ndarray, fold: np.ndarray) -> float:
    """Mean accuracy over folds; each fold's threshold is the best one on the other folds.

    With a single fold (View 1) there are no other folds: the accuracy at the set's own best
    threshold, which is only good for comparing settings.
    """
    if len(np.unique(fold)) == 1:
        return best_threshold(scores, same)[1]
    accs = []
    for k in np.unique(fold):
        train, test = fold != k, fold == k
        threshold, _ = best_threshold(scores[train], same[train])
        accs.append(float(np.mean((scores[test] > threshold) == same[test])))
    return float(np.mean(accs))


def align_dlib_chips(root: Path, keys: list[str]) -> tuple[np.ndarray, int]:
    """-> (uint8 chips [N, 150, 150, 3], number of photos where HOG found no face)."""
    import dlib

    from fam.weights import resolve

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(resolve("dlib-shape-predictor-5")))
    chips = np.empty((len(keys), 150, 150, 3), dtype=np.uint8)
    fallbacks = 0
    for i, key in enumerate(keys):
        img = np.asarray(Image.open(root / f"{key}.jpg").convert("RGB"))
        h, w = img.shape[:2]
        faces = list(detector(img, 1))
        if faces:  # the face nearest the centre (LFW centres the named person)
            box = min(faces, key=lambda r: (r.center().x - w / 2) ** 2 + (r.center().y - h / 2) ** 2)
        else:
            fallbacks += 1
            box = dlib.rectangle(w // 2 - 55, h // 2 - 55, w // 2 + 55, h // 2 + 55)
        chips[i] = dlib.get_face_chip(img, predictor(img, box), size=150, padding=0.25)
    return chips, fallbacks


def align_fam(root: Path, keys: list[str], size: int) -> tuple[np.ndarray, np.ndarray]:
    """-> (uint8 FFHQ-aligned faces [N, size, size, 3], ok flags [N])."""
    from fam.faces import align  # the project's alignment (lazy: dlib-chip runs without it)

    cfg = align.AlignConfig(size=size, main_face="centre")
    faces = np.zeros((len(keys), size, size, 3), dtype=np.uint8)
    ok = np.zeros(len(keys), dtype=bool)
    for i, key in enumerate(keys):
        result = align.align_image(Image.open(root / f"{key}.jpg").convert("RGB"), cfg)
        if isinstance(result, align.AlignResult):
            faces[i], ok[i] = result.image, True
    return faces, ok


def read_fam_aligned(aligned_dir: Path, keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Faces already aligned by `fam align` (its manifest maps each LFW photo to its output)."""
    from fam.artifacts import AlignManifest

    rows = {Path(row.input_path).stem: row for row in AlignManifest.read(aligned_dir).aligned()}
    size = None
    faces, ok = None, np.zeros(len(keys), dtype=bool)
    for i, key in enumerate(keys):
        row = rows.get(Path(key).name)
        if row is None:
            continue
        img = np.asarray(Image.open(aligned_dir / row.output_path).convert("RGB"))
        if faces is None:
            size = img.shape[0]
            faces = np.zeros((len(keys), size, size, 3), dtype=np.uint8)
        faces[i], ok[i] = img, True
    if faces is None:
        raise SystemExit(f"no aligned LFW pair images found in {aligned_dir}")
    return faces, ok


def degrade(images: torch.Tensor, side: int | None) -> torch.Tensor:
    """Downsample ``[B, 3, S, S]`` to ``side`` (antialiased) and back up to S; None = unchanged."""
    if side is None or side >= images.shape[-1]:
        return images
    full = images.shape[-1]
    small = F.interpolate(images, size=(side, side), mode="bilinear", antialias=True, align_corners=False)
    return F.interpolate(small, size=(full, full), mode="bilinear", align_corners=False)


@torch.inference_mode()
def descriptors(
    aligned: np.ndarray, aligner: str, side: int | None, batch_size: int, precision: str = "fp32"
) -> np.ndarray:
    """Raw dlib descriptors [N, 128] of the aligned faces after degradation to ``side``."""
    from fam.faces.dlib_resnet import DlibIdentityEncoder, load_dlib_resnet_module
    from fam.runtime import Engine

    engine = Engine(torch.device("cpu"), precision)  # type: ignore[arg-type]

    net = load_dlib_resnet_module()
    encoder = DlibIdentityEncoder(net)
    out = []
    for start in range(0, len(aligned), batch_size):
        x = torch.from_numpy(aligned[start : start + batch_size]).permute(0, 3, 1, 2).float()
        x = degrade(x, side)
        with engine.autocast():
            if aligner == "dlib-chip":
                out.append(net(x).float())  # chips are already dlib's 150 px input, 0..255
            else:
                out.append(encoder.descriptors(x / 127.5 - 1.0).float())  # the fixed template crop
    return torch.cat(out).numpy()


@torch.inference_mode()
def embeddings(
    aligned: np.ndarray, recognizer: FaceRecognizer, side: int | None, batch_size: int, precision: str
) -> np.ndarray:
    """Unit embeddings [N, D] of FFHQ-aligned faces (uint8) after degradation to ``side``."""
    from fam.runtime import Engine

    engine = Engine(torch.device("cpu"), precision)  # type: ignore[arg-type]
    out = []
    for start in range(0, len(aligned), batch_size):
        x = degrade(torch.from_numpy(aligned[start : start + batch_size]).permute(0, 3, 1, 2).float(), side)
        with engine.autocast():
            out.append(recognizer.embed(x / 127.5 - 1.0).float())
    return torch.cat(out).numpy()


def parse_crops(spec: str, size: int) -> list[CropTemplate]:
    """``"0.8:0.1,0.9:0"`` -> square ``size``-px templates of half-width 0.8 at (0, 0.1), 0.9 at (0, 0)."""
    crops = []
    for item in spec.split(","):
        scale, _, cy = item.partition(":")
        theta = ((float(scale), 0.0, 0.0), (0.0, float(scale), float(cy or 0)))
        crops.append(CropTemplate(f"square {float(scale):g}:{float(cy or 0):g}", size, theta))
    return crops


def main() -> None:
    parser = argparse.ArgumentParser(description="LFW verification accuracy of a face recognition evaluator")
    parser.add_argument("--aligner", choices=["dlib-chip", "fam"], required=True)
    parser.add_argument("--recognizer", default="dlib", help="a name from fam.recognizers (fam models)")
    parser.add_argument("--lfw", type=Path, default=Path("data/lfw"))
    parser.add_argument("--pairs", default="pairs.txt", help="pairs file in --lfw (View 1: pairsDevTest.txt)")
    parser.add_argument("--fam-size", type=int, default=256, help="aligned size for --aligner fam")
    parser.add_argument(
        "--aligned-dir",
        type=Path,
        default=None,
        help="with --aligner fam: reuse a `fam align` output folder instead of aligning again",
    )
    parser.add_argument("--crops", default=None, help="SCALE:CY,... square crops replacing the template")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--precision", default="fp32", help="fp32, bf16 or a comma list (fp32,bf16)")
    parser.add_argument("--sides", default="full,128,64", help="comma list of full, 128, 64")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.recognizer != "dlib" and args.aligner != "fam":
        parser.error("--aligner dlib-chip makes dlib's own chips; other recognizers need --aligner fam")

    from fam.recognizers import TemplateRecognizer, get  # after parsing: --help needs no model

    recognizer = None
    if args.recognizer != "dlib" or args.crops:
        recognizer = get(args.recognizer, batch_size=args.batch_size)
        if args.crops and not isinstance(recognizer, TemplateRecognizer):
            parser.error(f"--crops needs an evaluator with a crop template; {args.recognizer} has none")
    if args.crops and args.aligner != "fam":
        parser.error("--crops applies to FFHQ-aligned faces: use --aligner fam")
    own = recognizer.template if isinstance(recognizer, TemplateRecognizer) else None
    crops = parse_crops(args.crops, own.size) if args.crops and own is not None else [own]

    pairs, same, fold = read_pairs(args.lfw / args.pairs)
    keys = sorted({k for pair in pairs for k in pair})
    index = {k: i for i, k in enumerate(keys)}
    ia = np.array([index[a] for a, _ in pairs])
    ib = np.array([index[b] for _, b in pairs])
    protocol = "10-fold" if len(np.unique(fold)) > 1 else "best-threshold (View 1, for settings only)"
    print(
        f"{len(pairs)} pairs, {len(keys)} distinct images; aligner {args.aligner}, "
        f"evaluator {args.recognizer}, accuracy {protocol}"
    )

    t0 = time.perf_counter()
    if args.aligner == "dlib-chip":
        aligned, fallbacks = align_dlib_chips(args.lfw / "images", keys)
        ok = np.ones(len(keys), dtype=bool)
        seconds = time.perf_counter() - t0
        print(f"aligned in {seconds:.0f} s; HOG found no face in {fallbacks} photos (centre box used)")
    else:
        if args.aligned_dir is not None:
            aligned, ok = read_fam_aligned(args.aligned_dir, keys)
        else:
            aligned, ok = align_fam(args.lfw / "images", keys, args.fam_size)
        print(f"aligned in {time.perf_counter() - t0:.0f} s; {int((~ok).sum())} photos rejected (score -inf)")

    results: dict[str, float] = {}
    sides = {"full": None, "128": 128, "64": 64}
    valid = ok[ia] & ok[ib]
    runs = [
        (c, p, label) for c in crops for p in args.precision.split(",") for label in args.sides.split(",")
    ]
    for crop, precision, label in runs:
        side = sides[label]
        t0 = time.perf_counter()
        tag = f"[{precision} {label}{'' if crop is None else ' ' + crop.name}]"
        if recognizer is None:  # dlib: raw descriptors, for dlib's own L2 rule as well
            raw = descriptors(aligned, args.aligner, side, args.batch_size, precision)
            unit = raw / np.linalg.norm(raw, axis=1, keepdims=True)
        else:
            if crop is not None:
                recognizer.template = crop  # type: ignore[union-attr]
            unit = embeddings(aligned, recognizer, side, args.batch_size, precision)
        cosine = np.where(valid, np.sum(unit[ia] * unit[ib], axis=1), -np.inf)
        results[label] = ten_fold_accuracy(cosine, same, fold)
        line = f"{tag} acc (cosine) {results[label]:.4f}"
        if recognizer is None:
            l2 = np.linalg.norm(raw[ia] - raw[ib], axis=1)
            fixed = float(np.mean(((l2 < 0.6) & valid) == same))
            neg_l2 = ten_fold_accuracy(np.where(valid, -l2, -np.inf), same, fold)
            norms = np.linalg.norm(raw, axis=1)
            line += (
                f"; (raw L2) {neg_l2:.4f}; dlib rule L2<0.6 {fixed:.4f}; "
                f"descriptor norm {norms.mean():.3f}+-{norms.std():.3f}"
            )
        genuine, impostor = cosine[same & valid], cosine[~same & valid]
        print(
            f"{line}; cosine same {genuine.mean():.3f}+-{genuine.std():.3f}, "
            f"different {impostor.mean():.3f}+-{impostor.std():.3f}; {time.perf_counter() - t0:.0f} s",
            flush=True,
        )
    names = {"full": "lfw_acc", "128": "lfw_acc_128", "64": "lfw_acc_64"}
    print(" ".join(f"{names[label]}={acc:.4f}" for label, acc in results.items()))


if __name__ == "__main__":
    main()
