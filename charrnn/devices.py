"""The devices a command may name, and the torch device each name means (training and inference alike)."""

from __future__ import annotations

import torch

from charrnn.errors import CharRNNError

DEVICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(name: str) -> torch.device:
    """The torch device `name` (one of DEVICES) means here; auto: CUDA, else MPS, else the CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise CharRNNError("--device cuda: no CUDA GPU is available to this PyTorch")
    if name == "mps" and not torch.backends.mps.is_available():
        raise CharRNNError("--device mps: the Apple MPS backend is not available")
    if name not in ("cpu", "cuda", "mps"):
        raise CharRNNError(f"unknown device {name!r}: use auto, cpu, cuda or mps")
    return torch.device(name)
