"""Where computation runs: device names from the command line, and what the hardware offers."""

from __future__ import annotations

import torch

from seqcli.errors import UsageError


def pick_device(name: str) -> torch.device:
    """'auto' (a GPU when there is one), 'cpu', 'cuda' or 'cuda:N'; anything else is a usage error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(f"--device {name}: expected auto, cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise UsageError(f"--device {name}: expected auto, cpu, cuda or cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: no CUDA GPU is available here")
    return device


def has_native_bf16(device: torch.device) -> bool:
    """Whether bfloat16 matrix products run in hardware here: a CUDA GPU that supports them,
    or a CPU with AVX-512 BF16 or AMX (elsewhere bf16 autocast on a CPU is emulated and slow)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)
