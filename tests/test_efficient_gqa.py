"""Grouped-query and multi-query attention in efficient.tiled_attention(enable_gqa=True): against
SDPA(enable_gqa=True), against tiled_attention on repeated k/v heads, gradients, the slow-memory
counts of the key/value heads, and the errors."""

from __future__ import annotations

import math
import sys

import pytest
import torch
import torch.nn.functional as F

from attnlib import MultiHeadAttention, attention
from attnlib import efficient as E

A = sys.modules["attnlib.attention"]  # the module (attnlib.attention is the function)
HAS_GQA = A._SDPA_GQA


def inputs(H=6, H_kv=2, T_q=5, T_k=7, d=4, d_v=3, B=2, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, H, T_q, d, generator=g, dtype=dtype)
    k = torch.randn(B, H_kv, T_k, d, generator=g, dtype=dtype)
    v = torch.randn(B, H_kv, T_k, d_v, generator=g, dtype=dtype)
    return q, k, v


def rep(t, n):  # the independent reference: torch's repeat_interleave over the head dim
    return t.repeat_interleave(n, dim=-3)


def _masks(H, T_q, T_k):
    g = torch.Generator().manual_seed(3)
    return {
        "none": None,
        "2d": torch.rand(T_q, T_k, generator=g) > 0.4,
        "per-head": torch.rand(2, H, T_q, T_k, generator=g) > 0.5,
        "broadcast-head": torch.rand(2, 1, T_q, T_k, generator=g) > 0.3,
        "3d-per-head": torch.rand(H, T_q, T_k, generator=g) > 0.5,
    }


HEADS = [(6, 2), (6, 1), (4, 2), (6, 6)]
SIZES = [(5, 7), (7, 7), (7, 5), (1, 9)]


@pytest.mark.parametrize("H,H_kv", HEADS, ids=["gqa", "mqa", "gqa-4-2", "mha"])
@pytest.mark.parametrize("T_q,T_k", SIZES)
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("mask_name", list(_masks(6, 5, 7)))
@pytest.mark.parametrize("bq,bk", [(None, 3), (2, 3), (4, 4)])
def test_tiled_gqa_equals_repeated_heads_and_explicit(H, H_kv, T_q, T_k, causal, mask_name, bq, bk):
    q, k, v = inputs(H, H_kv, T_q, T_k)
    mask = _masks(H, T_q, T_k)[mask_name]
    n = H // H_kv
    got = E.tiled_attention(q, k, v, mask, is_causal=causal, block_q=bq, block_k=bk, enable_gqa=True)
    on_repeated = E.tiled_attention(q, rep(k, n), rep(v, n), mask, is_causal=causal, block_q=bq, block_k=bk)
    explicit = attention(q, k, v, mask, is_causal=causal, enable_gqa=True, return_weights=True)[0]
    assert got.shape == (2, H, T_q, 3) and got.dtype == torch.float64
    torch.testing.assert_close(got, on_repeated, atol=1e-13, rtol=1e-13)
    torch.testing.assert_close(got, explicit, atol=1e-12, rtol=1e-12)


@pytest.mark.skipif(not HAS_GQA, reason="this torch's SDPA has no enable_gqa (torch < 2.5)")
@pytest.mark.parametrize("H,H_kv", [(8, 2), (8, 1), (6, 3)])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("with_mask", [False, True])
def test_tiled_gqa_equals_sdpa_enable_gqa(H, H_kv, causal, with_mask):
    q, k, v = inputs(H, H_kv, T_q=9, T_k=9, dtype=torch.float32)
    mask = torch.rand(2, 1, 9, 9, generator=torch.Generator().manual_seed(5)) > 0.3 if with_mask else None
    kw = {"enable_gqa": True}  # a dict: the test module must import on torch < 2.5 too
    sdpa_mask = mask
    if causal and mask is not None:  # square: SDPA's own causal (top-left) equals attnlib's here
        sdpa_mask = mask & torch.ones(9, 9, dtype=torch.bool).tril()
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=sdpa_mask,
                                         is_causal=causal and mask is None, **kw)
    keep = None if sdpa_mask is None else sdpa_mask.any(-1, keepdim=True)  # rows with a key
    got = E.tiled_attention(q, k, v, mask, is_causal=causal, block_q=4, block_k=2, enable_gqa=True)
    if keep is not None:  # SDPA gives NaN on a row with no key; attnlib gives zeros
        assert torch.equal(got * ~keep, torch.zeros_like(got))
        ref, got = ref * keep, got * keep
    torch.testing.assert_close(got, ref, atol=2e-6, rtol=2e-6)


