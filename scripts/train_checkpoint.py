#!/usr/bin/env python3
"""Train chapter 10's adjective model with chapter 10's recipe and save it as attnlib's checkpoint.

Chapter 9 looks inside a trained decoder one chapter before the reader trains one, and the book
must execute in minutes; so it loads this file's result (``attnlib/checkpoints/adjective.pt``)
instead of training. The recipe is chapter 10's CPU recipe, the one its prose describes:
``attnlib.TINY`` with the language's 45 words and a context of 32, AdamW at a learning rate of
0.02 warmed up over 50 steps and decayed along a cosine, batches of 32 windows, at most 3,000
steps, one CPU thread, stopping once 99% of each kind of question in 200 training windows is
answered (checked every 50 steps). With seed 0 it is the first model chapter 10 trains (the same
weights on the same processor).

    python scripts/train_checkpoint.py                  # seed 0, into attnlib/checkpoints/
    python scripts/train_checkpoint.py --seed 3 --out /tmp/other.pt

Next to the ``.pt`` file it writes a ``.json`` file: the recipe, the seed, the steps it took, the
validation loss and accuracy per kind, the torch version and the processor. tests/test_checkpoint.py
checks that the shipped checkpoint loads and answers, and that this recipe is still chapter 10's.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import attnlib  # noqa: E402
from attnlib import data  # noqa: E402
from attnlib.train import get_batch, save_checkpoint, seed_everything, train  # noqa: E402

DEFAULT_OUT = ROOT / "attnlib" / "checkpoints" / "adjective.pt"

# chapter 10's CPU recipe (tests/test_checkpoint.py compares these with the chapter's code)
RECIPE = {
    "n_train": 4000, "n_val": 400, "data_seed": 0,  # data.make_dataset
    "context_len": 32, "steps": 3000, "lr": 2e-2, "warmup": 50, "batch_size": 32,
    "eval_every": 50, "check_windows": 200, "stop_accuracy": 0.99, "val_batch_size": 64,
}


def dataset():
    """The corpus of chapter 10 (generated, seeded)."""
    r = RECIPE
    return data.make_dataset(n_train=r["n_train"], n_val=r["n_val"], seed=r["data_seed"])


def config(tok) -> attnlib.DecoderConfig:
    return attnlib.TINY.replace(vocab_size=len(tok), context_len=RECIPE["context_len"])


def train_adjective_model(seed: int = 0, ds=None, progress: bool = False):
    """Chapter 10's ``train_adjective_model`` on the CPU: returns (model, history)."""
    r = RECIPE
    ds = ds or dataset()
    T = r["context_len"]
    x_check, pairs_check = ds.windows("train", context_len=T, n=r["check_windows"])
    torch.set_num_threads(1)  # as chapter 10 on a CPU (and it is faster for a model this small)
    g_train = seed_everything(seed)  # the initial weights; g_train draws the batches
    model = attnlib.Decoder(config(ds.tokenizer))
    g_val = torch.Generator().manual_seed(seed + 1)

    def learned(step):  # every eval_every steps: stop once the questions are answered
        logits, _ = model(x_check)
        return bool((data.question_accuracy(logits, x_check, pairs_check) >= r["stop_accuracy"]).all())

    history = train(
        model,
        lambda: get_batch(ds.train, r["batch_size"], T, generator=g_train),
        r["steps"], lr=r["lr"], warmup=r["warmup"],
        val_batch_fn=lambda: get_batch(ds.val, r["val_batch_size"], T, generator=g_val),
        eval_every=r["eval_every"], progress=progress, stop=learned,
    )
    return model.eval(), history


def evaluate(model, ds) -> dict:
    """The validation accuracy per kind of question (windows that start at a story boundary)."""
    x_val, pairs = ds.windows("val", context_len=RECIPE["context_len"])
    with torch.no_grad():
        logits, _ = model(x_val)
    acc = data.question_accuracy(logits, x_val, pairs)
    return {kind: round(acc[k].item(), 4) for k, kind in enumerate(data.KINDS)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    ds = dataset()
    start = time.perf_counter()
    model, history = train_adjective_model(args.seed, ds, progress=True)
    seconds = time.perf_counter() - start
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(model, args.out)
    meta = {
        "made_by": "scripts/train_checkpoint.py", "seed": args.seed, "recipe": RECIPE,
        "steps": history.steps[-1] + 1, "val_loss": round(history.val_loss[-1], 4),
        "accuracy": evaluate(model, ds), "seconds": round(seconds, 1), "torch": torch.__version__,
        "processor": platform.processor() or platform.machine(),
    }
    args.out.with_suffix(".json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(meta))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
