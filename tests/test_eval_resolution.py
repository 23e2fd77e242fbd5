"""Same-resolution scoring: every image set reaches the evaluator at the release resolution, so
resolution alone cannot lower genuine scores; the downsample baseline shows what it would do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from fam.errors import InputError
from fam.evaluate.baselines import downsample
from fam.evaluate.runner import evaluate_release
from tests.helpers.tiny_evaluation import TinyGenerator, TinyInverter, write_tiny_evaluation_inputs
from tests.helpers.tiny_models import TinyRecognizer

pytestmark = pytest.mark.unit


class SizeRecorder(TinyRecognizer):
    """Records the side of every batch it embeds."""

    def __init__(self) -> None:
        super().__init__()
        self.sides: set[int] = set()

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        self.sides.add(int(images.shape[-1]))
        return super().embed(images)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory):
    """The tiny inputs with originals and impostors upscaled to 64 px; releases stay at 32 px."""
    inputs = write_tiny_evaluation_inputs(tmp_path_factory.mktemp("resolution") / "in")
    for folder in (inputs.aligned, inputs.impostors):
        for path in folder.rglob("*.png"):
            with Image.open(path) as img:
                img.resize((64, 64), Image.Resampling.BICUBIC).save(path)
    return inputs


def _evaluate(inputs, out: Path, score_at: str, **kw):
    rec = SizeRecorder()
    gen = TinyGenerator()
    params = inputs.params.replace({"evaluate.score_at": score_at, "evaluate.grid_rows": 0})
    result = evaluate_release(
        inputs.aligned,
        inputs.release(1),
        out,
        params,
        release2_dir=inputs.release(2),
        thresholds_from=kw.pop("thresholds_from", inputs.impostors),
        recognizers=[rec],
        models=(gen, TinyInverter(gen)),
        progress=False,
        **kw,
    )
    return result, rec


def test_every_set_is_scored_at_the_release_resolution(inputs, tmp_path):
    result, rec = _evaluate(inputs, tmp_path / "release", "release")
    assert rec.sides == {32}
    assert result.metrics["psr_anonymity_downsample_tiny_fmr1e-3"] == 0.0  # the identity at 32 px
    report = (tmp_path / "release" / "report.md").read_text()
    assert "scored at 32 px" in report
    assert (
        json.loads((tmp_path / "release" / "thresholds.json").read_text())["evaluators"]["tiny"]["image_size"]
        == 32
    )

    native, rec = _evaluate(inputs, tmp_path / "native", "native")
    assert {32, 64} <= rec.sides  # (and the mapper's 16-px reconstructions as they come)
    assert "scored at native sizes" in (tmp_path / "native" / "report.md").read_text()
    # Native scoring compares 64-px originals with 32-px images: the downsample baseline is no
    # longer the identity, and its genuine scores fall below those of the originals.
    assert native.metrics["score_anonymity_downsample_mean_tiny"] < 1.0
    assert result.metrics["score_anonymity_downsample_mean_tiny"] == pytest.approx(1.0, abs=1e-5)


def test_thresholds_measured_at_another_resolution_are_refused(inputs, tmp_path):
    _evaluate(inputs, tmp_path / "native", "native")
    with pytest.raises(InputError, match="scored at native sizes, but this evaluation scores at 32 px"):
        _evaluate(inputs, tmp_path / "again", "release", thresholds_from=tmp_path / "native/thresholds.json")


def test_downsample_is_the_identity_at_its_own_size_and_keeps_shape_and_range():
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    assert torch.equal(downsample(x, 64), x)
    y = downsample(x, 16)
    assert y.shape == x.shape and y.min() >= -1 and y.max() <= 1
    assert (y - x).abs().mean() > 0.05  # detail is lost


def test_a_one_person_release_degrades_to_notes_not_a_traceback(inputs, tmp_path):
    from tests.helpers.tiny_evaluation import write_release

    originals = sorted((inputs.aligned / "images" / "person_00").glob("*.png"))
    for seed in (1, 2):
        write_release(tmp_path / f"one{seed}", originals, seed)
    gen = TinyGenerator()
    result = evaluate_release(
        inputs.aligned,
        tmp_path / "one1",
        tmp_path / "eval",
        inputs.params.replace({"evaluate.grid_rows": 0}),
        release2_dir=tmp_path / "one2",
        thresholds_from=inputs.impostors,
        recognizers=[TinyRecognizer()],
        models=(gen, TinyInverter(gen)),
        progress=False,
    )
    assert "dsys_protected_tiny" not in result.metrics and "dsys_raw_tiny" not in result.metrics
    assert any("protected D_sys n/a" in n for n in result.notes)
    assert "| tiny | n/a | n/a |" in (tmp_path / "eval" / "report.md").read_text()


def test_evaluators_are_labelled_white_box_when_the_loss_used_them(inputs, tmp_path):
    for identity, kind in (("tiny", "white-box"), ("dlib", "black-box")):
        params = inputs.params.replace({"models.identity": identity, "evaluate.grid_rows": 0})
        gen = TinyGenerator()
        evaluate_release(
            inputs.aligned,
            inputs.release(1),
            tmp_path / identity,
            params,
            thresholds_from=inputs.impostors,
            recognizers=[TinyRecognizer()],
            models=(gen, TinyInverter(gen)),
            progress=False,
        )
        report = (tmp_path / identity / "report.md").read_text()
        assert f"tiny ({kind}) @FMR 0.001" in report and f"evaluators: tiny ({kind})" in report


def test_scores_and_fid_of_identical_sets_stay_in_their_families_ranges():
    from fam.evaluate.fid import fid_from_features
    from fam.evaluate.scoring import cosine_similarity

    x = torch.randn(16, 1024, generator=torch.Generator().manual_seed(3))
    assert cosine_similarity(x, x).max() <= 1.0  # rounding once gave 1.0000001 (the gate refused it)
    from fam.recognizers import TemplateRecognizer

    assert TemplateRecognizer.similarity(None, x, x).max() <= 1.0  # type: ignore[arg-type]  # the same rule
    feats = torch.randn(16, 2048, generator=torch.Generator().manual_seed(4)).double().numpy()
    assert fid_from_features(feats, feats) >= 0.0  # a singular sqrtm once gave -1e-4
