"""Checkers for chapter 8 (cross-attention): the padding mask of a context, cross-attention
itself, and the alignment accuracy of a trained pattern.

Conventions: queries come from x (B, T_q, d_model), keys and values from a context
(B, T_k, d_context) padded to T_k with real lengths ``context_len`` (B,); True = may attend.
"""

from __future__ import annotations

import math

import torch

from ..attention import attention, padding_mask
from ._core import (
    Case,
    Mistake,
    NumberSpec,
    TensorSpec,
    call,
    case,
    checker,
    fail,
    randn,
    run_check,
    tensor_output,
)

__all__ = ["check_cross_attention", "check_cross_attention_mask", "check_alignment_accuracy"]

INF = float("inf")


def _cross(x, c, w_q, w_k, w_v, lengths, *, causal=False, flip=False, pad=True, dim=-1,
           scale=True, swap=False):
    """Cross-attention in float64 with one deliberate mistake (the mistakes below)."""
    dtype = x.dtype
    x, c, w_q, w_k, w_v = (t.double() for t in (x, c, w_q, w_k, w_v))
    if swap:
        q, k, v = c @ w_q, x @ w_k, x @ w_v
    else:
        q, k, v = x @ w_q, c @ w_k, c @ w_v
    s = q @ k.transpose(-2, -1)
    if scale:
        s = s / math.sqrt(q.shape[-1])
    if pad and not swap:
        keep = torch.arange(c.shape[1])[None, None, :] < lengths[:, None, None]  # (B, 1, T_k)
        s = s.masked_fill(keep if flip else ~keep, -INF)
    if causal:
        T_q, T_k = s.shape[-2:]
        s = s.masked_fill(~torch.ones(T_q, T_k, dtype=torch.bool).tril(T_k - T_q), -INF)
    return torch.softmax(s, dim=dim).nan_to_num(0.0).to(dtype) @ v.to(dtype)


def _reference(x, context, w_q, w_k, w_v, context_len):
    m = padding_mask(context_len, context.shape[1])[:, 0]  # (B, 1, T_k)
    return attention(x @ w_q, context @ w_k, context @ w_v, m)


def _cross_cases():
    cases = []
    for name, (B, T_q, T_k, d, d_c, dh), lengths, seed in (
            ("T_q=4 queries, T_k=6 keys, lengths [6, 3]", (2, 4, 6, 8, 8, 4), [6, 3], 90),
            ("context of width 10 for queries of width 6, lengths [2, 5, 4]",
             (3, 3, 5, 6, 10, 5), [2, 5, 4], 100)):
        x, c = randn(B, T_q, d, seed=seed), randn(B, T_k, d_c, seed=seed + 1)
        w_q = randn(d, dh, seed=seed + 2) / math.sqrt(d)
        w_k, w_v = (randn(d_c, dh, seed=seed + 3 + i) / math.sqrt(d_c) for i in range(2))
        args = (x, c, w_q, w_k, w_v, torch.tensor(lengths))
        cases.append(Case(name, args, _reference(*args)))
    return cases


@checker(TensorSpec(
    "cross-attention", _cross_cases, [
        Mistake("you applied a causal mask; cross-attention has none: every target position may "
                "look at the whole source", lambda *a: _cross(*a, causal=True)),
        Mistake("padding is attended: block the context positions >= context_len",
                lambda *a: _cross(*a, pad=False)),
        Mistake("the mask is flipped: True must mean 'may attend' (a real token), so padding is "
                "False", lambda *a: _cross(*a, flip=True)),
        Mistake("the scores are not scaled by 1/sqrt(d_head)", lambda *a: _cross(*a, scale=False)),
        Mistake("the softmax runs over the queries; each query's weights over the keys must sum "
                "to 1", lambda *a: _cross(*a, dim=-2)),
        Mistake("the query and key sources are swapped: queries come from x (the target), keys "
                "and values from the context", lambda *a: _cross(*a, swap=True)),
        Mistake("the keys come from x; queries come from x, keys AND values from context",
                lambda x, c, wq, wk, wv, n: _cross(x, x, wq, wk, wv, n, pad=False),
                when=lambda x, c, wq, wk, wv, n: wk.shape[0] == x.shape[-1]),
    ], reference=_reference, layout="(B, T_q, d_head)",
    hint="queries come from x, keys AND values from context (another length, maybe another "
         "width): q = x @ w_q, k = context @ w_k, v = context @ w_v"))
def check_cross_attention(fn):
    """Check fn(x, context, w_q, w_k, w_v, context_len) -> cross-attention output (B, T_q, d_head)."""


