"""Looking inside a model: record every head's attention pattern, or switch heads off.

    with record_patterns(model) as patterns:
        model(tokens)
    patterns["blocks.0.attn"]          # (B, n_heads, T_q, T_k), the pattern layer 0 used

    layer_stack(patterns)              # (n_layers, B, n_heads, T_q, T_k), layer 0 first

    with ablate_heads(model, {"blocks.1.attn": [0, 2]}):
        logits, loss = model(tokens)   # heads 0 and 2 of layer 1 add nothing to the residual stream

Both work on any ``nn.Module`` that contains ``MultiHeadAttention`` modules (a ``Decoder``, an
``Encoder``, a single block, a model of the reader's own), and name each attention module as
``model.named_modules()`` does ("blocks.0.attn", "blocks.0.cross_attn", ...; "" for the model itself
when it is a ``MultiHeadAttention``). Nothing about the model changes: no parameter, buffer or
state-dict key; leaving the ``with`` block restores it exactly, also when the block raises.

How: ``record_patterns`` gives every attention module a small callback that it calls with the pattern
it used (the module then takes attention's explicit path, which returns the pattern; the outputs agree
with the fast path to float rounding). ``ablate_heads`` registers a forward pre-hook on each chosen
module's output projection ``out_proj`` that zeroes those heads' slices of its input: exactly what
zeroing the heads' columns of W_O would do, without touching W_O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager

import torch
from torch import nn

from . import _validate as V
from .multihead import MultiHeadAttention

__all__ = ["record_patterns", "layer_stack", "ablate_heads", "attention_modules"]


def attention_modules(model: nn.Module) -> dict[str, MultiHeadAttention]:
    """Every ``MultiHeadAttention`` inside ``model``, by its name in ``model.named_modules()``."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"attention_modules: model must be a torch.nn.Module, got {V.describe(model)}")
    return {name: m for name, m in model.named_modules() if isinstance(m, MultiHeadAttention)}


def _modules(who: str, model, names) -> dict[str, MultiHeadAttention]:
    if not isinstance(model, nn.Module):
        raise TypeError(f"{who}: model must be a torch.nn.Module, got {V.describe(model)}")
    found = {name: m for name, m in model.named_modules() if isinstance(m, MultiHeadAttention)}
    if not found:
        raise ValueError(f"{who}: model ({type(model).__name__}) contains no MultiHeadAttention module")
    if names is None:
        return found
    if isinstance(names, str):
        names = [names]
    try:
        names = list(names)  # once: a generator would be used up by the check below
    except TypeError:
        raise TypeError(f"{who}: names must be a module name or a list of them, got {V.describe(names)}") from None
    unknown = [n for n in names if n not in found]
    if unknown:
        raise ValueError(f"{who}: no attention module named {unknown[0]!r}; the model has {sorted(found)}")
    return {n: found[n] for n in names}


@contextmanager
def record_patterns(model: nn.Module, names: Iterable[str] | None = None, *,
                    detach: bool = True) -> Iterator[dict[str, torch.Tensor]]:
    """Collect the attention pattern of every attention module (or of ``names``) during the block.

    Yields a dict, filled as the model runs: name -> pattern (B, n_heads, T_q, T_k) of the module's
    latest call (a step of ``generate`` overwrites the previous one). Patterns are detached unless
    ``detach=False``.
    """
    modules = _modules("record_patterns", model, names)
    detach = V.flags("record_patterns", detach=detach)["detach"]
    patterns: dict[str, torch.Tensor] = {}

    def sink_for(name: str):
        def sink(weights: torch.Tensor) -> None:
            patterns[name] = weights.detach() if detach else weights
        return sink

    previous = {name: m._pattern_sink for name, m in modules.items()}
    try:
        for name, m in modules.items():
            m._pattern_sink = sink_for(name)
        yield patterns
    finally:
        for name, m in modules.items():
            m._pattern_sink = previous[name]


