"""Pick the device once: CUDA, then Apple's MPS, then the CPU."""

from __future__ import annotations

import torch

__all__ = ["get_device"]


def get_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")
