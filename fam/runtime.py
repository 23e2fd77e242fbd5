"""How the networks run on this machine: precision, modulated-convolution path and threads.

Machines differ more than settings suggest. On a CPU with native bf16 (AVX-512 BF16 or AMX) a
bf16 convolution runs several times faster than fp32; on one with AVX2 only, the same bf16
convolution is emulated and runs ~70x *slower*. So ``auto`` never guesses from the device type
alone: it reads the CPU's capabilities and, where bf16 is native, confirms with a short timed
probe that bf16 is faster. The probe's verdict is cached per process and per machine
(``~/.cache/fam/runtime_probe.json``, keyed by CPU model, flags and torch version), so every run
on one machine resolves ``auto`` the same way: determinism holds per resolved precision, and
manifests record the resolved values, never ``auto``.
"""

from __future__ import annotations

import json
import os
import platform
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal, TypeVar

import torch
from torch.nn import functional as F

from fam.errors import ConfigError
from fam.io_utils import atomic_write_json

Precision = Literal["fp32", "bf16"]
PRECISIONS = ("auto", "fp32", "bf16")
MODCONV_SETTINGS = ("auto", "fused", "split")
T = TypeVar("T")
PROBE_FILE = Path(os.environ.get("FAM_CACHE_DIR", Path.home() / ".cache" / "fam")) / "runtime_probe.json"


@dataclass(frozen=True)
class CpuCapabilities:
    model: str
    isa: str  # torch's dispatch level: DEFAULT, AVX2, AVX512, AVX512_VNNI, AVX512_BF16, AMX ...
    avx2: bool
    avx512: bool
    bf16_native: bool  # AVX-512 BF16 or AMX-BF16: bf16 dot products in hardware

    def describe(self) -> str:
        kind = "AVX-512" if self.avx512 else "AVX2" if self.avx2 else "no AVX2"
        return f"{self.model} ({kind}{', native bf16' if self.bf16_native else ', no native bf16'})"


def _cpu_flags() -> tuple[str, set[str]]:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model in ("", platform.machine(), platform.processor()):
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:  # not Linux: fall back to what torch reports
        pass
    return model, flags


@cache
def cpu_capabilities() -> CpuCapabilities:
    model, flags = _cpu_flags()
    isa = torch.backends.cpu.get_cpu_capability()
    avx512 = "avx512f" in flags or isa.startswith("AVX512") or isa.startswith("AMX")
    bf16 = bool({"avx512_bf16", "amx_bf16"} & flags)
    return CpuCapabilities(model, isa, "avx2" in flags or isa != "DEFAULT", avx512, bf16)


def _time(fn: Any, repeats: int = 3) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _probe_bf16_speedup() -> float:
    """fp32 time / bf16 time of representative 3x3 convolutions, forward and backward.

    Two shapes of the 64-px prior (a wide low-resolution and a narrow high-resolution layer),
    best of five each: a single small shape measured once was seen to read 1.1x on a machine
    where the real layers gain 2-3x.
    """
    gen = torch.Generator().manual_seed(0)
    totals = {torch.float32: 0.0, torch.bfloat16: 0.0}
    for b, c, side in ((16, 128, 32), (32, 32, 64)):
        x32 = torch.randn(b, c, side, side, generator=gen)
        w32 = torch.randn(c, c, 3, 3, generator=gen)
        for dtype in totals:
            x = x32.to(dtype).requires_grad_(True)
            w = w32.to(dtype).requires_grad_(True)
            totals[dtype] += _time(lambda x=x, w=w: F.conv2d(x, w, padding=1).sum().backward(), repeats=5)
    return totals[torch.float32] / totals[torch.bfloat16]


def _probe_key(caps: CpuCapabilities) -> str:
    return f"{caps.model}|{caps.isa}|bf16={caps.bf16_native}|torch {torch.__version__}"


@cache
def cpu_bf16_faster() -> bool:
    """Whether bf16 autocast pays on this CPU: native bf16 and a measured speed-up of at least 1.3x."""
    caps = cpu_capabilities()
    if not caps.bf16_native:
        return False
    key = _probe_key(caps)
    try:
        cached = json.loads(PROBE_FILE.read_text())
        if cached.get("key") == key:
            return bool(cached["bf16_faster"])
    except (OSError, ValueError, KeyError):
        pass
    speedup = _probe_bf16_speedup()
    verdict = speedup >= 1.3
    with suppress(OSError):  # a read-only home still gets the measured answer for this process
        atomic_write_json(PROBE_FILE, {"key": key, "bf16_speedup": round(speedup, 2), "bf16_faster": verdict})
    return verdict


def resolve_precision(setting: str, device: torch.device) -> Precision:
    """``runtime.precision`` -> the precision this run uses (``fp32`` or ``bf16``)."""
    if setting not in PRECISIONS:
        raise ConfigError(f"runtime.precision = {setting!r}; valid: {', '.join(PRECISIONS)}")
    if setting == "bf16" and device.type == "cpu" and not cpu_capabilities().bf16_native:
        raise ConfigError(
            f"runtime.precision = bf16 but this CPU ({cpu_capabilities().describe()}) has no native bf16: "
            "it would run about 70x slower than fp32. Use auto or fp32"
        )
    if setting != "auto":
        return setting  # type: ignore[return-value]
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if device.type == "cpu":
        return "bf16" if cpu_bf16_faster() else "fp32"
    return "fp32"