def layer_stack(patterns: Mapping[str, torch.Tensor], kind: str = "attn", *,
                prefix: str = "") -> torch.Tensor:
    """The patterns of one kind of module, one per layer, stacked: (n_layers, B, H, T_q, T_k).

    ``patterns`` is what ``record_patterns`` collected; ``kind`` is "attn" (self-attention) or
    "cross_attn"; ``prefix`` picks a sub-model ("decoder." or "encoder." of a ``Seq2Seq``). Layer l
    is ``patterns[f"{prefix}blocks.{l}.{kind}"]``; every layer from 0 on must be there.
    """
    return _layer_stack("layer_stack", patterns, kind, prefix)


def _layer_stack(who: str, patterns, kind: str, prefix: str) -> torch.Tensor:
    if not isinstance(patterns, Mapping):
        raise TypeError(f"{who}: patterns must be the dict that record_patterns yields, got {V.describe(patterns)}")
    for arg, value in (("kind", kind), ("prefix", prefix)):
        if not isinstance(value, str):
            raise TypeError(f"{who}: {arg} must be a str, got {V.describe(value)}")
    key = re.compile(re.escape(prefix) + r"blocks\.(\d+)\." + re.escape(kind))
    layers = {int(m.group(1)): p for name, p in patterns.items() if (m := key.fullmatch(str(name)))}
    if not layers:
        raise ValueError(f"{who}: no pattern named {prefix}blocks.<layer>.{kind}; the patterns are "
                         f"{sorted(map(str, patterns))} (did the model run inside record_patterns?)")
    missing = sorted(set(range(max(layers) + 1)) - set(layers))
    if missing:
        raise ValueError(f"{who}: layer {missing[0]} is missing ({prefix}blocks.{missing[0]}.{kind}); "
                         f"record every layer (record_patterns without names)")
    for i in sorted(layers):
        V.tensor(who, f"the pattern of {prefix}blocks.{i}.{kind}", layers[i], floating=True)
    shapes = list(dict.fromkeys(tuple(layers[i].shape) for i in sorted(layers)))
    if len(shapes) > 1:
        raise ValueError(f"{who}: the layers' patterns differ in shape, {shapes}; record one forward pass")
    return torch.stack([layers[i] for i in sorted(layers)])


def _head_list(who: str, name: str, heads, n_heads: int) -> list[int]:
    if isinstance(heads, (int, bool)) or not isinstance(heads, Iterable):
        raise TypeError(f"{who}: the heads of {name!r} must be a list of ints, got {V.describe(heads)}")
    out = []
    for h in heads:
        if not V._is_int(h):  # numpy ints too (e.g. from np.argsort); not bools
            raise TypeError(f"{who}: the heads of {name!r} must be ints, got {V.describe(h)}")
        if not 0 <= h < n_heads:
            raise ValueError(f"{who}: head {h} of {name!r} does not exist; its heads are 0 .. {n_heads - 1}")
        out.append(int(h))
    return out


@contextmanager
def ablate_heads(model: nn.Module, heads: Mapping[str, Iterable[int]]) -> Iterator[None]:
    """Zero the outputs of the given heads inside the block: ``{"blocks.1.attn": [0, 2]}``.

    A zeroed head adds nothing to the residual stream (its pattern is still computed, so
    ``record_patterns`` still sees it). The output projection's bias, if any, is kept.
    """
    who = "ablate_heads"
    if not isinstance(heads, Mapping):
        raise TypeError(f"{who}: heads must be a dict of module name -> list of heads, got {V.describe(heads)}")
    modules = _modules(who, model, list(heads))
    chosen = {name: _head_list(who, name, heads[name], m.n_heads) for name, m in modules.items()}
    handles = []
    try:
        for name, m in modules.items():
            keep = torch.ones(m.n_heads, 1)
            keep[chosen[name]] = 0.0

            def pre_hook(module, args, m=m, keep=keep):
                (y,) = args  # (B, T, n_heads * d_head): the heads side by side
                k = keep.to(dtype=y.dtype, device=y.device)
                return ((y.reshape(*y.shape[:-1], m.n_heads, m.d_head) * k).reshape(y.shape),)

            handles.append(m.out_proj.register_forward_pre_hook(pre_hook))
        yield
    finally:
        for h in handles:
            h.remove()
