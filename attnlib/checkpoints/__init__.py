"""Small trained models that ship with attnlib, for the chapters that come before the training.

Chapter 9 looks inside a trained decoder before chapter 10 shows how to train one; it loads the
model that ``scripts/train_checkpoint.py`` trained with chapter 10's recipe and saved here:

    from attnlib import checkpoints
    from attnlib.train import load_checkpoint

    model = load_checkpoint(checkpoints.path("adjective")).eval()  # an attnlib.Decoder
    checkpoints.info("adjective")                           # how it was trained, what it reached

Each checkpoint is a ``save_checkpoint`` file (``NAME.pt``: the config and the float32 weights,
loaded with ``weights_only=True``) and a JSON file of its provenance (``NAME.json``: the script,
the seed, the steps, the validation loss and accuracy, the torch version and processor).
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["available", "path", "info"]

_HERE = Path(__file__).resolve().parent


def available() -> list[str]:
    """The names of the checkpoints that ship with this attnlib."""
    return sorted(p.stem for p in _HERE.glob("*.pt"))


def path(name: str) -> Path:
    """The file of checkpoint ``name`` (for ``attnlib.train.load_checkpoint``)."""
    if not isinstance(name, str):
        raise TypeError(f"checkpoints.path: name must be a str, got {type(name).__name__}")
    file = _HERE / f"{name}.pt"
    if not file.is_file():
        raise ValueError(f"checkpoints.path: no checkpoint named {name!r}; attnlib ships "
                         f"{available()} (scripts/train_checkpoint.py makes them)")
    return file


def info(name: str) -> dict:
    """How checkpoint ``name`` was made and what it reached (its JSON file, as a dict)."""
    return json.loads(path(name).with_suffix(".json").read_text(encoding="utf-8"))
