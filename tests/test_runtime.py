"""Engine settings: the two modulated-convolution paths agree, precision follows the hardware."""

from __future__ import annotations

import pytest
import torch

from fam import runtime
from fam.config import RuntimeConfig, parse_params
from fam.errors import ConfigError
from fam.models.stylegan2 import (
    ModulatedConv2d,
    StyleGAN2Config,
    generator_from_state_dict,
    random_generator,
    set_modconv_path,
)
from fam.runtime import CpuCapabilities, Engine, resolve_engine, resolve_modconv, resolve_precision
from tests.helpers.official_layouts import materialise, rosinality_generator

pytestmark = pytest.mark.unit

CPU = torch.device("cpu")
SMALL = {4: 32, 8: 32, 16: 24, 32: 16, 64: 8}


def _images_and_grads(gen: torch.nn.Module, ws: torch.Tensor, path: str) -> tuple[torch.Tensor, ...]:
    set_modconv_path(gen, path)
    gen.zero_grad(set_to_none=True)
    w = ws.clone().requires_grad_(True)
    img = gen.synthesis(w)
    # A fixed random projection makes every pixel's gradient count, unlike a plain sum.
    proj = torch.randn(img.shape, generator=torch.Generator().manual_seed(1))
    (img * proj).sum().backward()
    params = [p.grad.clone() for p in gen.parameters() if p.grad is not None]
    return (img.detach(), w.grad.clone(), *params)


def _assert_paths_agree(gen: torch.nn.Module, ws: torch.Tensor) -> None:
    gen.requires_grad_(True)
    fused = _images_and_grads(gen, ws, "fused")
    split = _images_and_grads(gen, ws, "split")
    assert len(fused) == len(split) > 10
    for a, b in zip(fused, split, strict=True):
        scale = a.abs().max().clamp_min(1.0)
        assert (a - b).abs().max() / scale < 1e-4


@pytest.mark.parametrize("resolution", [32, 64])
def test_fused_and_split_give_the_same_images_and_gradients(resolution: int) -> None:
    gen = random_generator(StyleGAN2Config.make(resolution, SMALL, style_dim=32, n_mlp=2), seed=5)
    ws = torch.randn(3, gen.num_ws, 32, generator=torch.Generator().manual_seed(0))
    _assert_paths_agree(gen, ws)


def test_paths_agree_on_an_official_layout_checkpoint() -> None:
    sd = materialise(rosinality_generator(64, 64, 2, {4: 64, 8: 64, 16: 32, 32: 32, 64: 16}), seed=3)
    gen = generator_from_state_dict(sd, torch.randn(64))
    ws = gen.w_avg + torch.randn(2, gen.num_ws, 64, generator=torch.Generator().manual_seed(2))
    _assert_paths_agree(gen, ws)


def test_unknown_path_is_refused() -> None:
    with pytest.raises(ConfigError, match="fused, split"):
        set_modconv_path(ModulatedConv2d(4, 4, 3, 8), "grouped")


def test_bf16_split_stays_close_to_fp32() -> None:
    gen = random_generator(StyleGAN2Config.make(32, SMALL, style_dim=32, n_mlp=2), seed=5)
    set_modconv_path(gen, "split")
    ws = torch.randn(2, gen.num_ws, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = gen.synthesis(ws)
        with Engine(CPU, "bf16", "split").autocast():
            low = gen.synthesis(ws)
    err = (low.float() - ref).abs().mean()
    assert 0 < err < 0.02 * ref.abs().mean()  # bf16 really ran, and stayed close


def _caps(bf16: bool, avx512: bool = True) -> CpuCapabilities:
    return CpuCapabilities("test cpu", "AVX512" if avx512 else "AVX2", True, avx512, bf16)


def test_auto_precision_follows_native_bf16_and_the_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "cpu_capabilities", lambda: _caps(bf16=False, avx512=False))
    runtime.cpu_bf16_faster.cache_clear()
    assert resolve_precision("auto", CPU) == "fp32"
    with pytest.raises(ConfigError, match=r"no native bf16.*auto or fp32"):
        resolve_precision("bf16", CPU)
    monkeypatch.setattr(runtime, "cpu_capabilities", lambda: _caps(bf16=True))
    monkeypatch.setattr(runtime, "cpu_bf16_faster", lambda: False)  # native, but measured slower
    assert resolve_precision("auto", CPU) == "fp32"
    monkeypatch.setattr(runtime, "cpu_bf16_faster", lambda: True)
    assert resolve_precision("auto", CPU) == "bf16"
    assert resolve_precision("fp32", CPU) == "fp32"
    assert resolve_precision("bf16", CPU) == "bf16"


