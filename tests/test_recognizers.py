"""FR evaluator registry: names, options, batching, and loading of user weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fam.errors import ConfigError, MissingWeightsError
from fam.faces.chip import DLIB_150
from fam.interfaces import FaceRecognizer
from fam.recognizers import available, get
from fam.registry import Registry
from fam.weights import sha256_file


@pytest.mark.unit
def test_unknown_name_lists_the_valid_ones() -> None:
    assert {"dlib", "arcface-irse50", "arcface-ir152", "facenet"} <= set(available())
    with pytest.raises(ConfigError, match=r"unknown face recognizer 'vgg'.*arcface-ir152, arcface-irse50"):
        get("vgg")
    with pytest.raises(ConfigError, match=r"unknown option.*weights.*valid options: path"):
        get("dlib", weights="x")
    with pytest.raises(ConfigError, match="batch_size"):
        get("dlib", batch_size=0)


@pytest.mark.unit
def test_user_weights_are_required_with_the_fix() -> None:
    with pytest.raises(MissingWeightsError, match=r"not shipped here.*set its path"):
        get("facenet")
    with pytest.raises(MissingWeightsError, match="not shipped here"):
        get("arcface-irse50")


@pytest.mark.model
def test_dlib_evaluator_batches_consistently() -> None:
    torch.manual_seed(0)
    images = torch.rand(5, 3, 96, 96) * 2 - 1
    small = get("dlib", batch_size=2)
    assert isinstance(small, FaceRecognizer) and small.embedding_dim == 128
    a = small.embed(images)
    b = get("dlib", batch_size=8).embed(images)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    sim = small.similarity(a, a[:2])
    assert sim.shape == (5, 2)
    torch.testing.assert_close(sim[:2].diagonal(), torch.ones(2))
    assert small.embed(images[:0]).shape == (0, 128)


@pytest.mark.unit
def test_facenet_evaluator_loads_a_user_state_dict(tmp_path: Path) -> None:
    from fam.faces.facenet import InceptionResnetV1

    torch.manual_seed(0)
    file = tmp_path / "facenet.pt"
    torch.save(InceptionResnetV1().state_dict(), file)
    rec = get("facenet", path=file, sha256=sha256_file(file), batch_size=3)
    emb = rec.embed(torch.rand(4, 3, 128, 128) * 2 - 1)
    assert emb.shape == (4, 512) and torch.allclose(emb.norm(dim=1), torch.ones(4))
    with pytest.raises(MissingWeightsError, match="sha256"):
        get("facenet", path=file, sha256="0" * 64)


@pytest.mark.unit
@pytest.mark.parametrize(
    ("name", "depth", "mode"), [("arcface-irse50", 50, "ir_se"), ("arcface-ir152", 152, "ir")]
)
def test_arcface_evaluators_load_official_layouts(tmp_path: Path, name: str, depth: int, mode: str) -> None:
    from fam.models.irse import Backbone  # the ArcFace backbone module (fam.models.irse)

    torch.manual_seed(0)
    file = tmp_path / f"{name}.pth"
    torch.save(Backbone(depth, mode).state_dict(), file)
    rec = get(name, path=file, sha256=sha256_file(file), batch_size=2)
    assert rec.embed(torch.rand(3, 3, 128, 128) * 2 - 1).shape == (3, 512)
    other = "arcface-ir152" if name == "arcface-irse50" else "arcface-irse50"
    with pytest.raises(MissingWeightsError, match=f"IR-{depth} backbone"):
        get(other, path=file, sha256=sha256_file(file))


@pytest.mark.unit
def test_faceres_without_its_fetched_files_says_to_fetch_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAM_MODELS_DIR", str(tmp_path))
    with pytest.raises(
        MissingWeightsError, match=r"faceres-graph .*does not exist; run `bash scripts/fetch_faceres"
    ):
        get("faceres")
    (tmp_path / "faceres").mkdir()
    (tmp_path / "faceres" / "faceres.json").write_text("{}")  # not the pinned file
    with pytest.raises(MissingWeightsError, match=r"faceres\.json has sha256 .*scripts/fetch_faceres\.sh"):
        get("faceres")
    with pytest.raises(ConfigError, match="takes no path or sha256; set FAM_MODELS_DIR"):
        get("faceres", path=tmp_path / "faceres" / "faceres.json")


@pytest.mark.unit
def test_faceres_is_an_evaluator_the_losses_cannot_use() -> None:
    from fam.models import factory

    assert "faceres" in available()
    assert "faceres" not in factory.available("identity")


@pytest.mark.unit
def test_evaluation_builds_recognizers_on_the_runtime_device(monkeypatch: pytest.MonkeyPatch) -> None:
    from fam import recognizers
    from fam.config import parse_params
    from fam.evaluate.runner import build_recognizers

    devices: list[object] = []

    def probe(opts: recognizers.RecognizerOptions) -> recognizers.TemplateRecognizer:
        devices.append(opts.device)
        net = torch.nn.Linear(3, 2).to(opts.device)
        return recognizers.TemplateRecognizer("probe", net, DLIB_150, lambda x: x, 2, opts.batch_size)

    registry: Registry[recognizers.Builder] = Registry("face recognizer")
    registry.register("probe", probe)
    monkeypatch.setattr(recognizers, "RECOGNIZERS", registry)
    # "meta" stands in for an accelerator: a real device that is not the options' default (cpu)
    params = parse_params(
        {
            "runtime": {"device": "meta"},
            "evaluate": {"recognizers": ["probe", {"name": "probe", "device": "cpu", "batch_size": 2}]},
        }
    )
    built = build_recognizers(params)
    assert devices == [torch.device("meta"), "cpu"]  # an evaluator's own device option wins
    assert [rec.device for rec in built] == [torch.device("meta"), torch.device("cpu")]  # type: ignore[attr-defined]


@pytest.mark.unit
def test_a_taken_recognizer_name_is_refused() -> None:
    from fam import recognizers

    with pytest.raises(ValueError, match="face recognizer 'dlib' is already registered"):
        recognizers.register("dlib", recognizers.RECOGNIZERS.get("facenet"))


@pytest.mark.model
@pytest.mark.data
def test_faceres_tells_lfw_people_apart(lfw_available: Path) -> None:
    """The fetched black-box evaluator on real aligned-size crops: two photos of one person are
    closer than photos of two people (scripts/test.sh fetches it before the suite)."""
    from fam.faces.imageio import load_face

    rec = get("faceres")
    images = lfw_available / "images"
    paths = [
        images / "Aaron_Peirsol" / "Aaron_Peirsol_0001.jpg",
        images / "Aaron_Peirsol" / "Aaron_Peirsol_0002.jpg",
        images / "Abdoulaye_Wade" / "Abdoulaye_Wade_0001.jpg",
    ]
    emb = rec.embed(torch.stack([load_face(p, 128) for p in paths]))
    same, other = rec.similarity(emb[:1], emb[1:2]).item(), rec.similarity(emb[:1], emb[2:3]).item()
    assert emb.shape == (3, rec.embedding_dim) and same > other + 0.1, (same, other)
