"""The worked examples of docs/extending.md run as written."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from fam.config import Params
from fam.keys import new_key_file
from tests.helpers.artifacts import make_aligned_folder
from tests.helpers.docs import run_snippet, snippets
from tests.helpers.tiny_models import TINY_SETTINGS


@pytest.mark.unit
def test_every_example_named_in_the_guide_exists() -> None:
    assert {"evaluator", "metric", "flow"} <= set(snippets())


@pytest.mark.unit
def test_the_evaluator_example_is_an_evaluator_fam_evaluate_accepts() -> None:
    from fam.evaluate.runner import build_recognizers

    run_snippet("evaluator")
    params = Params().replace({"evaluate.recognizers": ["thumbnail"], "runtime.device": "cpu"})
    (rec,) = build_recognizers(params)
    assert rec.name == "thumbnail"
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    e = rec.embed(torch.stack([a, a + 0.01, b]))
    s = rec.similarity(e, e)
    assert e.shape == (3, rec.embedding_dim)
    assert s[0, 1] > 0.99 > s[0, 2]  # the same face, lightly changed, matches; another does not


def _aligned(root: Path) -> Path:
    return make_aligned_folder(root, {"Ann": 2, "Ben": 2})


@pytest.mark.flow
@pytest.mark.slow
def test_the_flow_example_protects_gates_and_publishes(tmp_path: Path, prefect_home) -> None:
    flow = run_snippet("flow")["protect_and_publish"]
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(TINY_SETTINGS))
    key_file = tmp_path / "k.fam-key"
    new_key_file(key_file)
    published = flow(
        aligned_dir=str(_aligned(tmp_path / "aligned")),
        out_dir=str(tmp_path / "out"),
        publish_dir=str(tmp_path / "published"),
        key={"key_file": str(key_file)},
        params_path=str(params),
    )
    assert len(list(Path(published).rglob("*.png"))) == 4
    assert (tmp_path / "out-validation" / "release.json").is_file()


@pytest.mark.unit
def test_the_metric_example_lands_in_metrics_families_and_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fam.artifacts import Metrics
    from fam.evaluate.metrics import EVALUATIONS
    from tests.helpers.tiny_evaluation import evaluate_tiny, write_tiny_evaluation_inputs

    # the example registers a metric: keep it out of every other test's evaluation
    monkeypatch.setattr(EVALUATIONS, "_targets", dict(EVALUATIONS._targets))
    monkeypatch.setattr(EVALUATIONS, "_loaded", dict(EVALUATIONS._loaded))
    assert "metric" in snippets()
    run_snippet.__wrapped__("metric")  # uncached: the registration is undone after this test
    assert "mean_protected_score" in EVALUATIONS

    inputs = write_tiny_evaluation_inputs(tmp_path / "in")
    params = inputs.params.replace(
        {"evaluate.attacks": [], "evaluate.baselines": [], "evaluate.grid_rows": 0}
    )
    evaluate_tiny(inputs, tmp_path / "eval", params)
    saved = Metrics.read(tmp_path / "eval")
    # each tiny "person" keeps one pseudo-identity under a key: its protected images agree
    assert saved.values["mean_protected_score_tiny"] > 0.9
    assert saved.families["mean_protected_score_tiny"] == "score"
    report = (tmp_path / "eval" / "report.md").read_text()
    title = "## Mean protected score: same person, same key"
    assert report.index("## Recognition utility") < report.index(title) < report.index("## Key robustness")