@pytest.mark.parametrize("causal", [False, True])
def test_tiled_gqa_gradcheck_float64(causal):
    q, k, v = (t.requires_grad_(True) for t in inputs(4, 2, T_q=3, T_k=5, d=3, d_v=2, B=1))
    mask = torch.tensor([[True, False, True, True, False]] * 3)
    mask[2] = False  # one query with no key: a zero output and a zero gradient

    def f(q, k, v):
        return E.tiled_attention(q, k, v, mask, is_causal=causal, block_q=2, block_k=2, enable_gqa=True)

    assert torch.autograd.gradcheck(f, (q, k, v))


def test_tiled_gqa_gradients_equal_repeated_heads():
    q, k, v = (t.requires_grad_(True) for t in inputs(6, 2, T_q=6, T_k=6))
    E.tiled_attention(q, k, v, is_causal=True, block_q=2, block_k=4, enable_gqa=True).sum().backward()
    grads = [t.grad.clone() for t in (q, k, v)]
    for t in (q, k, v):
        t.grad = None
    E.tiled_attention(q, rep(k, 3), rep(v, 3), is_causal=True, block_q=2, block_k=4).sum().backward()
    for got, want in zip(grads, (q.grad, k.grad, v.grad), strict=True):
        torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("H,H_kv", [(6, 2), (8, 1), (4, 4)])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("bq,bk", [(4, 4), (3, 5), (None, 8)])
def test_tiled_gqa_stats_count_each_kv_tile_once_per_group(H, H_kv, causal, bq, bk):
    """k_reads and v_reads count the B * H_kv key/value heads: those of the repeated-heads run
    divided by the group size G = H / H_kv; everything else is the same."""
    B, T, d, d_v = 2, 12, 4, 3
    q, k, v = inputs(H, H_kv, T, T, d, d_v, B)
    G = H // H_kv
    _, st = E.tiled_attention(q, k, v, is_causal=causal, block_q=bq, block_k=bk, enable_gqa=True,
                              return_stats=True)
    _, full = E.tiled_attention(q, rep(k, G), rep(v, G), is_causal=causal, block_q=bq, block_k=bk,
                                return_stats=True)
    assert (st.k_reads * G, st.v_reads * G) == (full.k_reads, full.v_reads)
    assert (st.q_reads, st.out_writes, st.tiles_computed, st.tiles_skipped) == (
        full.q_reads, full.out_writes, full.tiles_computed, full.tiles_skipped)
    # the closed form: N_kv (d + d_v) * (keys of every computed pair), N_kv = B * H_kv
    b_q = T if bq is None else bq
    keys = sum(min(ks + bk, T) - ks for qs in range(0, T, b_q) for ks in range(0, T, bk)
               if not (causal and ks > min(qs + b_q, T) - 1))
    assert st.k_reads == B * H_kv * d * keys and st.v_reads == B * H_kv * d_v * keys
    assert st.q_reads == B * H * T * d and st.out_writes == B * H * T * d_v
    if not causal:  # reads = N T d + N_kv ceil(T / block_q) T (d + d_v)
        assert st.reads == B * H * T * d + B * H_kv * math.ceil(T / b_q) * T * (d + d_v)


def test_tiled_gqa_mask_reads_are_the_stored_mask():
    q, k, v = inputs(6, 2, T_q=8, T_k=8)
    for mask in (torch.ones(8, 8, dtype=torch.bool), torch.ones(2, 6, 8, 8, dtype=torch.bool)):
        _, st = E.tiled_attention(q, k, v, mask, block_q=4, block_k=4, enable_gqa=True, return_stats=True)
        assert st.mask_reads == mask.numel()


