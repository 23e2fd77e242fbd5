"""Derive the fixed crop templates of ``fam/faces/chip.py`` from real faces (one-off).

For each of N LFW images (deterministic choice: the first image of every k-th person):

1. dlib HOG detector + 5-point predictor -> dlib's face chip (``get_face_chip_details``,
   150 px, padding 0.25), i.e. where every chip pixel lies in the original photo;
2. dlib 68-point predictor -> the FFHQ alignment quad (StyleGAN's ``recreate_aligned_images``:
   eye centres = means of points 36-41 / 42-47, mouth corners = points 48 / 54), i.e. where
   every pixel of an FFHQ-aligned image lies in the photo;
3. facenet-pytorch's MTCNN -> its face box (FaceNet's input crop, ``margin=0``) and its five
   landmarks (eye centres, nose, mouth corners; the points ArcFace's 112x112 template uses).

Everything is then written in FFHQ-aligned normalised coordinates (``[-1, 1]``, pixel edges,
``align_corners=False``; valid for any resolution R), and averaged:

- ``dlib``: the 2x3 matrix taking chip normalised coordinates to aligned coordinates;
- ``facenet``: the same for the MTCNN box;
- ``arcface``: a least-squares similarity taking insightface's 112x112 five-point template to
  the mean MTCNN landmarks.

The 68-point model (no commercial use) serves only this derivation; the project never loads
it at run time. Prints the constants for ``chip.py`` and the spread across images.

Usage: ``python benchmarks/derive_chip_template.py [--num-images 60]``
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

# insightface's arcface_dst template (pixel centres at integer coordinates, 112x112 output).
ARCFACE_112_POINTS = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]]
)


def ffhq_frame(lm68: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FFHQ quad as ``(centre c, M = [x y])``: aligned normalised ``n`` -> photo pixel ``c + M n``."""
    eye_left = lm68[36:42].mean(0)
    eye_right = lm68[42:48].mean(0)
    eye_avg = (eye_left + eye_right) * 0.5
    eye_to_eye = eye_right - eye_left
    mouth_avg = (lm68[48] + lm68[54]) * 0.5
    eye_to_mouth = mouth_avg - eye_avg
    x = eye_to_eye - np.flipud(eye_to_mouth) * [-1, 1]
    x /= np.hypot(*x)
    x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.flipud(x) * [-1, 1]
    c = eye_avg + eye_to_mouth * 0.1
    # PIL's QUAD transform of (quad + 0.5) maps output continuous coordinate s in [0, R] to
    # photo pixel centre c + x (2s/R - 1) + y (2t/R - 1): exactly normalised coordinates.
    return c, np.stack([x, y], axis=1)


