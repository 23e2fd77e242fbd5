"""The prior's quality-gate benchmark (benchmarks/bench_prior.py) on constructed inputs and tiny models."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from benchmarks import bench_prior as bp
from fam.errors import InputError
from fam.layers import auto_groups
from tests.helpers.tiny_models import TinyGenerator

pytestmark = pytest.mark.unit


def face(score: float, at: float = 0.0) -> bp.Detection:
    return bp.Detection(score, np.full((5, 2), at))


# --------------------------------------------------------------------------------------------
# Counting on constructed detections and embeddings.


def test_single_face_count_needs_exactly_one_confident_face() -> None:
    detections = [
        [face(0.95)],  # one face: counts
        [face(0.95), face(0.92)],  # two confident faces: does not
        [face(0.85)],  # below 0.9: no face
        [],
        [face(0.95), face(0.5)],  # one confident face plus a weak one: counts
    ]
    assert bp.single_face_count(detections, 0.9) == 2


def test_impostor_threshold_uses_each_different_person_pair_once() -> None:
    emb = F.normalize(torch.randn(6, 8, generator=torch.Generator().manual_seed(0)), dim=1)
    people = ["a", "a", "b", "b", "c", "d"]
    t = bp.impostor_threshold(emb, people, fmr=0.25)
    sims = emb @ emb.T
    impostor = [float(sims[i, j]) for i in range(6) for j in range(i + 1, 6) if people[i] != people[j]]
    assert (t.pairs, t.images, t.people) == (13, 6, 4)  # 15 pairs less the 2 same-person ones
    assert t.value == pytest.approx(np.quantile(impostor, 0.75))


def test_impostor_threshold_refuses_a_single_person() -> None:
    with pytest.raises(InputError, match="at least two people"):
        bp.impostor_threshold(torch.eye(3), ["a", "a", "a"], 1e-3)


def test_distinct_counts_pairs_below_the_threshold() -> None:
    emb = torch.cat([torch.eye(5), torch.eye(5)[:1]])  # key 5 repeats key 0's face
    assert bp.distinct_pairs(emb, 0.5) == (14, 15)


def test_descriptor_spread_is_total_variance_over_its_directions() -> None:
    rng = torch.Generator().manual_seed(0)
    emb = torch.zeros(4000, 6)
    emb[:, :3] = torch.randn(4000, 3, generator=rng) * 0.5  # variance 0.25 in 3 of 6 directions
    spread = bp.descriptor_spread(emb)
    assert spread.trace == pytest.approx(0.75, rel=0.05)
    assert spread.dims == pytest.approx(3.0, rel=0.05)
    with pytest.raises(InputError, match="at least two"):
        bp.descriptor_spread(emb[:1])


def test_shrunk_distinct_keeps_pairs_apart_at_one_and_merges_them_at_zero() -> None:
    emb = torch.eye(4)
    people = ["a", "b", "c", "d"]
    assert bp.shrunk_distinct(emb, people, 1.0, 0.5) == 1.0  # orthogonal faces: cos 0 < 0.5
    assert bp.shrunk_distinct(emb, people, 0.0, 0.5) == 0.0  # all moved onto their mean: cos 1
    # e_i -> mean + f (e_i - mean): cos between two of them is 0.5 at f = 1 / sqrt(5).
    assert bp.shrunk_distinct(emb, people, 5**-0.5, 0.45) == 0.0
    assert bp.shrunk_distinct(emb, people, 5**-0.5, 0.55) == 1.0


def test_memorised_finds_the_copied_face_across_gallery_chunks() -> None:
    probes = torch.eye(8)[:3]
    gallery = torch.cat([torch.eye(8)[3:], torch.eye(8)[1:2]])  # only probe 1 has a copy, in the last chunk
    best = bp.nearest_similarity(probes, gallery, chunk=2)
    assert best.tolist() == [0.0, 1.0, 0.0]
    assert int((best >= 0.5).sum()) == 1


def test_memorisation_threshold_lets_the_chosen_share_of_real_faces_pass() -> None:
    nearest = torch.linspace(0.0, 1.0, 101)
    t = bp.memorisation_threshold(nearest, 0.99)
    assert t == pytest.approx(0.99)
    assert int((nearest > t).sum()) == 1  # 1% of unseen faces sit closer than the rule allows
    with pytest.raises(InputError, match="no real held-out faces"):
        bp.memorisation_threshold(torch.zeros(0), 0.99)


def test_row_matches_compares_row_by_row() -> None:
    a = torch.eye(3)
    b = torch.stack([torch.eye(3)[0], torch.eye(3)[0], torch.eye(3)[2]])
    assert bp.row_matches(a, b, 0.5).tolist() == [True, False, True]


def test_landmark_shift_skips_pairs_without_a_confident_face() -> None:
    a = bp.Detection(0.99, np.array([[10.0, 20.0]] * 5))
    moved = bp.Detection(0.97, np.array([[13.0, 24.0]] * 5))  # 5 px away at every point
    weaker_elsewhere = bp.Detection(0.91, np.array([[0.0, 0.0]] * 5))
    shifts, missing = bp.landmark_shifts(
        [[a, weaker_elsewhere], [], [face(0.5)]],
        [[moved], [moved], [moved]],
        0.9,
    )
    assert shifts.tolist() == [5.0]  # the most probable face of each image is compared
    assert missing == 2


def test_swap_takes_exactly_the_identity_layers_from_b() -> None:
    gen = TinyGenerator(resolution=32)
    groups = auto_groups(gen.num_ws)
    w = bp.random_latents(gen, 4, 0.7, seed=0)
    w_a, w_b = w[:2], w[2:]
    swapped = bp.swap_identity(w_a, w_b, groups)
    ident = list(groups.identity)
    others = [i for i in range(gen.num_ws) if i not in ident]
    assert ident == [3, 4, 5, 6]
    assert torch.equal(swapped[:, ident], w_b[:, ident])
    assert torch.equal(swapped[:, others], w_a[:, others])
    assert not torch.allclose(bp.synthesize(gen, swapped, 8), bp.synthesize(gen, w_a, 8))


def test_random_latents_are_seeded_and_truncated() -> None:
    gen = TinyGenerator(resolution=32)
    a, b = bp.random_latents(gen, 3, 0.7, seed=5), bp.random_latents(gen, 3, 0.7, seed=5)
    assert torch.equal(a, b)
    assert torch.equal(a[:, 0], a[:, -1])  # one w broadcast to all layers
    full = bp.random_latents(gen, 3, 1.0, seed=5)
    assert torch.allclose(a - gen.w_avg, 0.7 * (full - gen.w_avg), atol=1e-5)


# --------------------------------------------------------------------------------------------
# Gates and the summary line.


PASSING = {
    "fid": 20.0,
    "face_rate": 0.99,
    "distinct": 0.999,
    "memorised": 0.0,
    "inv_match": 0.95,
    "inv_match_encoder": 0.7,
    "swap_change": 0.97,
    "landmark_shift_px": 1.5,
    "dlib_fd": 0.0123,
}


def test_gate_verdicts() -> None:
    assert bp.gate_verdict("Gate 2", PASSING, 10000).startswith("Gate 2: PASS")
    assert bp.gate_verdict("Gate 2", PASSING, 5000).startswith("Gate 2: INCOMPLETE")  # FID needs 10k
    assert bp.gate_verdict("Gate 1", {**PASSING, "fid": math.nan}, 5000).startswith("Gate 1: INCOMPLETE")
    failing = bp.gate_verdict("Gate 1", {**PASSING, "memorised": 0.2, "fid": math.nan}, 5000)
    assert failing.startswith("Gate 1: FAIL") and "memorised 0.2 <= 0.02 NO" in failing


def test_summary_line_is_the_fixed_format() -> None:
    line = bp.summary_line({**PASSING, "inv_match_encoder": math.nan})
    assert line == (
        "fid=20.00 face_rate=0.9900 distinct=0.9990 memorised=0.0000 inv_match=0.9500 "
        "inv_match_encoder=nan swap_change=0.9700 landmark_shift_px=1.50 dlib_fd=0.0123"
    )


def test_metric_selection() -> None:
    assert bp.selected_metrics("", "fid,inv_match") == [
        n for n in bp.METRICS if n not in ("fid", "inv_match")
    ]
    assert bp.selected_metrics("distinct", "") == ["distinct"]
    with pytest.raises(InputError, match="unknown metric"):
        bp.selected_metrics("", "fid,bogus")


# --------------------------------------------------------------------------------------------
# The whole benchmark on tiny models.


def uint8(images: torch.Tensor) -> torch.Tensor:
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


class ContrastGenerator(TinyGenerator):
    """The tiny generator with its output's (tiny) departures from the mean face stretched to the
    full range, so that faces differ by far more than uint8 rounding, as real faces do."""

    def __init__(self, gain: float = 300.0) -> None:
        super().__init__(resolution=32)
        self.gain = gain
        mean_face = super().synthesis(self.w_avg.reshape(1, 1, -1).repeat(1, self.num_ws, 1))
        self.register_buffer("mean_face", mean_face.detach())

    def synthesis(self, ws: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.gain * (super().synthesis(ws) - self.mean_face))


def pixel_embed(images: torch.Tensor) -> torch.Tensor:
    """A constructed identity: the image itself as a unit vector (same image = cosine 1)."""
    return F.normalize(images.float().flatten(1), dim=1)


class OracleInverter:
    """Knows the W+ code behind each of its images (the held-out set is generated here)."""

    def __init__(self, images: torch.Tensor, ws: torch.Tensor) -> None:
        self.images, self.ws = images.float(), ws

    def invert(self, images: torch.Tensor) -> torch.Tensor:
        dist = torch.cdist(images.flatten(1), self.images.flatten(1))
        return self.ws[dist.argmin(dim=1)]


def stub_detector(images: torch.Tensor) -> list[list[bp.Detection]]:
    """One face per image, its landmarks moved by the image's mean brightness."""
    return [[bp.Detection(0.95, np.full((5, 2), 16.0 + 8.0 * float(im.mean())))] for im in images]