def check_cross_attention_mask(fn):
    """Check fn(context_len, T_q, T_k) -> a bool mask broadcastable to (B, 1, T_q, T_k)."""

    def body():
        cases = [(torch.tensor([5, 2, 4]), 3, 5), (torch.tensor([1, 6]), 7, 6)]
        for lengths, T_q, T_k in cases:
            with case(f"lengths {lengths.tolist()}, T_q={T_q}, T_k={T_k}"):
                B = len(lengths)
                out = tensor_output(call(fn, lengths, T_q, T_k), what="your mask function")
                if out.is_floating_point():
                    fail("you returned a float mask; a float mask is ADDED to the scores (0/1 "
                         "blocks nothing). Return a bool tensor, e.g. positions < lengths")
                if out.dtype != torch.bool:
                    fail(f"return a bool tensor (True = may attend), got dtype {out.dtype}")
                if out.ndim != 4 or out.shape[0] != B or out.shape[1] != 1 or \
                        out.shape[2] not in (1, T_q) or out.shape[3] != T_k:
                    fail(f"expected shape ({B}, 1, 1, {T_k}) or ({B}, 1, {T_q}, {T_k}) (batch, "
                         f"head, query, key), got {tuple(out.shape)}")
                got = out.expand(B, 1, T_q, T_k)
                want = padding_mask(lengths, T_k).expand(B, 1, T_q, T_k)
                if torch.equal(got, want):
                    continue
                causal = torch.ones(T_q, T_k, dtype=torch.bool).tril(T_k - T_q)
                pos = torch.arange(T_k)
                for wrong, msg in (
                    (~want, "the mask is flipped: True means 'may attend', so real tokens are True"),
                    (want & causal, "you added a causal mask; cross-attention needs only the "
                                    "padding mask"),
                    ((pos <= lengths[:, None])[:, None, None, :].expand(B, 1, T_q, T_k),
                     "off by one: positions 0 .. length-1 are real, so use `<`, not `<=`"),
                    ((pos < lengths[:, None] - 1)[:, None, None, :].expand(B, 1, T_q, T_k),
                     "off by one: the last real token (position length - 1) is masked; use "
                     "position < length"),
                    ((torch.arange(T_q)[None, :] < lengths[:, None])[:, None, :, None]
                     .expand(B, 1, T_q, T_k),
                     "you masked query positions; the padding to hide is in the keys (the last "
                     "axis)"),
                ):
                    if torch.equal(got, wrong):
                        fail(msg)
                fail("the mask is wrong: True where the key position < context_len[b]")
        return 2

    return run_check("cross-attention mask", body)


# --------------------------------------------------------------------------- alignment accuracy


def _alignment_cases():
    out = []
    for label, (B, T_q, T_k), seed, unscored, moved in (
            ("2 sentences of 5 x 5", (2, 5, 5), 100, [(0, 4), (1, 3), (1, 4)], [(0, 1), (1, 2)]),
            ("3 sentences of 4 x 4", (3, 4, 4), 110, [(2, 3)],
             [(0, 0), (1, 2), (2, 1), (0, 3)])):
        pattern = torch.softmax(randn(B, T_q, T_k, seed=seed) * 3, dim=-1)
        best = pattern.argmax(-1)
        align = best.clone()
        for i, (b, t) in enumerate(moved):
            align[b, t] = (best[b, t] + 1 + i) % T_k
        for b, t in unscored:
            align[b, t] = -1
        out.append((label, (pattern, align), {}))
    return out


def _accuracy(pattern, align, dim=-1, every=False, misses=False):
    scored = align >= 0
    hits = (pattern.argmax(dim) == align) & scored
    frac = hits.sum().item() / (align.numel() if every else scored.sum().item())
    return 1 - frac if misses else frac


@checker(NumberSpec(
    "alignment accuracy", _alignment_cases(), _accuracy, [
        Mistake("you divided by every row; rows marked -1 (the <eos> row, padding) are not scored",
                lambda p, a: _accuracy(p, a, every=True)),
        Mistake("you took the argmax over the queries (dim=1); each query row picks its strongest "
                "key: dim=-1", lambda p, a: _accuracy(p, a, dim=1)),
        Mistake("you counted the misses instead of the hits", lambda p, a: _accuracy(p, a,
                                                                                      misses=True)),
    ], integral=False, rel=1e-6))
def check_alignment_accuracy(fn):
    """Check fn(pattern, align) -> the fraction of scored rows whose strongest key is the aligned one."""