def resolve_modconv(setting: str, device: torch.device) -> str:
    """``runtime.modconv`` -> ``fused`` or ``split``.

    ``auto`` is a fixed rule per device type (so that it cannot flip between runs): ``split`` on
    CPUs, where a dense convolution runs 2-4x faster than the grouped one (benchmarks/
    bench_train_step.py), and ``fused`` on GPUs, where the grouped kernel is the well-trodden path.
    """
    if setting not in MODCONV_SETTINGS:
        raise ConfigError(f"runtime.modconv = {setting!r}; valid: {', '.join(MODCONV_SETTINGS)}")
    if setting != "auto":
        return setting
    return "split" if device.type == "cpu" else "fused"


def autocast(device: torch.device, precision: Precision) -> Any:
    """bf16 autocast for the resolved precision; a no-op context for fp32."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


@contextmanager
def fp32(device: torch.device) -> Iterator[None]:
    """Leave any enclosing autocast (for R1, whose second derivatives need float32)."""
    with torch.autocast(device.type, enabled=False):
        yield


def _cpu_list_size(text: str) -> int:
    """Number of CPUs in a kernel CPU list such as ``0-1,64-65`` or ``0,64``."""
    total = 0
    for part in filter(None, text.strip().split(",")):
        lo, _, hi = part.partition("-")
        total += int(hi or lo) - int(lo) + 1
    return total


def physical_cores() -> int:
    """Physical cores available to this process (hyper-threads share one core's vector units)."""
    logical = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        siblings = Path("/sys/devices/system/cpu/cpu0/topology/thread_siblings_list").read_text()
        per_core = max(1, _cpu_list_size(siblings))
    except (OSError, ValueError):
        per_core = 1
    return max(1, logical // per_core)


_pinned_threads: int | None = None  # set by pinned_threads(): apply_threads() leaves torch alone
_pins = 0  # open pinned_threads() blocks (several threads of one process may hold one each)
_previous_threads = 1  # torch's count before the first open block, restored when the last closes
_pin_lock = threading.Lock()


def apply_threads(threads: int) -> int:
    """``runtime.threads``: 0 = the physical cores; returns the count in force."""
    if threads < 0:
        raise ConfigError(f"runtime.threads = {threads}; give 0 (physical cores) or a positive count")
    if _pinned_threads is not None:
        return _pinned_threads
    count = threads or physical_cores()
    if torch.get_num_threads() != count:
        torch.set_num_threads(count)
    return count


@contextmanager
def pinned_threads(count: int) -> Iterator[None]:
    """Hold torch's intra-op threads at ``count`` for the block; ``runtime.threads`` is not applied
    meanwhile. With ``count`` 1, work run side by side on Python threads executes each op on its
    calling thread, so its results do not depend on what runs beside it (nor on the core count).
    Blocks may nest or overlap across threads at one count; another count meanwhile is refused."""
    global _pinned_threads, _pins, _previous_threads
    with _pin_lock:
        if _pinned_threads is not None and _pinned_threads != count:
            raise RuntimeError(f"torch's threads are pinned at {_pinned_threads}; cannot pin them at {count}")
        if _pins == 0:
            _previous_threads = torch.get_num_threads()
            torch.set_num_threads(count)
            _pinned_threads = count
        _pins += 1
    try:
        yield
    finally:
        with _pin_lock:
            _pins -= 1
            if _pins == 0:
                _pinned_threads = None
                torch.set_num_threads(_previous_threads)


def run_side_by_side(tasks: Mapping[str, Callable[[], T]], workers: int) -> dict[str, T]:
    """Each task's result by name, the tasks run on up to ``workers`` Python threads with every
    torch op on one thread (:func:`pinned_threads`): on a few CPU cores, small independent jobs
    gain more side by side than from intra-op threads, and their results stay the same whatever
    the worker count or order (``workers`` 1 runs them one after the other, on one thread too).
    Tasks must not share a module they change or differentiate through; give the longest first.
    The first error is raised once the running tasks end; tasks not yet started are cancelled."""
    with pinned_threads(1):
        if workers <= 1 or len(tasks) <= 1:
            return {name: task() for name, task in tasks.items()}
        with ThreadPoolExecutor(min(workers, len(tasks)), thread_name_prefix="fam-side") as pool:
            futures = {name: pool.submit(_one_thread, task) for name, task in tasks.items()}
            try:
                return {name: future.result() for name, future in futures.items()}
            except BaseException:
                for future in futures.values():
                    future.cancel()
                raise


def _one_thread(task: Callable[[], T]) -> T:
    torch.set_num_threads(1)  # OpenMP keeps the count per thread: set it in this worker too
    return task()


@dataclass(frozen=True)
class Engine:
    """The resolved ``runtime`` settings a run executes with (recorded, never ``auto``)."""

    device: torch.device
    precision: Precision = "fp32"
    modconv: str = "fused"

    def autocast(self) -> Any:
        return autocast(self.device, self.precision)

    def prepare(self, *networks: torch.nn.Module) -> None:
        """Switch every modulated convolution in ``networks`` to this engine's path."""
        from fam.models.stylegan2 import set_modconv_path

        for net in networks:
            set_modconv_path(net, self.modconv)

    def describe(self) -> dict[str, str]:
        info = {"device": str(self.device), "precision": self.precision, "modconv": self.modconv}
        if self.device.type == "cpu":
            info["cpu"] = cpu_capabilities().describe()
        return info


def resolve_engine(runtime: Any) -> Engine:
    """``params.runtime`` -> :class:`Engine`; also applies ``runtime.threads``."""
    from fam.models.factory import resolve_device

    device = resolve_device(runtime.device)
    if device.type == "cpu":
        apply_threads(runtime.threads)
    return Engine(
        device, resolve_precision(runtime.precision, device), resolve_modconv(runtime.modconv, device)
    )