def test_probe_result_is_cached_per_machine(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    calls: list[int] = []
    monkeypatch.setattr(runtime, "PROBE_FILE", tmp_path / "probe.json")
    monkeypatch.setattr(runtime, "cpu_capabilities", lambda: _caps(bf16=True))
    monkeypatch.setattr(runtime, "_probe_bf16_speedup", lambda: calls.append(1) or 2.5)
    runtime.cpu_bf16_faster.cache_clear()
    assert runtime.cpu_bf16_faster()
    runtime.cpu_bf16_faster.cache_clear()
    assert runtime.cpu_bf16_faster()  # from the file, not measured again
    assert calls == [1]
    assert '"bf16_speedup": 2.5' in (tmp_path / "probe.json").read_text()
    runtime.cpu_bf16_faster.cache_clear()


def test_modconv_auto_is_a_fixed_rule_per_device() -> None:
    assert resolve_modconv("auto", CPU) == "split"
    assert resolve_modconv("auto", torch.device("cuda")) == "fused"
    assert resolve_modconv("fused", CPU) == "fused"
    with pytest.raises(ConfigError, match=r"runtime\.modconv"):
        resolve_modconv("fast", CPU)


def test_runtime_settings_parse_and_resolve(monkeypatch: pytest.MonkeyPatch) -> None:
    params = parse_params(
        {"runtime": {"device": "cpu", "precision": "fp32", "modconv": "fused", "threads": 1}}
    )
    assert params.runtime == RuntimeConfig("cpu", 1, "fp32", "fused")
    with pytest.raises(ConfigError):
        parse_params({"runtime": {"precision": "fp16"}})
    before = torch.get_num_threads()
    try:
        engine = resolve_engine(params.runtime)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    assert engine.describe()["precision"] == "fp32" and engine.describe()["modconv"] == "fused"
    assert "cpu" in engine.describe()
    with pytest.raises(ConfigError, match=r"runtime\.threads"):
        runtime.apply_threads(-4)


def test_cpu_list_sizes() -> None:
    assert runtime._cpu_list_size("0-1\n") == 2
    assert runtime._cpu_list_size("0,64") == 2
    assert runtime._cpu_list_size("0-1,64-65") == 4
    assert runtime._cpu_list_size("3") == 1


def test_physical_cores_is_positive() -> None:
    assert 1 <= runtime.physical_cores() <= (torch.get_num_threads() * 4 + 64)


def _conv_task(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x, w = torch.randn(4, 16, 32, 32, generator=g), torch.randn(16, 16, 3, 3, generator=g)
    assert torch.get_num_threads() == 1 and runtime.apply_threads(0) == 1  # pinned: left alone
    return torch.nn.functional.conv2d(x, w, padding=1)


def test_side_by_side_results_do_not_depend_on_the_worker_count() -> None:
    before = torch.get_num_threads()
    tasks = {f"t{s}": (lambda s=s: _conv_task(s)) for s in range(4)}
    alone = runtime.run_side_by_side(tasks, workers=1)
    beside = runtime.run_side_by_side(tasks, workers=3)
    assert list(beside) == list(tasks)  # by name, in the tasks' order
    assert all(torch.equal(alone[k], beside[k]) for k in tasks)
    assert torch.get_num_threads() == before  # threads restored, runtime.threads applies again
    assert runtime.apply_threads(1) == 1 and runtime.apply_threads(before) == before


def test_side_by_side_raises_a_task_error_and_releases_the_pin() -> None:
    before = torch.get_num_threads()

    def fails() -> None:
        raise ValueError("task failed")

    with pytest.raises(ValueError, match="task failed"):
        runtime.run_side_by_side({"slow": lambda: _conv_task(0), "bad": fails}, workers=2)
    assert torch.get_num_threads() == before and runtime._pinned_threads is None
    with runtime.pinned_threads(1):
        with runtime.pinned_threads(1):  # nested (or another thread's) block at the same count
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 1  # still inside the outer block
        with pytest.raises(RuntimeError, match="pinned at 1"), runtime.pinned_threads(2):
            pass
    assert torch.get_num_threads() == before and runtime._pinned_threads is None
