"""The evaluation registry: same numbers as before it, shared embeddings, families, notes.

``tests/data/evaluation/`` holds ``metrics.json`` and ``report.md`` of the tiny evaluation
(:mod:`tests.helpers.tiny_evaluation`) as written by ``evaluate_release`` before it became a loop
over registered evaluations; the registry must reproduce them. They were regenerated once since,
when same-resolution scoring and the downsample baseline landed (the diff added the scoring line
and the downsample rows and moved no other number), and when evaluators were labelled white- or
black-box (headers only).
"""

from __future__ import annotations

import json
import re
import typing
from pathlib import Path
from typing import get_args

import pytest
import torch

from fam.artifacts import Metrics
from fam.artifacts.evaluation import FAMILY_RANGES
from fam.config import EvaluateConfig, Params
from fam.errors import ConfigError, InputError
from fam.evaluate.attacks import ATTACKS
from fam.evaluate.baselines import BASELINES, baseline_transform
from fam.evaluate.metrics import ordered
from tests.helpers.tiny_evaluation import (
    TinyEvaluationInputs,
    evaluate_tiny,
    write_tiny_evaluation_inputs,
)
from tests.helpers.tiny_models import TinyRecognizer

pytestmark = pytest.mark.unit

REFERENCE = Path(__file__).parent / "data" / "evaluation"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> TinyEvaluationInputs:
    return write_tiny_evaluation_inputs(tmp_path_factory.mktemp("registry") / "in")


def _report(path: Path, root: Path) -> tuple[str, list[str]]:
    """(report without its Notes, the notes), with the inputs' folder written as ROOT and the
    release's params digest (it follows the default settings) as DIGEST."""
    text = re.sub(
        r"params digest `\w+`", "params digest `DIGEST`", path.read_text().replace(str(root), "ROOT")
    )
    body, _, notes = text.partition("\n## Notes\n")
    return body, [line for line in notes.splitlines() if line.startswith("- ")]


@pytest.mark.parametrize(
    ("reference", "options"),
    [
        ("tiny", {}),
        ("tiny_naive", {"more_keys": False, "naive": True}),  # and evaluate.literature_thresholds
    ],
)
def test_metrics_and_report_match_the_evaluation_before_the_registry(
    inputs: TinyEvaluationInputs, tmp_path: Path, reference: str, options: dict[str, bool]
) -> None:
    params = inputs.params.replace({"evaluate.literature_thresholds": reference == "tiny_naive"})
    evaluate_tiny(inputs, tmp_path, params, **options)
    # Same names, same values up to float summation order (it depends on the thread count).
    got = json.loads((tmp_path / "metrics.json").read_text())
    ref = json.loads((REFERENCE / f"{reference}_metrics.json").read_text())
    assert got.keys() == ref.keys()
    assert got == pytest.approx(ref, rel=1e-6, abs=1e-9)
    body, notes = _report(tmp_path / "report.md", inputs.root.parent)
    ref_body, ref_notes = _report(REFERENCE / f"{reference}_report.md", Path("ROOT"))
    assert body == ref_body
    # the registry adds a note for each evaluation that does not apply, and drops none
    assert set(ref_notes) <= set(notes)
    assert "- evaluate.fid is false: FID not computed" in notes


def test_every_metric_has_a_family_and_lies_in_its_range(
    inputs: TinyEvaluationInputs, tmp_path: Path
) -> None:
    result = evaluate_tiny(inputs, tmp_path)
    saved = Metrics.read(tmp_path)
    assert saved.values == result.metrics and saved.families == result.families
    assert saved.families.keys() == saved.values.keys()
    for name, value in saved.values.items():
        lo, hi = FAMILY_RANGES[saved.families[name]]
        assert lo <= value <= hi, (name, value, saved.families[name])
    assert saved.families["fid" if "fid" in saved.values else "n_keys"] in ("distance", "count")
    assert saved.families["psr_anonymity_tiny_fmr1e-3"] == "rate"
    assert saved.families["score_anonymity_mean_tiny"] == "score"
    doc = json.loads((tmp_path / Metrics.FAMILIES_FILENAME).read_text())
    assert doc["format"] == Metrics.FAMILIES_FORMAT


class CountingRecognizer(TinyRecognizer):
    """Counts the images it embeds."""

    def __init__(self) -> None:
        super().__init__()
        self.images = 0

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        self.images += len(images)
        return super().embed(images)


def test_no_image_set_is_embedded_twice(inputs: TinyEvaluationInputs, tmp_path: Path) -> None:
    from fam.evaluate.runner import evaluate_release
    from tests.helpers.tiny_evaluation import TinyGenerator, TinyInverter

    rec, gen = CountingRecognizer(), TinyGenerator()
    result = evaluate_release(
        inputs.aligned,
        inputs.release(1),
        tmp_path,
        inputs.params,
        release2_dir=inputs.release(2),
        key_release_dirs=[inputs.release(3)],
        thresholds_from=inputs.impostors,
        recognizers=[rec],
        models=(gen, TinyInverter(gen)),
        progress=False,
    )
    n = int(result.metrics["n_items"])
    thresholds, attacks = 90, 8 + 28  # impostor images; latent replacement and mapper reconstructions
    # originals, protected under keys 1-3, each of three baselines: once each
    assert rec.images == thresholds + n * (1 + 3 + 3) + attacks


def test_evaluations_that_do_not_apply_say_so(inputs: TinyEvaluationInputs, tmp_path: Path) -> None:
    params = inputs.params.replace(
        {"evaluate.attacks": [], "evaluate.baselines": [], "evaluate.grid_rows": 0}
    )
    result = evaluate_tiny(inputs, tmp_path, params, more_keys=False)
    assert set(result.notes) >= {
        "evaluate.fid is false: FID not computed",
        "evaluate.attacks is empty: non-invertibility (table 4) not computed",
        "no second-key release (--release2): unlinkability PSR and protected D_sys not computed",
        "one key only (no --release2 or --key-release): key robustness (table 6) not computed",
    }
    assert not any(
        k.startswith(("psr_keys_", "psr_noninvert_", "psr_unlinkability_")) for k in result.metrics
    )


def test_report_order_is_fixed_and_every_setting_choice_is_registered() -> None:
    assert [name for name, _ in ordered()] == [
        "release",
        "anonymity",
        "unlinkability",
        "noninvertibility",
        "utility",
        "quality",
        "key_robustness",
    ]
    hints = typing.get_type_hints(EvaluateConfig)  # the choices a user has: tuple[Literal[...], ...]
    assert set(get_args(get_args(hints["baselines"])[0])) == set(BASELINES.names())
    assert set(get_args(get_args(hints["attacks"])[0])) == set(ATTACKS.names())
    with pytest.raises(ConfigError, match="blur, downsample, pixelate"):
        baseline_transform("sharpen", Params().evaluate, 64)


def test_metrics_artifact_refuses_families_that_do_not_match(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown metric families"):
        Metrics({"a": 1.0}, {"a": "percent"})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="name different metrics"):
        Metrics({"a": 1.0, "b": 2.0}, {"a": "count"})
    Metrics({"a": 1.0}, {"a": "count"}).write(tmp_path)
    (tmp_path / "metrics.json").write_text('{"a": 1.0, "b": 2.0}')
    with pytest.raises(InputError, match="names other metrics"):
        Metrics.read(tmp_path)
