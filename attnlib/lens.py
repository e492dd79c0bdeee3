"""The logit lens: read the residual stream after every stage as if the model stopped there.

    stages = residual_stages(model, tokens)   # {"embedding": (B, T, d_model), "attention 0": ..., ...}
    lensed = logit_lens(model, tokens)        # {stage: (B, T, vocab_size) logits}

A pre-LN decoder only ever adds to its residual stream (chapter 9), so the stream after any stage
is a partial sum of the final one. The logit lens (nostalgebraist, 2020) applies the
model's final LayerNorm and unembedding to that partial sum: ``unembed(ln_f(stream))``. At the last
stage this is the model's own output; earlier, it shows which words the stream already points at.

The stages, in the order the model computes them: ``"embedding"`` (token + position), then for
every block ``i`` ``"attention i"`` (after its self-attention has added its output),
``"cross-attention i"`` (only in a model with cross-attention) and ``"MLP i"``. The streams are
taken from the model's own forward pass (forward pre-hooks on its LayerNorms, which read them), so
anything that changes that pass shows: heads switched off by ``attnlib.ablate_heads``, a KV cache.
"""

from __future__ import annotations

import torch

from . import _validate as V

__all__ = ["residual_stages", "logit_lens", "stage_names"]


def _check_model(who: str, model):
    from .decoder import Decoder

    if not isinstance(model, Decoder):
        raise TypeError(f"{who}: model must be an attnlib.Decoder (it needs blocks, ln_f and unembed), "
                        f"got {V.describe(model)}")


def stage_names(model) -> list[str]:
    """The names of ``model``'s stages, in order: "embedding", "attention 0", "MLP 0", ..."""
    _check_model("stage_names", model)
    names = ["embedding"]
    for i, block in enumerate(model.blocks):
        names.append(f"attention {i}")
        if block.cross_attn is not None:
            names.append(f"cross-attention {i}")
        names.append(f"MLP {i}")
    return names


def residual_stages(model, tokens: torch.Tensor, **forward_kwargs) -> dict[str, torch.Tensor]:
    """The residual stream after every stage of ``model(tokens, **forward_kwargs)``.

    Returns {stage name: (B, T, d_model)} in the order of ``stage_names(model)``; the last entry is
    the stream the final LayerNorm reads. Runs one forward pass (under ``torch.no_grad`` only if
    the caller asks for it).
    """
    _check_model("residual_stages", model)
    model.embed.check(tokens, who="residual_stages")  # named here, not by the model's forward
    names = stage_names(model)
    # each stage's stream is the input of the LayerNorm that comes next
    readers = [model.blocks[0].ln_1]
    for i, block in enumerate(model.blocks):
        readers += [m for m in (block.ln_c, block.ln_2) if m is not None]
        readers.append(model.blocks[i + 1].ln_1 if i + 1 < len(model.blocks) else model.ln_f)
    seen: list[torch.Tensor] = []
    handles = [m.register_forward_pre_hook(lambda m, args: seen.append(args[0])) for m in readers]
    try:
        model(tokens, **forward_kwargs)
    finally:
        for h in handles:
            h.remove()
    if len(seen) != len(names):  # a model whose forward skips or repeats a LayerNorm
        raise RuntimeError(f"residual_stages: the forward pass read {len(seen)} streams, expected "
                           f"{len(names)} ({', '.join(names)})")
    return dict(zip(names, seen, strict=True))


def logit_lens(model, tokens: torch.Tensor, **forward_kwargs) -> dict[str, torch.Tensor]:
    """``unembed(ln_f(stream))`` for the stream after every stage: {stage name: (B, T, vocab_size)}.

    The last stage's entry equals ``model(tokens)``'s logits exactly (the same operations on the
    same tensor). Softmax an entry to read it as next-token probabilities.
    """
    _check_model("logit_lens", model)
    model.embed.check(tokens, who="logit_lens")
    stages = residual_stages(model, tokens, **forward_kwargs)
    return {name: model.unembed(model.ln_f(x)) for name, x in stages.items()}