@pytest.fixture
def tiny_bench() -> bp.Bench:
    gen = ContrastGenerator()
    held_ws = bp.random_latents(gen, 12, 1.0, seed=7)
    held = uint8(bp.synthesize(gen, held_ws, 8))
    keys = 6
    key_faces = uint8(bp.synthesize(gen, bp.key_latents(gen, keys, 0.7), 8))
    others = uint8(bp.synthesize(gen, bp.random_latents(gen, 10, 1.0, seed=9), 8))
    train = torch.cat([others, key_faces[:2]])  # two key faces "memorised"
    return bp.Bench(
        generator=gen,
        groups=auto_groups(gen.num_ws),
        embed=pixel_embed,
        detect=stub_detector,
        options=bp.Options(keys=keys, inversions=5, pairs=4, batch=4, fd_samples=16),
        heldout_source=lambda: bp.FaceSet(held, [f"p{i // 2}" for i in range(12)], ""),
        train_source=lambda: bp.FaceSet(train, ["t"] * 12, ""),
        inverters={"default": lambda: OracleInverter(bp.to_unit_range(held), held_ws)},
    )


def test_bench_runs_every_metric_but_fid(tiny_bench: bp.Bench, capsys: pytest.CaptureFixture[str]) -> None:
    values = bp.run_metrics(tiny_bench, bp.selected_metrics("", "fid"))
    out = capsys.readouterr().out
    assert "from 60 impostor pairs (12 real held-out faces of 6 people" in out  # 66 pairs less 6 same-person
    assert "fid: nan (skipped)" in out
    assert "no encoder was given" in out
    assert values["face_rate"] == 1.0  # the stub finds one face everywhere
    assert "real held-out faces: 1.0000 (6/6)" in out
    assert values["distinct"] == 1.0  # "15/15 pairs": no two keys give the same face
    assert "15/15 pairs of key faces do not match" in out
    assert "descriptor spread (covariance trace, effective dims): key faces" in out
    assert "psi 0.7 shrinks this prior's spread by" in out  # the options' psi is below 1
    assert values["memorised"] == pytest.approx(2 / 6)  # exactly the two copied key faces
    assert "than 99% of 12 real held-out faces are" in out
    assert values["dlib_fd"] > 0.0  # 16 random samples against 12 training faces
    assert values["inv_match"] == 1.0  # exact inversion reproduces each face up to uint8 rounding
    assert values["swap_change"] == 1.0  # swapping 4 of 8 layers changes every face
    assert values["landmark_shift_px"] > 0.0  # the swapped faces differ, so the stub's landmarks move
    assert math.isnan(values["inv_match_encoder"]) and math.isnan(values["fid"])