def test_tiled_gqa_float32_inputs_and_half():
    q, k, v = inputs(6, 3, T_q=5, T_k=5, dtype=torch.float32)
    ref = attention(q, k, v, is_causal=True, enable_gqa=True, return_weights=True)[0]
    torch.testing.assert_close(E.tiled_attention(q, k, v, is_causal=True, block_k=2, enable_gqa=True), ref,
                               atol=1e-6, rtol=1e-6)
    out = E.tiled_attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), is_causal=True, enable_gqa=True)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), ref, atol=2e-2, rtol=2e-2)


def test_tiled_without_enable_gqa_is_unchanged_for_equal_heads():
    q, k, v = inputs(4, 4)
    a = E.tiled_attention(q, k, v, is_causal=True, block_q=2, block_k=3)
    b = E.tiled_attention(q, k, v, is_causal=True, block_q=2, block_k=3, enable_gqa=True)
    assert torch.equal(a, b)


@pytest.mark.parametrize("shapes,kw,exc,msg", [
    (((2, 6, 5, 4), (2, 4, 7, 4), (2, 4, 7, 3)), {"enable_gqa": True}, ValueError,
     r"tiled_attention: with enable_gqa, the key/value heads \(dim -3 of k and v\) must divide the 6 query "
     r"heads \(dim -3 of q\), got 4 key/value heads: q \(2, 6, 5, 4\), k \(2, 4, 7, 4\), v \(2, 4, 7, 3\)"),
    (((2, 6, 5, 4), (2, 2, 7, 4), (2, 3, 7, 3)), {"enable_gqa": True}, ValueError,
     r"tiled_attention: with enable_gqa, k and v must have the same dims as q except the head dim"),
    (((3, 6, 5, 4), (2, 2, 7, 4), (2, 2, 7, 3)), {"enable_gqa": True}, ValueError,
     r"tiled_attention: with enable_gqa, k and v must have the same dims as q except the head dim"),
    (((5, 4), (7, 4), (7, 3)), {"enable_gqa": True}, ValueError,
     r"tiled_attention: enable_gqa needs a head dim: q, k, v of shape \(\.\.\., H, T, d\)"),
    (((2, 6, 5, 4), (2, 2, 7, 4), (2, 2, 7, 3)), {}, ValueError,
     r"tiled_attention: q, k and v must have the same batch dims"),
    (((2, 6, 5, 4), (2, 2, 7, 4), (2, 2, 7, 3)), {"enable_gqa": 1}, TypeError,
     r"tiled_attention: enable_gqa must be True or False, got 1"),
], ids=["not-a-divisor", "k-v-heads-differ", "batch-differs", "no-head-dim", "flag-off", "flag-not-bool"])
def test_tiled_gqa_bad_input(shapes, kw, exc, msg):
    q, k, v = (torch.randn(*s) for s in shapes)
    with pytest.raises(exc, match=msg):
        E.tiled_attention(q, k, v, **kw)


def test_attention_gqa_not_a_divisor_message():
    q, k, v = (torch.randn(*s) for s in ((2, 6, 5, 4), (2, 4, 7, 4), (2, 4, 7, 3)))
    with pytest.raises(ValueError, match=r"attention: with enable_gqa, the key/value heads \(dim -3 of k and v\) "
                                         r"must divide the 6 query heads \(dim -3 of q\), got 4"):
        attention(q, k, v, enable_gqa=True)


def test_multihead_gqa_output_is_tiled_gqa_of_its_projections():
    """MultiHeadAttention(n_kv_heads=2) equals its own projections through tiled_attention(enable_gqa)."""
    torch.manual_seed(0)
    m = MultiHeadAttention(16, 4, n_kv_heads=2).double().eval()
    x = torch.randn(2, 6, 16, dtype=torch.float64)
    q, k, v = m._project(x, None)
    q, k, v = (t.view(2, 6, h, 4).transpose(1, 2) for t, h in ((q, 4), (k, 2), (v, 2)))  # (B, H, T, dh)
    o = E.tiled_attention(q, k, v, is_causal=True, block_q=2, block_k=2, enable_gqa=True)
    want = m.out_proj(o.transpose(1, 2).reshape(2, 6, 16))
    torch.testing.assert_close(m(x, is_causal=True), want, atol=1e-12, rtol=1e-12)
