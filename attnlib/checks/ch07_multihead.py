"""Checkers for chapter 7 (many heads): splitting and merging heads, multi-head attention, one
head switched off, and the attention parameters of a whole model (no exercise uses that one now;
older notebooks still call it).

Conventions: many heads stack one head's matrices, W_Q, W_K, W_V (n_heads, d_model, d_head) and
W_O (n_heads, d_head, d_model); head h owns the features h*d_head .. (h+1)*d_head - 1.
"""

from __future__ import annotations

import copy
import math

import torch

from ..attention import attention
from ..multihead import MultiHeadAttention
from ._core import Case, Causal, Mistake, NumberSpec, TensorSpec, checker, randn
from .ch06_one_head import head_change

__all__ = ["check_split_heads", "check_merge_heads", "check_multihead", "check_ablation",
           "check_param_count"]


def _split(t, n_heads):
    B, T, _ = t.shape
    return t.view(B, T, n_heads, -1).transpose(1, 2)


def _merge(t):
    B, H, T, dh = t.shape
    return t.transpose(1, 2).reshape(B, T, H * dh)


def _split_cases():
    cases = []
    for B, T, H, dh in ((2, 5, 3, 4), (1, 4, 2, 3)):
        t = torch.arange(B * T * H * dh, dtype=torch.float32).reshape(B, T, H * dh)
        cases.append(Case(f"B={B}, T={T}, {H} heads of {dh}", (t, H), _split(t, H)))
    return cases


@checker(TensorSpec(
    "split heads", _split_cases, [
        Mistake("wrong reshape: viewing (B, T, H*d_head) directly as (B, H, T, d_head) mixes "
                "positions into heads; view as (B, T, H, d_head), then transpose(1, 2)",
                lambda t, H: t.reshape(t.shape[0], H, t.shape[1], -1)),
        Mistake("the heads are interleaved: the features of head h are the contiguous block "
                "h*d_head:(h+1)*d_head, so view as (B, T, H, d_head), not (B, T, d_head, H)",
                lambda t, H: t.view(t.shape[0], t.shape[1], -1, H).permute(0, 3, 1, 2)),
        Mistake("you forgot the transpose: (B, T, H, d_head) must become (B, H, T, d_head)",
                lambda t, H: t.view(t.shape[0], t.shape[1], H, -1)),
        Mistake("the heads come out in reverse order: head 0 owns the FIRST d_head features",
                lambda t, H: _split(t, H).flip(1)),
    ], reference=_split, layout="(B, n_heads, T, d_head)"))
def check_split_heads(fn):
    """Check fn(t, n_heads): (B, T, n_heads * d_head) -> (B, n_heads, T, d_head)."""


def _merge_cases():
    cases = []
    for B, H, T, dh in ((2, 3, 5, 4), (1, 2, 4, 3)):
        t = torch.arange(B * H * T * dh, dtype=torch.float32).reshape(B, H, T, dh)
        cases.append(Case(f"B={B}, {H} heads, T={T}, d_head={dh}", (t,), _merge(t)))
    return cases


@checker(TensorSpec(
    "merge heads", _merge_cases, [
        Mistake("wrong reshape: reshaping (B, H, T, d_head) straight to (B, T, H*d_head) mixes "
                "positions; transpose(1, 2) first, then reshape",
                lambda t: t.reshape(t.shape[0], t.shape[2], -1)),
        Mistake("the heads are concatenated feature-major (interleaved): put each head's d_head "
                "features in one contiguous block (transpose(1, 2) then reshape)",
                lambda t: t.permute(0, 2, 3, 1).reshape(t.shape[0], t.shape[2], -1)),
        Mistake("the heads are concatenated in the wrong order: head 0's features come first, "
                "then head 1's, ... (torch.cat(t.unbind(1), dim=-1))",
                lambda t: _merge(t.flip(1))),
    ], reference=_merge, layout="(B, T, n_heads * d_head)"))
