"""Property-based tests (hypothesis): random shapes, random boolean masks (fully masked rows
included) and the causal flag. Both paths must agree with each other and with a float64 reference
that handles empty rows, and the weight rows must sum to 1 (or 0 for a row with no key)."""

from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from attnlib import attention


def reference(q, k, v, allowed):
    """float64 softmax(q k^T / sqrt(d)) v over the allowed keys; a row with none gives zeros."""
    q, k, v = q.double(), k.double(), v.double()
    scores = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).masked_fill(~allowed, float("-inf"))
    empty = ~allowed.any(-1, keepdim=True)
    scores = scores.masked_fill(empty, 0.0)
    w = torch.softmax(scores, -1).masked_fill(empty, 0.0)
    return w @ v, w


@st.composite
def cases(draw):
    batch = tuple(draw(st.lists(st.integers(1, 3), min_size=0, max_size=2)))
    T_q, T_k = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    d, d_v = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    seed = draw(st.integers(0, 2**31 - 1))
    use_mask = draw(st.booleans())
    # the mask's shape: full, or broadcast over the batch dims, or a key-padding row
    mask_kind = draw(st.sampled_from(["full", "T_q,T_k", "keys"]))
    p_block = draw(st.sampled_from([0.0, 0.3, 0.7, 1.0]))
    is_causal = draw(st.booleans())
    return batch, T_q, T_k, d, d_v, seed, use_mask, mask_kind, p_block, is_causal


@settings(max_examples=50, deadline=None)
@given(cases())
def test_paths_agree_with_each_other_and_with_float64(case):
    batch, T_q, T_k, d, d_v, seed, use_mask, mask_kind, p_block, is_causal = case
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(*batch, T_q, d, generator=g)
    k = torch.randn(*batch, T_k, d, generator=g)
    v = torch.randn(*batch, T_k, d_v, generator=g)
    mask = None
    allowed = torch.ones(*batch, T_q, T_k, dtype=torch.bool)
    if use_mask:
        shape = {"full": (*batch, T_q, T_k), "T_q,T_k": (T_q, T_k), "keys": (*batch[:1], *([1] * len(batch[1:])),
                                                                           1, T_k)}[mask_kind]
        mask = torch.rand(shape, generator=g) >= p_block  # p_block = 1.0: every row fully masked
        allowed = allowed & mask
    if is_causal:
        allowed = allowed & torch.ones(T_q, T_k, dtype=torch.bool).tril(T_k - T_q)

    fast = attention(q, k, v, mask, is_causal=is_causal)
    explicit, w = attention(q, k, v, mask, is_causal=is_causal, return_weights=True)
    ref_out, ref_w = reference(q, k, v, allowed)

    assert fast.shape == explicit.shape == (*batch, T_q, d_v)
    assert w.shape == (*batch, T_q, T_k)
    assert torch.isfinite(fast).all() and torch.isfinite(explicit).all()
    torch.testing.assert_close(fast, explicit, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fast.double(), ref_out, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(w.double(), ref_w, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(w.sum(-1), allowed.any(-1).float(), atol=1e-5, rtol=0)
    assert (w[~allowed] == 0).all()
    empty = ~allowed.any(-1)
    assert (fast[empty] == 0).all() and (explicit[empty] == 0).all()


@settings(max_examples=25, deadline=None)
@given(cases())
def test_gradients_finite_and_equal_on_both_paths(case):
    batch, T_q, T_k, d, d_v, seed, use_mask, mask_kind, p_block, is_causal = case
    g = torch.Generator().manual_seed(seed)
    base = [torch.randn(*batch, T, w, generator=g) for T, w in ((T_q, d), (T_k, d), (T_k, d_v))]
    mask = (torch.rand(*batch, T_q, T_k, generator=g) >= p_block) if use_mask else None
    grads = []
    for explicit in (False, True):
        q, k, v = (t.clone().requires_grad_(True) for t in base)
        res = attention(q, k, v, mask, is_causal=is_causal, return_weights=explicit)
        out = res[0] if explicit else res
        (out * torch.linspace(-1, 1, out.numel()).view(out.shape)).sum().backward()
        grads.append([q.grad, k.grad, v.grad])
    for a, b in zip(*grads, strict=True):
        assert torch.isfinite(a).all() and torch.isfinite(b).all()
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
