"""A small training loop for next-token prediction (and any model that returns ``(logits, loss)``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

__all__ = ["seed_everything", "get_batch", "TrainHistory", "train", "save_checkpoint", "load_checkpoint"]


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed torch's global generators and return a fresh ``torch.Generator`` seeded the same."""
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def get_batch(data: torch.Tensor, batch_size: int, context_len: int, generator=None, device=None):
    """Random windows of a 1-D token stream: x (B, T) and y = x shifted left by one (B, T).

    Every position of every window is a training example: predict token t+1 from tokens <= t.
    """
    if data.ndim != 1 or len(data) <= context_len:
        raise ValueError(
            f"get_batch: data must be a 1-D token stream longer than context_len={context_len}, "
            f"got shape {tuple(data.shape)}"
        )
    starts = torch.randint(len(data) - context_len, (batch_size,), generator=generator)
    x = torch.stack([data[s:s + context_len] for s in starts.tolist()])
    y = torch.stack([data[s + 1:s + 1 + context_len] for s in starts.tolist()])
    if device is not None:
        x, y = x.to(device), y.to(device)
    return x, y


@dataclass
class TrainHistory:
    steps: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    eval_steps: list[int] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)


@torch.no_grad()
def _evaluate(model, batch_fn, n_batches: int) -> float:
    was = model.training
    model.eval()
    losses = [model(*batch_fn())[1].item() for _ in range(n_batches)]
    model.train(was)
    return sum(losses) / len(losses)


def train(model: torch.nn.Module, batch_fn: Callable, steps: int, *, lr: float = 3e-3,
          weight_decay: float = 0.01, val_batch_fn: Callable | None = None, eval_every: int = 50,
          eval_batches: int = 4, grad_clip: float | None = 1.0, warmup: int = 0,
          autocast_dtype: torch.dtype | None = None, progress: bool = True,
          stop: Callable[[int], bool] | None = None) -> TrainHistory:
    """AdamW on ``model(*batch_fn())[1]`` for ``steps`` steps; returns the loss history.

    ``batch_fn()`` returns the arguments of one forward call, e.g. ``(x, y)``. The learning rate
    warms up linearly for ``warmup`` steps, then decays along a cosine to lr/10. ``autocast_dtype``
    (e.g. torch.bfloat16 on a GPU) runs the forward pass under autocast.

    ``stop(step)``, if given, is called after every ``eval_every``-th step (with the model in eval
    mode and gradients off) and ends the training early when it returns True, for example once
    a score on held-out data is good enough; ``steps`` is then the most it may take, and
    ``history.steps[-1]`` the last step run. The validation loss is also measured at that step.
    """
    if stop is not None and not callable(stop):
        raise TypeError(f"train: stop must be a callable or None, got {type(stop).__name__}")
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, steps, warmup))
    device_type = next(model.parameters()).device.type
    hist = TrainHistory()
    model.train()
    bar = tqdm(range(steps), disable=not progress, desc="training")
    for step in bar:
        with torch.autocast(device_type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            _, loss = model(*batch_fn())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        opt.step()
        sched.step()
        hist.steps.append(step)
        hist.train_loss.append(loss.item())
        stopping = stop is not None and (step + 1) % eval_every == 0 and _ask(model, stop, step)
        if val_batch_fn is not None and (step % eval_every == 0 or step == steps - 1 or stopping):
            hist.eval_steps.append(step)
            hist.val_loss.append(_evaluate(model, val_batch_fn, eval_batches))
            bar.set_postfix(train=f"{hist.train_loss[-1]:.3f}", val=f"{hist.val_loss[-1]:.3f}")
        if stopping:
            break
    bar.close()
    model.eval()
    return hist


@torch.no_grad()
def _ask(model, stop, step: int) -> bool:
    was = model.training
    model.eval()
    answer = bool(stop(step))
    model.train(was)
    return answer


def _lr_factor(step: int, steps: int, warmup: int) -> float:
    import math

    if warmup and step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def save_checkpoint(model: torch.nn.Module, path) -> None:
    """Save the weights and the config (as a plain dict) of an attnlib model."""
    from dataclasses import asdict

    torch.save({"config": asdict(model.config), "state_dict": model.state_dict()}, path)


def load_checkpoint(path, cls=None, map_location="cpu"):
    """Rebuild a model saved by ``save_checkpoint``; loads with ``weights_only=True`` (no pickled code)."""
    from .decoder import Decoder, DecoderConfig

    ckpt = torch.load(path, map_location=map_location, weights_only=True)
    model = (cls or Decoder)(DecoderConfig(**ckpt["config"]))
    model.load_state_dict(ckpt["state_dict"])
    return model