def check_merge_heads(fn):
    """Check fn(t): (B, n_heads, T, d_head) -> (B, T, n_heads * d_head), heads side by side."""


def _per_head(x, W_Q, W_K, W_V, W_O, **kw):
    return torch.stack([head_change(x, W_Q[h], W_K[h], W_V[h], W_O[h], **kw)
                        for h in range(W_Q.shape[0])])


def _multihead(x, W_Q, W_K, W_V, W_O):
    return _per_head(x, W_Q, W_K, W_V, W_O).sum(0)


def _multihead_cases():
    cases = []
    for name, (B, T, d, H, dh), seed in (("2 sentences, 3 heads of 5", (2, 5, 8, 3, 5), 80),
                                         ("1 sentence of 6, 2 heads of 3", (1, 6, 10, 2, 3), 90)):
        x = randn(B, T, d, seed=seed)
        W = [randn(H, d, dh, seed=seed + 1 + i) / math.sqrt(d) for i in range(3)]
        W.append(randn(H, dh, d, seed=seed + 4) / 2)
        cases.append(Case(name, (x, *W), _multihead(x, *W)))
    return cases


@checker(TensorSpec(
    "multi-head attention", _multihead_cases, [
        Mistake("no causal mask", lambda x, *W: _per_head(x, *W, diagonal=None).sum(0),
                shows="no causal mask is applied"),
        Mistake("leak by one", lambda x, *W: _per_head(x, *W, diagonal=1).sum(0),
                shows="leak by one"),
        Mistake("you averaged the heads; their changes are summed (the output matrix adds them up)",
                lambda x, *W: _per_head(x, *W).mean(0)),
        Mistake("you scaled by sqrt(d_model); each head scales by 1/sqrt(d_head)",
                lambda x, *W: _per_head(x, *W, scale=1 / math.sqrt(x.shape[-1])).sum(0)),
        Mistake("the scores are not scaled: each head divides q @ k^T by sqrt(d_head)",
                lambda x, *W: _per_head(x, *W, scale=1.0).sum(0)),
        Mistake("you returned x + output; return the block's output only",
                lambda x, *W: x + _multihead(x, *W)),
        Mistake("you returned one head only; sum the changes of all heads",
                lambda x, *W: _per_head(x, *W)[0]),
        Mistake("W_Q and W_K are swapped: queries are x @ W_Q, keys are x @ W_K",
                lambda x, *W: _per_head(x, *W, swap=True).sum(0)),
    ], causal=Causal(arg=0, dim=-2, out_dim=-2), reference=_multihead, layout="(B, T, d_model)",
    hint="give the heads their own axis: q = einsum('btd,hde->bhte', x, W_Q)"))
def check_multihead(fn):
    """Check fn(x, W_Q, W_K, W_V, W_O) -> causal multi-head attention's output (..., T, d_model)."""


# --------------------------------------------------------------------------- ablation


def _head_changes(block, x):
    """Each head's change (n_heads, B, T, d_model) and out_proj's bias (or 0), in float64,
    computed from the module's parameters for its causal output on x (B, T, d_model)."""
    with torch.no_grad():
        xd = x.double()
        B, T, _ = x.shape
        H, dh = block.n_heads, block.d_head

        qkv = block.qkv_proj  # W_Q, W_K and W_V of every head, stacked: one product
        y = xd @ qkv.weight.double().T
        y = y if qkv.bias is None else y + qkv.bias.double()
        q, k, v = (t.view(B, T, H, dh).transpose(1, 2) for t in y.split(H * dh, dim=-1))
        o = attention(q, k, v, is_causal=True)  # (B, H, T, d_head)
        per_head = torch.einsum("bhte,hed->hbtd", o, block.W_O.double())
        bias = 0.0 if block.out_proj.bias is None else block.out_proj.bias.double()
    return per_head, bias


def _ablated(block, x, h):
    per_head, bias = _head_changes(block, x)
    return (per_head.sum(0) - per_head[h] + bias).to(x.dtype)


