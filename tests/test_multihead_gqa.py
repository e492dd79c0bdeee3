"""Grouped-query and multi-query attention: attention(enable_gqa=True), MultiHeadAttention(n_kv_heads=)
and DecoderConfig(n_kv_heads=), against PyTorch's SDPA(enable_gqa=True) and against repeating the KV heads."""

from __future__ import annotations

import sys

import pytest
import torch
import torch.nn.functional as F

import attnlib
from attnlib import Decoder, DecoderConfig, KVCache, MultiHeadAttention, attention, count_parameters
from attnlib import efficient as E

A = sys.modules["attnlib.attention"]  # the module (attnlib.attention is the function)
PATHS = [pytest.param(False, id="fast"), pytest.param(True, id="explicit")]
HAS_GQA = A._SDPA_GQA


def gqa_inputs(H=6, H_kv=2, T_q=5, T_k=7, d=4, d_v=3, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(2, H, T_q, d, generator=g, dtype=dtype)
    k = torch.randn(2, H_kv, T_k, d, generator=g, dtype=dtype)
    v = torch.randn(2, H_kv, T_k, d_v, generator=g, dtype=dtype)
    return q, k, v


def repeated(t, n_rep):  # the independent reference: torch's own repeat_interleave over the head dim
    return t.repeat_interleave(n_rep, dim=-3)


def run(q, k, v, explicit, **kw):
    res = attention(q, k, v, return_weights=explicit, enable_gqa=True, **kw)
    return res[0] if explicit else res


MASKS = {
    "none": {},
    "causal": {"is_causal": True},
    "bool": {"mask": torch.rand(5, 7, generator=torch.Generator().manual_seed(1)) > 0.4},
    "float": {"mask": torch.randn(2, 1, 5, 7, generator=torch.Generator().manual_seed(2), dtype=torch.float64)},
}


@pytest.mark.parametrize("explicit", PATHS)
@pytest.mark.parametrize("H,H_kv", [(6, 2), (6, 1), (6, 6), (4, 2)], ids=["gqa", "mqa", "mha", "gqa-4-2"])
@pytest.mark.parametrize("case", list(MASKS))
def test_equals_repeated_kv_heads(explicit, H, H_kv, case):
    q, k, v = gqa_inputs(H, H_kv)
    kw = MASKS[case]
    mask = kw.get("mask")
    if kw.get("is_causal"):  # attnlib's causal mask is lower-right aligned (SDPA's own is top-left)
        mask = torch.ones(5, 7, dtype=torch.bool).tril(diagonal=7 - 5)
    ref = F.scaled_dot_product_attention(q, repeated(k, H // H_kv), repeated(v, H // H_kv), attn_mask=mask)
    torch.testing.assert_close(run(q, k, v, explicit, **kw), ref, atol=1e-12, rtol=1e-12)
    assert torch.equal(A.repeat_kv(k, H // H_kv), repeated(k, H // H_kv))


@pytest.mark.skipif(not HAS_GQA, reason="this torch's SDPA has no enable_gqa (torch < 2.5)")
@pytest.mark.parametrize("explicit", PATHS)
def test_equals_sdpa_enable_gqa(explicit):
    q, k, v = gqa_inputs(8, 2, T_q=7, T_k=7, dtype=torch.float32)
    kw = {"enable_gqa": True}
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=True, **kw)
    torch.testing.assert_close(run(q, k, v, explicit, is_causal=True), ref, atol=2e-6, rtol=2e-6)


@pytest.mark.parametrize("case", ["none", "causal", "bool"])
def test_fallback_without_sdpa_gqa_gives_the_same(monkeypatch, case):
    """On torch < 2.5 (no enable_gqa) the fast path repeats the KV heads itself."""
    q, k, v = gqa_inputs()
    expected = run(q, k, v, False, **MASKS[case])
    monkeypatch.setattr(A, "_SDPA_GQA", False)
    torch.testing.assert_close(run(q, k, v, False, **MASKS[case]), expected, atol=1e-13, rtol=1e-13)


def test_gqa_gradcheck_both_paths():
    q, k, v = (t.requires_grad_(True) for t in gqa_inputs(4, 2, T_q=3, T_k=4))
    for explicit in (False, True):
        assert torch.autograd.gradcheck(lambda q, k, v, e=explicit: run(q, k, v, e, is_causal=True), (q, k, v))


@pytest.mark.parametrize("shapes,msg", [
    (((2, 6, 5, 4), (2, 4, 7, 4), (2, 4, 7, 3)), r"the key/value heads \(dim -3 of k and v\) must divide the 6 query heads \(dim -3 of q\), got 4"),
    (((2, 6, 5, 4), (2, 2, 7, 4), (2, 3, 7, 3)), r"k and v must have the same dims as q except the head dim"),
    (((3, 6, 5, 4), (2, 2, 7, 4), (2, 2, 7, 3)), r"k and v must have the same dims as q except the head dim"),
    (((5, 4), (7, 4), (7, 3)), r"attention: enable_gqa needs a head dim: q, k, v of shape \(\.\.\., H, T, d\)"),
])
def test_bad_gqa_shapes(shapes, msg):
    q, k, v = (torch.randn(*s) for s in shapes)
    with pytest.raises(ValueError, match=msg):
        attention(q, k, v, enable_gqa=True)


def test_without_enable_gqa_different_heads_are_refused():
    q, k, v = gqa_inputs(dtype=torch.float32)
    with pytest.raises(ValueError, match=r"q, k and v must have the same batch dims"):
        attention(q, k, v)


# --------------------------------------------------------------------------- MultiHeadAttention


def full_twin(gqa: MultiHeadAttention) -> MultiHeadAttention:
    """A plain MultiHeadAttention whose per-head key/value weights are the GQA module's, repeated."""
    bias = gqa.out_proj.bias is not None
    full = MultiHeadAttention(gqa.d_model, gqa.n_heads, gqa.d_head, bias=bias).eval()
    n_rep = gqa.n_heads // gqa.n_kv_heads
    inner, kv_inner = gqa.n_heads * gqa.d_head, gqa.n_kv_heads * gqa.d_head
    with torch.no_grad():
        full.out_proj.load_state_dict(gqa.out_proj.state_dict())
        full.W_Q[:] = gqa.W_Q  # through the per-head views, into the fused qkv_proj
        full.W_K[:] = gqa.W_K.repeat_interleave(n_rep, 0)
        full.W_V[:] = gqa.W_V.repeat_interleave(n_rep, 0)
        if bias:
            b_q, b_k, b_v = gqa.qkv_proj.bias.split([inner, kv_inner, kv_inner])
            b_k, b_v = (b.view(gqa.n_kv_heads, gqa.d_head).repeat_interleave(n_rep, 0).reshape(-1)
                        for b in (b_k, b_v))
            full.qkv_proj.bias.copy_(torch.cat([b_q, b_k, b_v]))
    return full


@pytest.mark.parametrize("explicit", PATHS)
@pytest.mark.parametrize("n_kv_heads", [1, 2, 4])
@pytest.mark.parametrize("bias", [False, True])
def test_multihead_gqa_equals_repeated_heads(explicit, n_kv_heads, bias):
    torch.manual_seed(0)
    gqa = MultiHeadAttention(16, 4, bias=bias, n_kv_heads=n_kv_heads).eval()
    with torch.no_grad():
        for p in gqa.parameters():
            p.normal_()
    full = full_twin(gqa).double()
    gqa = gqa.double()
    x = torch.randn(2, 5, 16, dtype=torch.float64)
    a = gqa(x, is_causal=True, return_weights=explicit)
    b = full(x, is_causal=True, return_weights=explicit)
    for got, want in zip(a if explicit else (a,), b if explicit else (b,), strict=True):
        torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-12)
    assert gqa.W_K.shape == gqa.W_V.shape == (n_kv_heads, 16, 4)
    assert gqa.W_Q.shape == (4, 16, 4) and gqa.W_O.shape == (4, 4, 16)
    # one fused projection: 4 query heads, then n_kv_heads key heads and as many value heads
    assert gqa.qkv_proj.weight.shape == ((4 + 2 * n_kv_heads) * 4, 16)


def test_default_n_kv_heads_changes_nothing():
    torch.manual_seed(0)
    a = MultiHeadAttention(16, 4)
    torch.manual_seed(0)
    b = MultiHeadAttention(16, 4, n_kv_heads=4)
    assert a.n_kv_heads == 4 and repr(a) == repr(MultiHeadAttention(16, 4))
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)
    assert "n_kv_heads=2" in repr(MultiHeadAttention(16, 4, n_kv_heads=2))


def test_kv_cache_shrinks_and_decoding_matches():
    cfg = DecoderConfig(vocab_size=11, context_len=12, d_model=16, n_layers=2, n_heads=4, n_kv_heads=2)
    torch.manual_seed(0)
    m = Decoder(cfg).eval()
    toks = torch.randint(0, 11, (3, 9), generator=torch.Generator().manual_seed(0))
    full, _ = m(toks)
    caches = [KVCache() for _ in m.blocks]
    steps = [m(toks[:, :4], kv_cache=caches)[0]]
    for t in range(4, 9):
        steps.append(m(toks[:, t:t + 1], kv_cache=caches)[0])
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)
    assert caches[0].k.shape == (3, 2, 9, 4)  # n_kv_heads = 2 heads of keys, not n_heads = 4
    stored = sum(c.k.nbytes + c.v.nbytes for c in caches)
    assert stored == E.kv_cache_bytes(9, n_layers=2, n_heads=2, d_head=4, batch=3)
    assert stored * 2 == E.kv_cache_bytes(9, n_layers=2, n_heads=4, d_head=4, batch=3)
    a = m.generate(toks[:, :3], 8, temperature=0)
    b = m.generate(toks[:, :3], 8, temperature=0, kv_cache=False)
    assert torch.equal(a, b)


def test_config_n_kv_heads():
    base = DecoderConfig(vocab_size=11, context_len=8, d_model=16, n_layers=2, n_heads=4)
    assert base.kv_heads == 4 and "n_kv_heads" not in repr(base)
    mqa = base.replace(n_kv_heads=1)
    assert mqa.kv_heads == 1 and "n_kv_heads=1" in repr(mqa)
    n_full = count_parameters(Decoder(base)).by_component["attention"]
    n_mqa = count_parameters(Decoder(mqa)).by_component["attention"]
    assert n_full - n_mqa == 2 * 2 * (16 * 16 - 16 * 4)  # two layers, W_K's and W_V's rows each shrink
    with pytest.raises(ValueError, match=r"DecoderConfig: n_kv_heads must divide n_heads=4 .*got 3"):
        base.replace(n_kv_heads=3)
    with pytest.raises(ValueError, match=r"MultiHeadAttention: n_kv_heads must divide n_heads=4 .*got 3"):
        MultiHeadAttention(16, 4, n_kv_heads=3)
    with pytest.raises(ValueError, match=r"n_kv_heads must be a positive int or None, got 0"):
        MultiHeadAttention(16, 4, n_kv_heads=0)
    assert attnlib.Encoder(mqa).blocks[0].attn.n_kv_heads == 1
