"""Fast CPU kernels for weight-only quantized matmuls, with a plain-PyTorch reference.

The C++ kernels (``csrc/qgemm.cpp``, AVX2 + FMA + F16C; ``csrc/decode_step.cpp``, the engine's fused
one-token step over all decoder blocks) are compiled once with
``torch.utils.cpp_extension`` into PyTorch's extension cache and loaded lazily. Where they cannot be
used (a CPU without AVX2, no C++ compiler, ``DSUITE_QUANT_KERNELS=reference``), the reference path
dequantizes the weight and calls ``torch.matmul``: same numbers, slower.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

KERNELS_ENV = "DSUITE_QUANT_KERNELS"  # "auto" (default) or "reference"
_CSRC = Path(__file__).with_name("csrc")
_SOURCES = [_CSRC / "qgemm.cpp", _CSRC / "decode_step.cpp"]
_HEADER = _CSRC / "qgemm.h"
_LOCK = threading.Lock()
_STATE: dict[str, object] = {}


GUARD_FILE = "dsuite-build.lock"  # held (flock) by the process that builds; the OS frees it if that one dies


def build_directory() -> Path:
    """Where the kernels are compiled: one folder per version of their sources and of torch.

    Under ``$TORCH_EXTENSIONS_DIR`` (default ``~/.cache/torch_extensions``), so checkouts with the same
    sources share one build and checkouts with different sources do not rebuild over each other.
    """
    digest = hashlib.sha256(torch.__version__.encode())
    for path in [*_SOURCES, _HEADER]:
        digest.update(path.read_bytes())
    root = os.environ.get("TORCH_EXTENSIONS_DIR") or str(Path.home() / ".cache" / "torch_extensions")
    folder = Path(root).expanduser() / f"dsuite_qgemm-{digest.hexdigest()[:12]}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextlib.contextmanager
def build_guard(folder: Path, wait: bool = True):
    """Hold the build of ``folder`` for this process; yields False when ``wait`` is off and another holds it.

    torch's own lock file (``lock``) stays behind when a build is killed (an app closed in its first minute),
    and torch then waits on it forever. The guard is an OS lock (``flock``) on ``dsuite-build.lock``, which
    the OS releases when its process dies, so whoever holds the guard knows a ``lock`` file is left over
    from a killed build and removes it. A process that finds the guard held waits for that build.
    """
    import fcntl

    with (Path(folder) / GUARD_FILE).open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                yield False
                return
            logger.info("another process is building the quantized kernels in %s; waiting for it", folder)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            left = Path(folder) / "lock"
            if left.exists():
                left.unlink(missing_ok=True)
                logger.warning("removed the build lock a killed build left in %s", folder)
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _cpu_has_avx2() -> bool:
    capability = torch.backends.cpu.get_cpu_capability()
    return capability in {"AVX2", "AVX512"} or capability.startswith("AVX512")


def native():
    """The compiled kernel module, or ``None`` when only the reference path is available."""
    if "module" in _STATE:
        return _STATE["module"]
    with _LOCK:
        if "module" in _STATE:
            return _STATE["module"]
        module = None
        if os.environ.get(KERNELS_ENV, "auto") == "reference":
            logger.info("%s=reference: quantized layers use the PyTorch reference path", KERNELS_ENV)
        elif not _cpu_has_avx2():
            logger.warning("CPU without AVX2: quantized layers use the slower PyTorch reference path")
        else:
            try:
                from torch.utils.cpp_extension import load

                build = build_directory()
                with build_guard(build):
                    module = load(
                        name="dsuite_qgemm",
                        sources=[str(p) for p in _SOURCES],
                        build_directory=str(build),
                        extra_cflags=["-O3", "-mavx2", "-mfma", "-mf16c", "-fopenmp"],
                        extra_ldflags=["-fopenmp"],
                        verbose=False,
                    )
            except Exception as exc:  # no compiler, headers or OpenMP: fall back, loudly
                logger.warning("could not build the quantized kernels (%s); using the reference path", exc)
        _STATE["module"] = module
        return module


def int4_matmul(x: torch.Tensor, packed: torch.Tensor, scales: torch.Tensor, mins: torch.Tensor,
                group_size: int) -> torch.Tensor:
    """``x @ W.T`` for an int4 grouped weight.

    Args:
        x: activations, shape (..., K), float32.
        packed: (N, K // 2) uint8, two values per byte (see ``pack_int4``).
        scales: (N, K // group_size) float16.
        mins: (N, K // group_size) float16.
        group_size: values per group along K (a multiple of 32).

    Returns:
        (..., N) float32.
    """
    lead = x.shape[:-1]
    x2 = x.reshape(-1, x.shape[-1])
    module = native()
    if module is not None and x2.dtype == torch.float32:
        y = module.int4_linear(x2.contiguous(), packed, scales, mins, group_size)
    else:
        y = x2 @ dequantize_int4(packed, scales, mins, group_size).to(x2.dtype).T
    return y.reshape(*lead, packed.shape[0])


def int8_matmul(x: torch.Tensor, qweight: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """``x @ W.T`` for an int8 per-output-channel weight: ``qweight`` (N, K) int8, ``scales`` (N,) float32."""
    lead = x.shape[:-1]
    x2 = x.reshape(-1, x.shape[-1])
    module = native()
    if module is not None and x2.dtype == torch.float32 and x2.shape[-1] % 16 == 0:
        y = module.int8_linear(x2.contiguous(), qweight, scales)
    else:
        y = x2 @ dequantize_int8(qweight, scales).to(x2.dtype).T
    return y.reshape(*lead, qweight.shape[0])


# --- quantizers and their exact inverses (the reference the kernels are tested against) -------------


def quantize_int4(weight: torch.Tensor, group_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Asymmetric int4 quantization in groups along the input dimension (GGUF Q4_1 style).

    Args:
        weight: (N, K) float weight; K must be a multiple of ``group_size``, itself a multiple of 32.
        group_size: values per group.

    Returns:
        ``(packed (N, K//2) uint8, scales (N, K//gs) float16, mins (N, K//gs) float16)``.
    """
    n, k = weight.shape
    w = weight.detach().float().reshape(n, k // group_size, group_size)
    lo = w.amin(dim=-1)
    hi = w.amax(dim=-1)
    scales = ((hi - lo) / 15.0).to(torch.float16)
    mins = lo.to(torch.float16)
    d = scales.float().unsqueeze(-1)
    safe = torch.where(d == 0, torch.ones_like(d), d)
    q = torch.clamp(torch.round((w - mins.float().unsqueeze(-1)) / safe), 0, 15).to(torch.uint8)
    return pack_int4(q.reshape(n, k)), scales, mins


def pack_int4(q: torch.Tensor) -> torch.Tensor:
    """Pack (N, K) values in [0, 15] two per byte: in each 32-block, byte j = q[j] | q[j + 16] << 4."""
    n, k = q.shape
    blocks = q.reshape(n, k // 32, 2, 16)
    return (blocks[:, :, 0, :] | (blocks[:, :, 1, :] << 4)).reshape(n, k // 2).contiguous()


def unpack_int4(packed: torch.Tensor) -> torch.Tensor:
    """Inverse of ``pack_int4``: (N, K // 2) uint8 -> (N, K) uint8 in [0, 15]."""
    n, half = packed.shape
    blocks = packed.reshape(n, half // 16, 1, 16)
    return torch.cat([blocks & 0x0F, blocks >> 4], dim=2).reshape(n, half * 2)


def dequantize_int4(packed: torch.Tensor, scales: torch.Tensor, mins: torch.Tensor, group_size: int
                    ) -> torch.Tensor:
    """The float32 weight an int4 grouped tensor stands for, shape (N, K)."""
    q = unpack_int4(packed).float()
    n, k = q.shape
    q = q.reshape(n, k // group_size, group_size)
    w = q * scales.float().unsqueeze(-1) + mins.float().unsqueeze(-1)
    return w.reshape(n, k)


def quantize_int8(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 quantization per output channel: ``(qweight (N, K) int8, scales (N,) float32)``."""
    w = weight.detach().float()
    scales = w.abs().amax(dim=1) / 127.0
    safe = torch.where(scales == 0, torch.ones_like(scales), scales)
    q = torch.clamp(torch.round(w / safe.unsqueeze(1)), -127, 127).to(torch.int8)
    return q.contiguous(), scales.contiguous()


def dequantize_int8(qweight: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """The float32 weight an int8 per-channel tensor stands for, shape (N, K)."""
    return qweight.float() * scales.float().unsqueeze(1)