def _edited(block, x, edit, *, causal=True):
    """The output of a copy of ``block`` changed by ``edit(copy)``; ``block`` stays as it is."""
    twin = copy.deepcopy(block)
    with torch.no_grad():
        edit(twin)
        return twin(x, is_causal=causal)


def _zero_features(linear, h, dh, *, rows=True, bias=False, offset=0):
    """Zero head h's features of ``linear``: its rows (outputs) or columns (inputs); ``offset``
    is the first row of the part (W_Q, W_K or W_V) of a fused projection."""
    lo, hi = offset + h * dh, offset + (h + 1) * dh
    with torch.no_grad():
        if rows:
            linear.weight[lo:hi] = 0
        else:
            linear.weight[:, lo:hi] = 0
        if bias and linear.bias is not None:
            linear.bias[lo:hi] = 0


def _zero_input_side(m, part, h, *, bias=False):
    """Zero head h's rows of W_Q (part 0), W_K (1) or W_V (2) inside m's fused qkv_proj."""
    _zero_features(m.qkv_proj, h, m.d_head, bias=bias, offset=part * m.n_heads * m.d_head)


def _switch_off(block, x, h, causal=True):
    return _edited(block, x, lambda m: _zero_features(m.out_proj, h, m.d_head, rows=False),
                   causal=causal)


NEIGHBOUR = ("you switched off a neighbour of head h (h + 1 or h - 1): heads count from 0, and head "
             "h owns block.W_O[h], the input columns h*d_head:(h+1)*d_head of out_proj")
INPUT_SIDE = ("you zeroed head h's W_Q or W_K (the input side): its scores become constant, its "
              "pattern uniform, and it still writes the average of its values. Switch off what "
              "the head writes: block.W_O[h], its slice of out_proj's input")
ONLY_HEAD = ("you returned head h's own change: the exercise asks for the rest, the block's "
             "output without head h (output minus head h's change)")

ABLATION_MISTAKES = [
    Mistake(NEIGHBOUR, lambda b, x, h: _ablated(b, x, (h + 1) % b.n_heads)),
    Mistake(NEIGHBOUR, lambda b, x, h: _ablated(b, x, (h - 1) % b.n_heads)),
    Mistake("you zeroed ROWS h*d_head:(h+1)*d_head of out_proj.weight: those are output "
            "features, directions of the embedding space that every head writes to. nn.Linear "
            "stores (out, in): head h's value-up is the COLUMNS h*d_head:(h+1)*d_head (block.W_O[h])",
            lambda b, x, h: _edited(b, x, lambda m: _zero_features(m.out_proj, h, m.d_head))),
    Mistake(INPUT_SIDE, lambda b, x, h: _edited(b, x, lambda m: _zero_input_side(m, 0, h, bias=True))),
    Mistake(INPUT_SIDE, lambda b, x, h: _edited(b, x, lambda m: _zero_input_side(m, 1, h, bias=True))),
    Mistake(INPUT_SIDE, lambda b, x, h: _edited(b, x, lambda m: _zero_input_side(m, 0, h))),
    Mistake("head h still writes its value bias: you zeroed its value-down W_V but not its value "
            "bias (its slice of the last third of qkv_proj.bias), and since each pattern row sums "
            "to 1 the head still adds its bias times W_O[h]. Zero what the head writes instead: "
            "block.W_O[h] (out_proj's input columns)",
            lambda b, x, h: _edited(b, x, lambda m: _zero_input_side(m, 2, h))),
    Mistake("you rescaled the other heads by n_heads / (n_heads - 1): switching a head off "
            "removes its change and leaves the others exactly as they were; the block adds the "
            "heads' changes, it does not average them",
            lambda b, x, h: (_switch_off(b, x, h) * b.n_heads / (b.n_heads - 1))),
    Mistake("out_proj's bias is missing: it belongs to the block, not to head h, and stays when "
            "a head is switched off. Remove head h's change only",
            lambda b, x, h: (_ablated(b, x, h).double() - _head_changes(b, x)[1]).to(x.dtype)),
    Mistake(ONLY_HEAD, lambda b, x, h: _head_changes(b, x)[0][h].to(x.dtype)),
    Mistake(ONLY_HEAD, lambda b, x, h: (_head_changes(b, x)[0][h] + _head_changes(b, x)[1])
            .to(x.dtype)),
    Mistake("your output still contains head h's change: nothing was switched off (did you edit "
            "a copy of the weights that the block does not use?)",
            lambda b, x, h: _edited(b, x, lambda m: None)),
    Mistake("you ran the block without is_causal=True: this chapter's block is causal, so pass "
            "is_causal=True as the chapter does",
            lambda b, x, h: _switch_off(b, x, h, causal=False)),
    Mistake("you returned x + output: return the block's output only (the residual stream adds "
            "it to x outside the block)", lambda b, x, h: x + _ablated(b, x, h)),
]


