"""Which torch device a model runs on, and in which number format."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import get_args

import torch

from indexer.config import Precision
from indexer.errors import InvalidInput


def resolve_device(device: str = "auto") -> torch.device:
    """`auto` picks the fastest device present: cuda, then mps, then cpu."""
    if device != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


PRECISIONS: tuple[Precision, ...] = get_args(Precision)
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})  # x86 instructions that compute in bf16


def resolve_precision(precision: str, device: torch.device, cpu_flags: frozenset[str] | None = None) -> str:
    """The number format a CLIP model computes in on `device`.

    `auto`: fp16 on CUDA; bf16 on a CPU with native bf16 instructions, where a forward takes half the
    time of fp32 (ViT-B-32 on this project's 2-core AVX512-BF16 machine: a 32-image batch 1.55 -> 0.80 s,
    a query text 21 -> 10 ms, `bench/ingest.py` 14.3 -> 29.0 items/s); fp32 elsewhere, where bf16 would
    be emulated and slower. The price: bf16 keeps 8 bits of mantissa. Vectors (normalised in fp32)
    stay within cosine 0.9999 of fp32's, for ViT-B-32 with random weights and for a trained text
    transformer (all-MiniLM-L6-v2 on 431 fortunes: min 0.99990), and near-ties can swap: 99.0 % of
    each text's 10 nearest neighbours stay the same. `fp32` keeps a CPU's vectors exact.
    """
    if precision not in PRECISIONS:
        raise InvalidInput(f"model precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "fp16" and device.type == "cpu":
        raise InvalidInput("model precision fp16 needs a GPU; on the CPU use bf16 or fp32")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "fp16"
    if device.type == "cpu" and (cpu_flags if cpu_flags is not None else _cpu_flags()) & NATIVE_BF16_FLAGS:
        return "bf16"
    return "fp32"


@functools.cache
def _cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as Linux lists them (empty elsewhere, so `auto` stays fp32 there)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return frozenset(line.partition(":")[2].split())
    return frozenset()
