"""benchmarks.plot_prior_progress on constructed progress files."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from benchmarks.plot_prior_progress import (
    distinct_trend,
    hours_at,
    main,
    main_line,
    read_progress,
    side_branches,
    size_changes,
)
from fam.errors import UserError

pytestmark = pytest.mark.unit

HEADER = "date,session,kimg,wall_hours,fid_5k,dlib_fd,face_rate,distinct_psi07,distinct_psi1,spread_psi1\n"


def _write(tmp_path: Path, rows: list[str], header: str = HEADER) -> Path:
    path = tmp_path / "progress.csv"
    path.write_text(header + "".join(row + "\n" for row in rows))
    return path


def _halving_rows() -> list[str]:
    # 1 - distinct halves every 100 kimg from 0.64 at 500 kimg; two hours per 100 kimg
    return [
        f"2026-12-0{i + 1},{i + 3},{500 + 100 * i},{10 + 2 * i},30,0.05,1.000,{1 - 0.64 * 0.5**i},,"
        for i in range(4)
    ]


def test_rows_come_back_in_kimg_order_with_empty_cells_as_nan(tmp_path: Path) -> None:
    periods = read_progress(_write(tmp_path, ["2026-12-02,,200,,,,,0.5,,", "2026-12-01,1,100,2,90,,1,,,"]))
    assert [p.kimg for p in periods] == [100, 200]
    assert periods[0].fid_5k == 90 and math.isnan(periods[0].distinct_psi07)
    assert periods[1].session == "" and math.isnan(periods[1].wall_hours)


def test_a_cell_that_is_not_a_number_names_its_line_and_column(tmp_path: Path) -> None:
    path = _write(tmp_path, ["2026-12-01,1,100,2,90,,1,,,", "2026-12-02,2,200,4,n/a,,1,,,"])
    with pytest.raises(UserError, match=r"progress.csv:3: fid_5k is 'n/a'"):
        read_progress(path)


def test_a_missing_column_or_an_empty_kimg_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="missing column"):
        read_progress(_write(tmp_path, ["2026-12-01,1,100"], header="date,session,kimg\n"))
    with pytest.raises(UserError, match="kimg is empty"):
        read_progress(_write(tmp_path, ["2026-12-01,1,,2,90,,1,,,"]))
    with pytest.raises(UserError, match="no progress file"):
        read_progress(tmp_path / "absent.csv")


def test_the_trend_recovers_an_exponential_decay_and_where_it_meets_the_gate(tmp_path: Path) -> None:
    periods = read_progress(_write(tmp_path, _halving_rows()))
    trend = distinct_trend(periods, from_kimg=500)
    assert trend.factor_per_100kimg == pytest.approx(0.5)
    assert trend.points == 4
    # 0.64 * 0.5 ** n = 0.01  ->  n = 6 hundred kimg after 500
    assert trend.kimg_at_gate == pytest.approx(1100)
    assert hours_at(periods, trend.kimg_at_gate) == pytest.approx(22)


def test_too_few_points_or_a_rising_trend_say_so(tmp_path: Path) -> None:
    periods = read_progress(_write(tmp_path, _halving_rows()))
    with pytest.raises(UserError, match="fewer than two"):
        distinct_trend(periods, from_kimg=750)
    rising = read_progress(_write(tmp_path, ["2026-12-01,1,100,2,,,,0.6,,", "2026-12-02,2,200,4,,,,0.5,,"]))
    assert distinct_trend(rising, from_kimg=0).kimg_at_gate == math.inf


def test_main_draws_the_figure_and_ends_with_the_summary_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "img" / "progress.png"
    progress = _write(tmp_path, _halving_rows())
    assert main(["--progress", str(progress), "--out", str(out), "--fit-from-kimg", "500"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last == "factor_per_100kimg=0.500 kimg_at_gate=1100 hours_at_gate=22.0"
    assert main(["--progress", str(tmp_path / "absent.csv"), "--out", str(out)]) == 2


def test_a_size_column_marks_where_the_generator_was_widened(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sizes = ["3.44", "3.44", "", "4.68"]  # an unmeasured row in between does not count as a change
    rows = [row + "," + size for row, size in zip(_halving_rows(), sizes, strict=True)]
    progress = _write(tmp_path, rows, header=HEADER.strip() + ",g_params_m\n")
    periods = read_progress(progress)
    assert size_changes(periods) == [(800.0, 3.44, 4.68)]
    (tmp_path / "plain").mkdir()
    assert (
        size_changes(read_progress(_write(tmp_path / "plain", _halving_rows()))) == []
    )  # no column, no marks
    out = tmp_path / "p.png"
    assert main(["--progress", str(progress), "--out", str(out), "--fit-from-kimg", "500"]) == 0
    assert "changed at 800 kimg (3.44M -> 4.68M parameters)" in capsys.readouterr().out


def test_a_side_branch_is_drawn_from_its_fork_but_left_out_of_the_fit_and_the_size_marks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the main line halves to 700 kimg; a branch went on from there (850, then widened at 900) and
    # was lost with its machine; the line resumed from 700, grown, and its next row (800) is
    # written after the branch's: lower in kimg than the branch's first row, yet not its fork
    main_rows = [row + ",3.44," for row in _halving_rows()[:3]]
    lost = [
        "2026-12-03,5,850,13,25,0.04,1.000,0.2,,,3.44,lost-5",
        "2026-12-03,5,900,14,20,0.04,1.000,0.1,,,4.68,lost-5",
    ]
    resumed = _halving_rows()[3] + ",4.68,"  # 800 kimg
    header = HEADER.strip() + ",g_params_m,branch\n"
    progress = _write(tmp_path, [*main_rows, *lost, resumed], header=header)
    periods = read_progress(progress)
    assert [p.kimg for p in main_line(periods)] == [500, 600, 700, 800]
    branches = side_branches(periods)
    assert list(branches) == ["lost-5"]
    assert [p.kimg for p in branches["lost-5"]] == [700, 850, 900]  # starts at its fork
    assert size_changes(main_line(periods)) == [(800.0, 3.44, 4.68)]
    out = tmp_path / "p.png"
    assert main(["--progress", str(progress), "--out", str(out), "--fit-from-kimg", "500"]) == 0
    printed = capsys.readouterr().out
    assert "side branch 'lost-5': 700-900 kimg" in printed
    assert "changed at 800 kimg" in printed and "changed at 900" not in printed
    # the branch's much better distinct would bend the fit; the main line alone still halves
    assert printed.strip().splitlines()[-1].startswith("factor_per_100kimg=0.500 ")
