"""End-to-end evaluation of a synthetic release with a tiny recognizer, generator and inverter.

Each synthetic "person" is a smooth colour pattern plus per-image noise; the tiny recognizer
embeds a 4x4 thumbnail, so images of one person match and different people do not. A
"protected" image is the pattern of a (key, person) pseudo-identity: unlinked to the original.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fam.artifacts import Metrics, ResolvedSettings
from fam.config import Params
from fam.evaluate.attacks import apply_mapper, train_mapper
from fam.evaluate.baselines import gaussian_blur, pixelate
from fam.evaluate.runner import evaluate_release
from tests.helpers.tiny_evaluation import TINY_EVALUATE_SETTINGS, TinyGenerator, TinyInverter
from tests.helpers.tiny_evaluation import write_aligned as _write_aligned
from tests.helpers.tiny_evaluation import write_release as _write_release
from tests.helpers.tiny_models import TinyRecognizer

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    tmp = tmp_path_factory.mktemp("eval")
    people = [f"person_{i:02d}" for i in range(12)]
    impostors = [f"other_{i:02d}" for i in range(30)]
    aligned = tmp / "aligned"
    originals = _write_aligned(aligned, people, 4)
    _write_aligned(tmp / "impostors", impostors, 3)
    for seed in (1, 2, 3):
        _write_release(tmp / f"rel{seed}", originals, seed)
    params = Params().replace(TINY_EVALUATE_SETTINGS)
    gen = TinyGenerator()
    result = evaluate_release(
        aligned,
        tmp / "rel1",
        tmp / "eval",
        params,
        release2_dir=tmp / "rel2",
        key_release_dirs=[tmp / "rel3"],
        thresholds_from=tmp / "impostors",
        recognizers=[TinyRecognizer()],
        models=(gen, TinyInverter(gen)),
        progress=False,
    )
    return {"tmp": tmp, "result": result, "params": params, "aligned": aligned}


def test_outputs_are_written(setup: dict) -> None:
    out = setup["tmp"] / "eval"
    for name in ("metrics.json", "report.md", "thresholds.json", "grid.png"):
        assert (out / name).is_file(), name
    pngs = {p.name for p in (out / "plots").glob("*.png")}
    assert {"roc_tiny.png", "hist_protected_tiny.png", "dsys_tiny.png", "tsne_tiny.png"} <= pngs
    metrics = Metrics.read(out).values
    assert all(isinstance(v, float) for v in metrics.values()) and metrics == setup["result"].metrics
    settings = ResolvedSettings.read(out)
    assert settings.stage == "evaluate" and settings.to_params() == setup["params"]
    report = (out / "report.md").read_text()
    assert "## Anonymity" in report and "grid.png" in report and "100 bins" in report
    thresholds = json.loads((out / "thresholds.json").read_text())["evaluators"]["tiny"]
    assert thresholds["n_pairs"] == 90 * 89 // 2 - 30 * 3 and thresholds["n_people"] == 30


def test_metrics_have_the_expected_answers(setup: dict) -> None:
    m = setup["result"].metrics
    # protected images carry an unrelated pseudo-identity: nothing matches its original or the other key
    assert m["psr_anonymity_tiny_fmr1e-3"] == 1.0
    assert m["psr_unlinkability_tiny_fmr1e-3"] == 1.0
    # the pseudo-identity is consistent within a key: verification stays near perfect
    assert m["eer_protected_tiny"] < 0.05 and m["auc_protected_tiny"] > 0.99
    assert m["eer_original_tiny"] < 0.05
    # raw templates are linkable, protected ones are not
    # (72 mated scores in 100 bins: the histogram estimate of an unlinkable system is biased upwards)
    assert m["dsys_raw_tiny"] > 0.99 and m["dsys_protected_tiny"] < 0.75
    assert m["n_mated_protected_tiny"] == 12 * 4 * 3
    assert m["n_keys"] == 3.0 and m["psr_keys_std_tiny_fmr1e-3"] == 0.0
    assert "psr_noninvert_latent_tiny_fmr1e-3" in m and "psr_noninvert_mapper_tiny_fmr1e-3" in m
    # a light blur keeps the identity of the tiny recognizer: low anonymity
    assert m["psr_anonymity_blur_tiny_fmr1e-3"] < 0.5


def test_thresholds_json_is_reused_and_checked_for_overlap(setup: dict, tmp_path: Path) -> None:
    tmp = setup["tmp"]
    kwargs = dict(recognizers=[TinyRecognizer()], progress=False)
    params = setup["params"].replace(
        {"evaluate.attacks": [], "evaluate.baselines": [], "evaluate.grid_rows": 0}
    )
    again = evaluate_release(
        setup["aligned"],
        tmp / "rel1",
        tmp_path / "e2",
        params,
        thresholds_from=tmp / "eval/thresholds.json",
        **kwargs,
    )
    assert again.metrics["psr_anonymity_tiny_fmr1e-3"] == 1.0
    # thresholds measured on the evaluated people themselves are refused
    own = tmp_path / "own.json"
    doc = json.loads((tmp / "eval/thresholds.json").read_text())
    from fam.evaluate.images import person_hash

    doc["evaluators"]["tiny"]["people"].append(person_hash("person_00"))
    own.write_text(json.dumps(doc))
    from fam.errors import InputError

    with pytest.raises(InputError, match="disjoint"):
        evaluate_release(
            setup["aligned"], tmp / "rel1", tmp_path / "e3", params, thresholds_from=own, **kwargs
        )


def test_thresholds_and_attacks_do_not_depend_on_the_thread_count(setup: dict, tmp_path: Path) -> None:
    # they run side by side, every op on one thread (fam.runtime.run_side_by_side), whatever
    # runtime.threads is; the fixture ran with the default (the physical cores)
    params = setup["params"].replace({"runtime.threads": 1, "evaluate.grid_rows": 0})
    gen = TinyGenerator()
    one = evaluate_release(
        setup["aligned"],
        setup["tmp"] / "rel1",
        tmp_path / "e",
        params,
        release2_dir=setup["tmp"] / "rel2",
        thresholds_from=setup["tmp"] / "impostors",
        recognizers=[TinyRecognizer()],
        models=(gen, TinyInverter(gen)),
        progress=False,
    )
    first = setup["result"]
    assert (tmp_path / "e/thresholds.json").read_bytes() == (first.out_dir / "thresholds.json").read_bytes()
    attack_metrics = [k for k in first.metrics if "noninvert" in k]
    assert len(attack_metrics) >= 4
    assert {k: one.metrics[k] for k in attack_metrics} == {k: first.metrics[k] for k in attack_metrics}
    assert [n for n in one.notes if n.startswith("mapper")] == [
        n for n in first.notes if n.startswith("mapper")
    ]


def test_too_few_impostor_pairs_is_an_error(setup: dict, tmp_path: Path) -> None:
    from fam.errors import InputError

    params = setup["params"].replace({"evaluate.min_impostor_pairs": 10**7})
    gen = TinyGenerator()
    with pytest.raises(InputError, match="impostor pairs"):
        evaluate_release(
            setup["aligned"],
            setup["tmp"] / "rel1",
            tmp_path / "e",
            params,
            thresholds_from=setup["tmp"] / "impostors",
            recognizers=[TinyRecognizer()],
            models=(gen, TinyInverter(gen)),
            progress=False,
        )


def test_mapper_trains_and_reduces_its_loss() -> None:
    g = torch.Generator().manual_seed(0)
    orig = torch.rand(8, 3, 16, 16, generator=g) * 2 - 1
    prot = orig.flip(-1)  # a fixed invertible transform the mapper can start to learn
    net, losses = train_mapper(prot, orig, steps=30, lr=0.01, batch=4, channels=4, seed=0)
    assert len(losses) == 30 and np.mean(losses[-5:]) < np.mean(losses[:5])
    assert apply_mapper(net, prot).shape == orig.shape
    torch.manual_seed(1234)  # the global RNG plays no part: the attack may run beside other work
    _, losses2 = train_mapper(prot, orig, steps=30, lr=0.01, batch=4, channels=4, seed=0)
    assert losses2 == losses  # deterministic for a seed


def test_mapper_identity_loss_and_the_convergence_verdict() -> None:
    from fam.evaluate.attacks import settled

    g = torch.Generator().manual_seed(0)
    orig = torch.rand(8, 3, 16, 16, generator=g) * 2 - 1
    prot = orig.flip(-1)
    embed = TinyRecognizer().embed
    kw = dict(steps=30, lr=0.01, batch=4, channels=4, seed=0)
    _, plain = train_mapper(prot, orig, **kw)
    _, with_id = train_mapper(prot, orig, identity=embed, identity_weight=1.0, **kw)
    assert with_id[0] > plain[0]  # the identity term adds to the same first batch's L1
    assert np.mean(with_id[-5:]) < np.mean(with_id[:5])
    assert settled([1.0] * 40) == "settled"
    assert settled([1.0] * 20 + [0.5] * 20).startswith("still falling 50.0%")
    assert settled([1.0] * 10).startswith("too few steps")
    assert settled([0.5] * 20 + [1.0] * 20).startswith("rising 100.0%")


def test_mapper_runs_at_the_engine_precision_deterministically() -> None:
    from fam.runtime import Engine

    g = torch.Generator().manual_seed(0)
    orig = torch.rand(8, 3, 16, 16, generator=g) * 2 - 1
    prot = orig.flip(-1)
    kw = dict(
        steps=6, lr=0.01, batch=4, channels=4, seed=0, identity=TinyRecognizer().embed, identity_weight=1.0
    )
    bf16 = Engine(torch.device("cpu"), "bf16")
    net, first = train_mapper(prot, orig, engine=bf16, **kw)
    _, again = train_mapper(prot, orig, engine=bf16, **kw)
    _, fp32 = train_mapper(prot, orig, **kw)
    assert first == again  # same seed and precision, same run
    assert first != fp32 and first[0] == pytest.approx(fp32[0], rel=0.02)  # bf16 rounding, same objective
    assert next(net.parameters()).dtype == torch.float32  # master weights stay float32


def test_baselines_keep_shape_and_range() -> None:
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    for y in (gaussian_blur(x, 0.05), pixelate(x, 8)):
        assert y.shape == x.shape and y.min() >= -1 - 1e-5 and y.max() <= 1 + 1e-5
    assert pixelate(x, 8)[..., :4, :4].std(dim=(-1, -2)).max() < 1e-6  # constant cells
    assert gaussian_blur(x, 0.05).std() < x.std()