def _module(d_model, n_heads, d_head, bias, seed):
    """A MultiHeadAttention with seeded weights (the same on every machine)."""
    block = MultiHeadAttention(d_model, n_heads, d_head, bias=bias).eval()
    with torch.no_grad():
        for i, (name, p) in enumerate(sorted(block.named_parameters())):
            scale = 0.5 if name.endswith("bias") else 1.5 / math.sqrt(p.shape[-1])
            p.copy_(randn(*p.shape, seed=seed + i) * scale)
    return block


def _ablation_cases():
    cases = []
    for (d, H, dh, bias, B, T, seed), heads in (((12, 3, 5, False, 2, 5, 100), (1, 0, 2)),
                                                ((8, 2, 3, True, 2, 6, 110), (0, 1)),
                                                ((16, 4, 3, True, 3, 4, 120), (2, 0, 1, 3))):
        block = _module(d, H, dh, bias, seed)
        x = randn(B, T, d, seed=seed + 9)
        kind = "with biases" if bias else "no biases"
        for h in heads:
            cases.append(Case(f"{H} heads of {dh}, {kind}, batch {B}: head {h} off",
                              (block, x, h), _ablated(block, x, h)))
    return cases


@checker(TensorSpec(
    "head ablation", _ablation_cases, ABLATION_MISTAKES, causal=Causal(arg=1, dim=-2, out_dim=-2),
    reference=_ablated, layout="(B, T, d_model)",
    hint="ablate_head(block, x, h): the block's causal output on x without head h's change"))
def check_ablation(fn):
    """Check fn(block, x, h) -> block's causal output with head h switched off, block unchanged."""


@checker(NumberSpec(
    "attention parameter count", [
        ("d_model=64, n_heads=4, d_head=16, n_layers=2", (64, 4, 16, 2), {}),
        ("d_model=48, n_heads=3, d_head=10, n_layers=5", (48, 3, 10, 5), {}),
        ("d_model=12288, n_heads=96, d_head=128, n_layers=96", (12288, 96, 128, 96), {}),
    ], lambda d, H, dh, L: 4 * d * H * dh * L, [
        Mistake("that is one block; multiply by the number of layers",
                lambda d, H, dh, L: 4 * d * H * dh),
        Mistake("you counted one head per layer; multiply by n_heads",
                lambda d, H, dh, L: 4 * d * dh * L),
        Mistake("you counted three matrices per head; there are four (W_Q, W_K, value-down, "
                "value-up)", lambda d, H, dh, L: 3 * d * H * dh * L),
        Mistake("you assumed n_heads x d_head = d_model (true for GPT-3, not here); count "
                "d_model x d_head per matrix per head", lambda d, H, dh, L: 4 * d * d * L),
        Mistake("that is one head of one layer", lambda d, H, dh, L: 4 * d * dh),
    ]))
def check_param_count(fn):
    """Check fn(d_model, n_heads, d_head, n_layers) -> attention parameters of a model (no biases)."""