def test_bench_is_deterministic(tiny_bench: bp.Bench, capsys: pytest.CaptureFixture[str]) -> None:
    first = bp.metric_swap_change(tiny_bench).value, bp.metric_landmark_shift(tiny_bench).value
    again = bp.Bench(**{k: getattr(tiny_bench, k) for k in bp.Bench.__dataclass_fields__})
    assert (bp.metric_swap_change(again).value, bp.metric_landmark_shift(again).value) == first


def test_embedding_cache_is_reused(tiny_bench: bp.Bench, tmp_path: Path) -> None:
    calls = []

    def counting_embed(x: torch.Tensor) -> torch.Tensor:
        calls.append(len(x))
        return tiny_bench.embed(x)

    faces = bp.FaceSet(tiny_bench.heldout.images, tiny_bench.heldout.people, "heldout:test")
    fields = {k: getattr(tiny_bench, k) for k in bp.Bench.__dataclass_fields__}
    fields.update(embed=counting_embed, heldout_source=lambda: faces, cache_dir=tmp_path)
    first = bp.Bench(**fields).heldout_embeddings
    n_calls = len(calls)
    second = bp.Bench(**fields).heldout_embeddings
    assert n_calls > 0 and len(calls) == n_calls  # the second bench read the cache
    assert torch.equal(first, second)