def to_aligned(points: np.ndarray, c: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Photo pixel-centre coordinates ``[N, 2]`` -> aligned normalised coordinates ``[N, 2]``."""
    return np.linalg.solve(m, (points - c).T).T


def dlib_chip_matrix(details: object, size: int) -> np.ndarray:
    """2x3 ``A``: chip pixel (i, j) -> photo pixel centre, from dlib's chip_details.

    dlib maps the chip's corner pixels 0 and size-1 onto the rectangle's corners, rotated by
    ``angle`` about the rectangle's centre (checked against a coordinate image in ``main``).
    """
    rect = details.rect  # type: ignore[attr-defined]
    angle = details.angle  # type: ignore[attr-defined]
    scale = (rect.right() - rect.left()) / (size - 1)
    centre = np.array([(rect.left() + rect.right()) / 2, (rect.top() + rect.bottom()) / 2])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) * scale
    return np.concatenate([rot, (centre - rot @ np.full(2, (size - 1) / 2))[:, None]], axis=1)


def check_chip_matrix(img: np.ndarray, shape5: object, a: np.ndarray, size: int) -> float:
    """Largest distance (px, at the chip corners) between ``a`` and an affine fitted to dlib's
    own warp of images whose pixels hold their coordinates. dlib truncates to uint8, so the
    warps of x and of 249 - x are averaged, which cancels the truncation bias."""
    import dlib

    h, w = img.shape[:2]
    assert max(h, w) <= 250, "coordinate image needs coordinates that fit in uint8"
    yy, xx = np.mgrid[0:h, 0:w]
    coord = np.stack([xx, yy, 0 * xx], -1)
    warps = [
        dlib.get_face_chip(c.astype(np.uint8), shape5, size=size, padding=0.25)[..., :2].astype(float)
        for c in (coord, 249 - coord)
    ]
    got = (warps[0] + 249 - warps[1]) / 2  # [size, size, 2] photo (x, y) per chip pixel
    jj, ii = np.mgrid[0:size, 0:size]
    inside = (got > 3).all(-1) & (got[..., 0] < w - 4) & (got[..., 1] < h - 4)
    design = np.stack([ii[inside], jj[inside], np.ones(inside.sum())], 1)
    fitted = np.linalg.lstsq(design, got[inside], rcond=None)[0].T
    corners = np.array([[0, 0, 1], [size - 1, 0, 1], [0, size - 1, 1], [size - 1, size - 1, 1]], float)
    return float(np.abs(corners @ fitted.T - corners @ a.T).max())


def normalised_chip_theta(a: np.ndarray, size: int, c: np.ndarray, m: np.ndarray) -> np.ndarray:
    """theta for ``affine_grid``: chip normalised g -> aligned normalised n."""
    # g -> chip pixel centre i = (g + 1) size / 2 - 0.5 -> photo = A i + b -> n = M^-1 (photo - c)
    half = size / 2.0
    lin = a[:, :2] * half
    off = a[:, :2] @ np.full(2, half - 0.5) + a[:, 2]
    m_inv = np.linalg.inv(m)
    return np.concatenate([m_inv @ lin, (m_inv @ (off - c))[:, None]], axis=1)


def similarity_fit(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares ``dst = s R src + t`` (Umeyama, no reflection) as a 2x3 matrix."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s0, d0 = src - mu_s, dst - mu_d
    u, sig, vt = np.linalg.svd(d0.T @ s0 / len(src))
    sign = np.diag([1.0, np.sign(np.linalg.det(u @ vt))])
    rot = u @ sign @ vt
    scale = np.trace(np.diag(sig) @ sign) / s0.var(0).sum()
    lin = scale * rot
    return np.concatenate([lin, (mu_d - lin @ mu_s)[:, None]], axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lfw", type=Path, default=Path("data/lfw/images"))
    parser.add_argument("--num-images", type=int, default=60)
    args = parser.parse_args()

    import dlib
    import torch
    from facenet_pytorch import MTCNN

    from fam.weights import resolve

    torch.set_num_threads(1)
    detector = dlib.get_frontal_face_detector()
    sp5 = dlib.shape_predictor(str(resolve("dlib-shape-predictor-5")))
    sp68 = dlib.shape_predictor(str(resolve("dlib-shape-predictor-68")))
    mtcnn = MTCNN(image_size=160, margin=0, device="cpu")

    people = sorted(p for p in args.lfw.iterdir() if p.is_dir())
    step = max(1, len(people) // args.num_images)
    dlib_thetas, facenet_thetas, points5 = [], [], []
    checked = None
    for person in people[::step]:
        file = sorted(person.glob("*.jpg"))[0]
        img = np.asarray(Image.open(file).convert("RGB"))
        dets = detector(img, 1)
        boxes, _, marks = mtcnn.detect(Image.fromarray(img), landmarks=True)
        if len(dets) != 1 or boxes is None or len(boxes) != 1:
            continue  # keep only unambiguous single-face photos
        shape5 = sp5(img, dets[0])
        lm68 = np.array([[p.x, p.y] for p in sp68(img, dets[0]).parts()], dtype=float)
        c, m = ffhq_frame(lm68)
        a = dlib_chip_matrix(dlib.get_face_chip_details(shape5, 150, 0.25), 150)
        if checked is None:
            checked = check_chip_matrix(img, shape5, a, 150)
        dlib_thetas.append(normalised_chip_theta(a, 150, c, m))
        # MTCNN box [x0, y0, x1, y1]: facenet-pytorch crops int(box) edges and resizes to 160.
        x0, y0, x1, y1 = (float(int(v)) for v in boxes[0])
        box_a = np.array(
            [
                [(x1 - x0) / 160, 0, x0 - 0.5 + (x1 - x0) / 320],
                [0, (y1 - y0) / 160, y0 - 0.5 + (y1 - y0) / 320],
            ]
        )
        facenet_thetas.append(normalised_chip_theta(box_a, 160, c, m))
        points5.append(to_aligned(np.asarray(marks[0], dtype=float), c, m))
        if len(dlib_thetas) >= args.num_images:
            break
    if not dlib_thetas:
        raise SystemExit(f"no usable faces under {args.lfw}")

    dlib_t, facenet_t, pts = np.array(dlib_thetas), np.array(facenet_thetas), np.array(points5)
    arc_src = (2 * ARCFACE_112_POINTS + 1) / 112 - 1  # pixel centres -> normalised
    arc_t = similarity_fit(arc_src, pts.mean(0))
    arc_residual = np.abs(np.c_[arc_src, np.ones(5)] @ arc_t.T - pts.mean(0)).max()

    def show(name: str, t: np.ndarray) -> str:
        rows = [tuple(round(float(v), 5) for v in row) for row in t]
        return f"{name} = ({rows[0]}, {rows[1]})"

    print(f"images used: {len(dlib_t)} (dlib chip formula vs dlib warp: {checked:.3f} px at the corners)")
    print(f"dlib theta std over images: {np.round(dlib_t.std(0), 4).tolist()}")
    print(f"facenet theta std over images: {np.round(facenet_t.std(0), 4).tolist()}")
    print(f"mean MTCNN 5 points in aligned coordinates: {np.round(pts.mean(0), 4).tolist()}")
    print(f"arcface similarity residual (normalised): {arc_residual:.4f}")
    print(show("DLIB_150", dlib_t.mean(0)))
    print(show("FACENET_160", facenet_t.mean(0)))
    print(show("ARCFACE_112", arc_t))


if __name__ == "__main__":
    main()
