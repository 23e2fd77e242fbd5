"""The embedded prior's training curve: gate measurements per period, and where ``distinct`` heads.

    python -m benchmarks.plot_prior_progress [--progress training/progress.csv]
        [--out docs/img/prior_progress.png] [--fit-from-kimg 430]

``training/progress.csv`` holds what ``bench_prior`` (and the 5k FID) measured at the end of each
training period, and ``distinct`` at snapshots between; an empty cell is "not measured". This draws
four panels against kimg (distinct at psi 0.7 and 1 with gate 1's 0.99; FID with the gates' 60
and 30; the dlib Fréchet distance; the key faces' descriptor spread with real faces' 0.160), and
prints a fit of the share of matching key-face pairs, ``1 - distinct`` at psi 0.7, as an
exponential decay in kimg: the factor per 100 kimg, and the kimg and wall hours at which that trend
would reach 0.99 (the same at psi 1, for reference). The fit starts where the curve settles
(``--fit-from-kimg``; before ~430 kimg the recipe still changed). An optional column
``g_params_m`` records the generator's size: where it changes (a widening), every panel marks it
and the output says so. An optional column ``branch`` names rows of a side branch that training
does not continue (e.g. a run lost with its machine, resumed from an older lifeboat): they are drawn
in grey from the row they forked at and left out of the fit, the size marks and the pace; rows with
an empty ``branch`` are the line that goes on. Last line, for psi 0.7:
``factor_per_100kimg=<> kimg_at_gate=<> hours_at_gate=<>``.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from fam.errors import UserError

DISTINCT_GATE = 0.99
FID_GATES = (60.0, 30.0)  # gate 1, gate 2
REAL_SPREAD = 0.160  # covariance trace of real held-out faces' dlib descriptors (docs/training.md)


@dataclass(frozen=True)
class Period:
    """One row of the progress file; ``nan`` where the row leaves a cell empty."""

    date: str
    session: str
    kimg: float
    wall_hours: float
    fid_5k: float
    dlib_fd: float
    face_rate: float
    distinct_psi07: float
    distinct_psi1: float
    spread_psi1: float
    g_params_m: float = math.nan  # generator parameters in millions (optional column: marks a widening)
    branch: str = ""  # empty: the line training continues; a name: a side branch it left
    line: int = 0  # line in the file: rows are appended as training goes, so this orders them in time


TEXT = ("date", "session", "branch", "line")
NUMERIC = tuple(f.name for f in fields(Period) if f.name not in TEXT)
OPTIONAL = ("g_params_m",)


def read_progress(path: Path) -> list[Period]:
    """Rows of ``path`` in kimg order; a missing column or a cell that is not a number is an error."""
    if not path.is_file():
        raise UserError(f"no progress file at {path}: it is training/progress.csv in the repository")
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        required = ("date", "session", *(n for n in NUMERIC if n not in OPTIONAL))
        missing = [name for name in required if name not in (reader.fieldnames or [])]
        if missing:
            raise UserError(f"{path}: missing column(s) {', '.join(missing)}")
        periods = [_period(row, path, line) for line, row in enumerate(reader, start=2)]
    if not periods:
        raise UserError(f"{path}: no rows")
    return sorted(periods, key=lambda p: p.kimg)


def _period(row: dict[str, str], path: Path, line: int) -> Period:
    values: dict[str, float] = {}
    for name in NUMERIC:
        cell = (row.get(name) or "").strip()
        try:
            values[name] = float(cell) if cell else math.nan
        except ValueError:
            raise UserError(f"{path}:{line}: {name} is {cell!r}, not a number") from None
    if math.isnan(values["kimg"]):
        raise UserError(f"{path}:{line}: kimg is empty; every row is a point of training")
    branch = (row.get("branch") or "").strip()
    return Period(date=row["date"], session=row["session"], branch=branch, line=line, **values)


def main_line(periods: Sequence[Period]) -> list[Period]:
    """The rows training continues from (no ``branch``), in the order given."""
    return [p for p in periods if not p.branch]


def side_branches(periods: Sequence[Period]) -> dict[str, list[Period]]:
    """Each side branch's rows, preceded by the main-line row it forked at (the last one written
    before the branch's first row, at or below its kimg) so that a drawn branch starts where it
    left the line."""
    named: dict[str, list[Period]] = {}
    for p in periods:
        if p.branch:
            named.setdefault(p.branch, []).append(p)
    trunk = main_line(periods)
    for rows in named.values():
        fork = [p for p in trunk if p.line < rows[0].line and p.kimg <= rows[0].kimg]
        if fork:
            rows.insert(0, max(fork, key=lambda p: p.line))
    return named


@dataclass(frozen=True)
class Trend:
    """``1 - distinct`` = a * factor ** (kimg / 100), fitted in log space."""

    scale: float  # a
    factor_per_100kimg: float
    kimg_at_gate: float  # inf when the trend does not fall
    points: int

    def distinct_at(self, kimg: np.ndarray) -> np.ndarray:
        return 1 - self.scale * self.factor_per_100kimg ** (kimg / 100)


def distinct_trend(periods: Sequence[Period], from_kimg: float, column: str = "distinct_psi07") -> Trend:
    """Least-squares line through log(1 - ``column``) of the rows from ``from_kimg`` on."""
    values = [(p.kimg, getattr(p, column)) for p in periods if p.kimg >= from_kimg]
    pts = [(kimg, 1 - value) for kimg, value in values if value < 1]  # nan compares False: skipped
    if len(pts) < 2:
        raise UserError(f"fewer than two {column} measurements from {from_kimg:g} kimg on: nothing to fit")
    kimg, miss = np.array(pts).T
    slope, intercept = np.polyfit(kimg / 100, np.log(miss), 1)
    at_gate = (math.log(1 - DISTINCT_GATE) - intercept) / slope * 100 if slope < 0 else math.inf
    return Trend(float(math.exp(intercept)), float(math.exp(slope)), float(at_gate), len(pts))


def size_changes(periods: Sequence[Period]) -> list[tuple[float, float, float]]:
    """``(kimg, before, after)`` wherever the generator's size (``g_params_m``) changes between
    rows that record it: the curve on either side belongs to a different network."""
    sized = [p for p in periods if not math.isnan(p.g_params_m)]
    return [
        (b.kimg, a.g_params_m, b.g_params_m)
        for a, b in itertools.pairwise(sized)
        if a.g_params_m != b.g_params_m
    ]


def hours_at(periods: Sequence[Period], kimg: float, last: int = 3) -> float:
    """Wall hours at ``kimg``, continuing the pace (hours per kimg) of the last ``last`` measured periods."""
    timed = [p for p in periods if not math.isnan(p.wall_hours)][-(last + 1) :]
    if len(timed) < 2 or not math.isfinite(kimg):
        return math.inf
    pace = (timed[-1].wall_hours - timed[0].wall_hours) / (timed[-1].kimg - timed[0].kimg)
    return timed[-1].wall_hours + pace * (kimg - timed[-1].kimg)


def _series(rows: Sequence[Period], name: str) -> tuple[np.ndarray, np.ndarray]:
    kimg = np.array([p.kimg for p in rows])
    y = np.array([getattr(p, name) for p in rows])
    keep = ~np.isnan(y)
    return kimg[keep], y[keep]


PANELS = (  # (row, column) of the panel -> the columns it draws
    ((0, 0), ("distinct_psi07", "distinct_psi1")),
    ((0, 1), ("fid_5k",)),
    ((1, 0), ("dlib_fd",)),
    ((1, 1), ("spread_psi1",)),
)


def plot(periods: Sequence[Period], trend: Trend, fit_from: float, path: Path) -> None:
    trunk = main_line(periods)
    kimg = np.array([p.kimg for p in periods])

    def series(name: str) -> tuple[np.ndarray, np.ndarray]:
        return _series(trunk, name)

    fig, axes = plt.subplots(2, 2, figsize=(9, 6.5), sharex=True)
    ax = axes[0, 0]
    ax.plot(*series("distinct_psi07"), "o-", label="psi 0.7 (gate)")
    ax.plot(*series("distinct_psi1"), "s--", label="psi 1")
    grid = np.linspace(fit_from, max(kimg.max(), fit_from + 1), 50)
    label = f"fit from {fit_from:g} kimg: 1 - distinct x{trend.factor_per_100kimg:.2f} / 100 kimg"
    ax.plot(grid, trend.distinct_at(grid), ":", color="grey", label=label)
    ax.axhline(DISTINCT_GATE, color="red", lw=0.8, label="gate 1")
    ax.set_ylabel("distinct (dlib, FMR 1e-3)")
    ax = axes[0, 1]
    ax.plot(*series("fid_5k"), "o-")
    for gate, label in zip(FID_GATES, ("gate 1", "gate 2 (10k)"), strict=True):
        ax.axhline(gate, color="red", lw=0.8, ls="-" if gate == FID_GATES[0] else "--", label=label)
    ax.set_ylabel("FID (5k, 64 px)")
    ax.legend(fontsize=7)
    ax = axes[1, 0]
    ax.plot(*series("dlib_fd"), "o-")
    ax.set_ylabel("dlib Fréchet distance")
    ax.set_xlabel("kimg")
    ax = axes[1, 1]
    ax.plot(*series("spread_psi1"), "o-", label="key faces, psi 1")
    ax.axhline(REAL_SPREAD, color="green", lw=0.8, label="real held-out faces")
    ax.set_ylabel("dlib descriptor spread")
    ax.set_xlabel("kimg")
    for name, rows in side_branches(periods).items():
        for (r, c), columns in PANELS:
            for column in columns:
                label = f"side branch: {name}" if (r, c, column) == (0, 0, "distinct_psi07") else None
                axes[r, c].plot(*_series(rows, column), "o:", color="grey", mfc="none", label=label)
    axes[0, 0].legend(fontsize=7, loc="lower right")
    ax.legend(fontsize=7)
    for a in axes.flat:
        a.grid(alpha=0.3)
        for at, _, _ in size_changes(trunk):
            a.axvline(at, color="purple", lw=0.8, ls="-.")
    for at, before, after in size_changes(trunk):
        axes[0, 0].annotate(
            f"G {before:g}M -> {after:g}M ",
            (at, 0.45),
            xycoords=("data", "axes fraction"),
            fontsize=7,
            color="purple",
            rotation=90,
            ha="right",
        )
    fig.suptitle("embedded prior, 64 px, trained on 2 CPU cores (training/progress.csv)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def describe(periods: Sequence[Period], trend: Trend, label: str, from_kimg: float) -> str:
    hours = hours_at(periods, trend.kimg_at_gate)
    return (
        f"1 - distinct ({label}) from {from_kimg:g} kimg on ({trend.points} points): "
        f"x{trend.factor_per_100kimg:.3f} per 100 kimg; the trend reaches {DISTINCT_GATE} at "
        f"{trend.kimg_at_gate:.0f} kimg, ~{hours:.0f} wall hours at the last periods' pace"
    )


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--progress", type=Path, default=Path("training/progress.csv"))
    ap.add_argument("--out", type=Path, default=Path("docs/img/prior_progress.png"))
    ap.add_argument("--fit-from-kimg", type=float, default=430.0)
    args = ap.parse_args(argv)
    try:
        periods = read_progress(args.progress)
        trunk = main_line(periods)
        trend = distinct_trend(trunk, args.fit_from_kimg)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    plot(periods, trend, args.fit_from_kimg, args.out)
    print(f"{len(periods)} rows, {periods[0].kimg:g}-{periods[-1].kimg:g} kimg; figure: {args.out}")
    for name, rows in side_branches(periods).items():
        print(f"side branch {name!r}: {rows[0].kimg:g}-{rows[-1].kimg:g} kimg, drawn in grey, not fitted")
    print(describe(trunk, trend, "psi 0.7", args.fit_from_kimg))
    try:  # the untruncated key path, for reference: the gate is at psi 0.7
        untruncated = distinct_trend(trunk, args.fit_from_kimg, column="distinct_psi1")
        print(describe(trunk, untruncated, "psi 1", args.fit_from_kimg))
    except UserError as exc:
        print(f"psi 1: {exc}")
    for at, before, after in size_changes(trunk):
        print(
            f"the generator changed at {at:g} kimg ({before:g}M -> {after:g}M parameters): "
            "a fit across it mixes two networks"
        )
    hours = hours_at(trunk, trend.kimg_at_gate)
    print(
        f"factor_per_100kimg={trend.factor_per_100kimg:.3f} kimg_at_gate={trend.kimg_at_gate:.0f} "
        f"hours_at_gate={hours:.1f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