def test_cli_says_what_to_do_when_the_prior_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bp.main(["--prior", str(tmp_path), "--skip", "fid"]) == 2
    assert "prior.pt is missing" in capsys.readouterr().err


def test_distinct_of_one_face_for_every_key_reports_no_shrink(tiny_bench: bp.Bench) -> None:
    same = torch.zeros(tiny_bench.options.keys, 4)
    same[:, 0] = 1.0
    tiny_bench.__dict__["key_embeddings"] = same  # every key gives the same face
    tiny_bench.embed = lambda images: F.normalize(torch.ones(images.shape[0], 4), dim=1)
    result = bp.metric_distinct(tiny_bench)
    assert result.value == 0.0
    assert "shrinks" not in result.detail


# --------------------------------------------------------------------------------------------
# The identity-layer scan (benchmarks/scan_identity_layers.py).


def test_scan_windows_are_every_contiguous_run_short_of_all_layers() -> None:
    from benchmarks.scan_identity_layers import windows

    got = windows(4)
    assert got == [(0, 1), (1, 2), (2, 3), (0, 1, 2), (1, 2, 3)]
    assert len(windows(10)) == 44  # lengths 2..9: 9 + 8 + ... + 2 windows


def test_layer_groups_around_a_window_put_it_between_coarse_and_fine() -> None:
    from fam.errors import ConfigError
    from fam.layers import LayerGroups

    g = LayerGroups.around((2, 3, 4), 8)
    assert (g.coarse, g.identity, g.fine) == ((0, 1), (2, 3, 4), (5, 6, 7))
    assert LayerGroups.around((0, 1), 4).coarse == ()
    for bad in ((), (1, 3), (6, 7, 8)):  # empty, a gap, past the last layer
        with pytest.raises(ConfigError, match=r"contiguous run within 0\.\.7"):
            LayerGroups.around(bad, 8)


def test_scan_chooses_the_fewest_layers_near_the_best_within_the_shift() -> None:
    from benchmarks.scan_identity_layers import WindowResult, choose

    results = [
        WindowResult((0, 1, 2, 3), 0.6, 0.40, 1.0, 0),  # the most distinct
        WindowResult((0, 1, 2), 0.5, 0.33, 1.0, 0),  # >= 0.8 x 0.40, fewer layers: chosen
        WindowResult((0, 1), 0.3, 0.20, 0.9, 0),  # too far below the best
        WindowResult((3, 4), 0.9, 0.90, 5.0, 0),  # most distinct of all but moves the landmarks
        WindowResult((5, 6), 0.0, 0.00, math.nan, 3),  # no face to measure the shift on
    ]
    assert choose(results, max_shift=2.0, share=0.8) == results[1]
    assert choose(results, max_shift=2.0, share=1.0) == results[0]
    assert choose(results, max_shift=10.0, share=0.8) == results[3]
    assert choose(results, max_shift=0.5, share=0.8) is None


def test_scan_measures_each_window_on_the_same_faces(
    tiny_bench: bp.Bench, capsys: pytest.CaptureFixture[str]
) -> None:
    from benchmarks.scan_identity_layers import scan, summary_line

    num_ws = tiny_bench.generator.num_ws
    results = scan(tiny_bench, [(0, 1), tuple(tiny_bench.groups.identity), tuple(range(num_ws - 1))])
    out = capsys.readouterr().out
    assert "<- layers.identity now" in out
    first, now, most = results
    # the tiny generator's first two layers barely touch its faces; the later ones redraw them
    assert (first.swap_change, first.swap_distinct) == (0.0, 0.0)
    assert first.landmark_shift_px < now.landmark_shift_px
    for r in (now, most):
        assert (r.swap_change, r.swap_distinct, r.missing) == (1.0, 1.0, 0)
    again = scan(bp.Bench(**{k: getattr(tiny_bench, k) for k in bp.Bench.__dataclass_fields__}), [(0, 1)])
    assert again[0] == results[0]  # seeded: the same faces and donors
    assert summary_line(now).startswith("identity_layers=3,4,5,6 swap_change=1.0000 swap_distinct=1.0000")
    assert (
        summary_line(None) == "identity_layers=none swap_change=nan swap_distinct=nan landmark_shift_px=nan"
    )


def test_scan_cli_refuses_a_window_outside_the_prior(tmp_path: Path) -> None:
    from benchmarks.scan_identity_layers import parse_windows
    from fam.errors import UserError

    assert parse_windows("0-2,3-4", 10) == [(0, 1, 2), (3, 4)]
    with pytest.raises(UserError, match="outside this prior's layers 0-9"):
        parse_windows("8-12", 10)
    with pytest.raises(UserError, match="is not FIRST-LAST"):
        parse_windows("three", 10)
