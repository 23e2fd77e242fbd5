"""Figures of the evaluation report (matplotlib, Agg backend: no display needed), and the data
behind the ROC and D(s) figures as CSV (what `dvc plots` reads; dvc.yaml declares them).

None of these draws a face except :func:`save_grid`, whose output stays in the evaluation
folder and is never committed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from fam.evaluate.unlinkability import Unlinkability
from fam.evaluate.verification import Roc
from fam.faces.imageio import to_uint8
from fam.io_utils import atomic_write_text


def plot_roc(curves: Mapping[str, tuple[Roc, float]], title: str, path: Path) -> None:
    """ROC (TMR = 1 - FNMR against FMR, log x) of each labelled curve; the AUC is in the legend."""
    fig, ax = plt.subplots(figsize=(5, 4))
    for label, (curve, area) in curves.items():
        ax.plot(np.clip(curve.fmr, 1e-6, 1), 1 - curve.fnmr, label=f"{label} (AUC {area:.3f})")
    ax.set_xscale("log")
    ax.set_xlabel("false match rate")
    ax.set_ylabel("true match rate")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


ROC_GRID = np.logspace(-6, 0, 61)  # FMR values of the ROC data file (log-spaced, 10 per decade)


def write_roc_csv(curves: Mapping[str, tuple[Roc, float]], path: Path) -> None:
    """``fmr`` and one TMR column per curve (spaces become ``_``): the best TMR at FMR <= each grid value."""
    columns = {}
    for label, (curve, _) in curves.items():
        tmr = 1 - curve.fnmr
        columns[label.replace(" ", "_")] = [
            float(tmr[curve.fmr <= f].max()) if (curve.fmr <= f).any() else 0.0 for f in ROC_GRID
        ]
    lines = [",".join(["fmr", *columns])]
    lines += [
        ",".join([f"{f:.6g}", *(f"{c[i]:.6f}" for c in columns.values())]) for i, f in enumerate(ROC_GRID)
    ]
    atomic_write_text(path, "\n".join(lines) + "\n")


def write_unlinkability_csv(result: Unlinkability, path: Path) -> None:
    """``score, d, p_mated, p_nonmated`` per histogram bin (fig. 5's curves)."""
    lines = ["score,d,p_mated,p_nonmated"]
    lines += [
        f"{s:.6f},{d:.6f},{m:.6f},{n:.6f}"
        for s, d, m, n in zip(result.centers, result.d_local, result.p_mated, result.p_nonmated, strict=True)
    ]
    atomic_write_text(path, "\n".join(lines) + "\n")


def plot_histograms(
    genuine: np.ndarray,
    impostor: np.ndarray,
    thresholds: Mapping[str, float],  # label -> threshold line
    title: str,
    path: Path,
) -> None:
    """Genuine / impostor score densities (paper fig. 9) with the FMR thresholds marked."""
    fig, ax = plt.subplots(figsize=(5, 4))
    lo = min(genuine.min(), impostor.min())
    hi = max(genuine.max(), impostor.max())
    bins = np.linspace(lo, hi, 60)
    ax.hist(impostor, bins=bins, density=True, alpha=0.5, label=f"impostor (n={impostor.size})")
    ax.hist(genuine, bins=bins, density=True, alpha=0.5, label=f"genuine (n={genuine.size})")
    for label, t in thresholds.items():
        ax.axvline(t, color="k", ls=":", lw=1)
        ax.text(t, ax.get_ylim()[1] * 0.95, label, rotation=90, fontsize=7, va="top")
    ax.set_xlabel("similarity")
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_unlinkability(results: Mapping[str, Unlinkability], title: str, path: Path) -> None:
    """Paper fig. 5: mated (solid) and non-mated (dashed) densities with D(s) on a second axis."""
    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 4), squeeze=False)
    for ax, (label, r) in zip(axes[0], results.items(), strict=True):
        ax.plot(r.centers, r.p_mated, "-", color="tab:green", label="mated")
        ax.plot(r.centers, r.p_nonmated, "--", color="tab:red", label="non-mated")
        ax.set_xlabel("similarity")
        ax.set_ylabel("density")
        twin = ax.twinx()
        twin.plot(r.centers, r.d_local, color="k", lw=1, label="D(s)")
        twin.set_ylim(0, 1.05)
        twin.set_ylabel("D(s)")
        ax.set_title(f"{label}: D_sys = {r.d_sys:.3f} ({r.bins} bins)", fontsize=9)
        lines = ax.get_legend_handles_labels()
        tl = twin.get_legend_handles_labels()
        ax.legend(lines[0] + tl[0], lines[1] + tl[1], fontsize=8, loc="upper left")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_tsne(embeddings: np.ndarray, labels: Sequence[str], title: str, path: Path, seed: int = 0) -> None:
    """2-D t-SNE of embeddings coloured by person (paper fig. 10); persons are numbered, not named."""
    from sklearn.manifold import TSNE

    n = len(embeddings)
    perplexity = float(max(2, min(30, (n - 1) // 3)))
    xy = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(embeddings)
    codes = {name: i for i, name in enumerate(sorted(set(labels)))}
    c = np.array([codes[x] for x in labels])
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(xy[:, 0], xy[:, 1], c=c, cmap="tab20", s=14)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"{title} ({len(codes)} people, {n} images)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def save_grid(columns: Mapping[str, torch.Tensor], path: Path, cell: int = 128) -> None:
    """One row per image, one column per entry (each ``[N, 3, S, S]`` in [-1, 1]), titled."""
    names = list(columns)
    rows = min(len(v) for v in columns.values())
    title_h = 18
    canvas = Image.new("RGB", (cell * len(names), title_h + cell * rows), "white")
    draw = ImageDraw.Draw(canvas)
    for j, name in enumerate(names):
        draw.text((j * cell + 4, 3), name[: cell // 6], fill="black")
        x = columns[name][:rows].float()
        if x.shape[-1] != cell:
            x = F.interpolate(x, size=(cell, cell), mode="bilinear", align_corners=False, antialias=True)
        for i, arr in enumerate(to_uint8(x)):
            canvas.paste(Image.fromarray(arr), (j * cell, title_h + i * cell))
    canvas.save(path)
