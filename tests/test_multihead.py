"""MultiHeadAttention against torch.nn.MultiheadAttention, its per-head views, and its KV cache."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from attnlib import KVCache, MultiHeadAttention, from_mha_mask

CUDA = torch.cuda.is_available()
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not CUDA, reason="needs a CUDA device"))]
PATHS = [pytest.param(False, id="fast"), pytest.param(True, id="explicit")]
# how the block is built: for self-attention (qkv_proj) or for cross-attention (q_proj, kv_proj)
LAYOUTS = ["built-self", "built-cross"]
D, H = 16, 4


def twins(bias: bool, seed: int = 0, device="cpu", layout: str = "built-self"):
    """An attnlib MultiHeadAttention and an nn.MultiheadAttention with the same weights.

    layout "built-self" is the block built for self-attention (one qkv_proj, the layout of
    nn.MultiheadAttention's in_proj_weight); "built-cross" the one built for cross-attention
    (d_context given: q_proj and one kv_proj). Either is called with and without a context."""
    torch.manual_seed(seed)
    ref = nn.MultiheadAttention(D, H, bias=bias, batch_first=True).to(device).eval()
    with torch.no_grad():  # random biases, so that copying them is really tested
        if bias:
            ref.in_proj_bias.normal_()
            ref.out_proj.bias.normal_()
    cross = layout == "built-cross"
    ours = MultiHeadAttention(D, H, bias=bias, d_context=D if cross else None).to(device).eval()
    with torch.no_grad():
        if cross:
            w_q, w_kv = ref.in_proj_weight.split([D, 2 * D])
            ours.q_proj.weight.copy_(w_q)
            ours.kv_proj.weight.copy_(w_kv)
        else:
            ours.qkv_proj.weight.copy_(ref.in_proj_weight)
        ours.out_proj.weight.copy_(ref.out_proj.weight)
        if bias:
            if cross:
                b_q, b_kv = ref.in_proj_bias.split([D, 2 * D])
                ours.q_proj.bias.copy_(b_q)
                ours.kv_proj.bias.copy_(b_kv)
            else:
                ours.qkv_proj.bias.copy_(ref.in_proj_bias)
            ours.out_proj.bias.copy_(ref.out_proj.bias)
    return ours, ref


def inputs(B=2, T_q=5, T_k=7, seed=1, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, T_q, D, generator=g).to(device), torch.randn(B, T_k, D, generator=g).to(device)


def call(ours, x, explicit, **kw):
    if explicit:
        y, w = ours(x, return_weights=True, **kw)
        return y, w
    return ours(x, **kw), None


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("explicit", PATHS)
@pytest.mark.parametrize("bias", [False, True], ids=["no-bias", "bias"])
@pytest.mark.parametrize("cross", [False, True], ids=["self", "cross"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_matches_nn_multihead_attention(device, explicit, bias, cross, layout):
    ours, ref = twins(bias, device=device, layout=layout)
    x, c = inputs(device=device)
    src = c if cross else x
    y, w = call(ours, x, explicit, context=c if cross else None)
    y_ref, w_ref = ref(x, src, src, need_weights=True)  # weights averaged over heads
    torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=1e-5)
    if explicit:
        assert w.shape == (2, H, x.shape[1], src.shape[1])
        torch.testing.assert_close(w.mean(dim=1), w_ref, atol=1e-6, rtol=1e-5)
        w_ref_heads = ref(x, src, src, need_weights=True, average_attn_weights=False)[1]
        torch.testing.assert_close(w, w_ref_heads, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("explicit", PATHS)
@pytest.mark.parametrize("cross", [False, True], ids=["self", "cross"])
@pytest.mark.parametrize("which", ["attn_mask", "key_padding_mask", "both", "float_attn_mask"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_masks_translated_from_nn_multihead_attention(explicit, cross, which, layout):
    ours, ref = twins(bias=True, seed=2, layout=layout)
    B, T_q, T_k = 2, 5, 7 if cross else 5
    x, c = inputs(B, T_q, T_k, seed=3)
    src = c if cross else x
    g = torch.Generator().manual_seed(4)
    attn_blocked = torch.rand(T_q, T_k, generator=g) > 0.6  # PyTorch's convention: True = blocked
    attn_blocked[:, 0] = False  # keep one key per row: nn.MultiheadAttention gives NaN for empty rows
    pad_blocked = torch.zeros(B, T_k, dtype=torch.bool)
    pad_blocked[0, -2:] = True  # sequence 0 is padded at its last two keys
    kw_ref, ours_mask = {}, None
    if which in ("attn_mask", "both"):
        kw_ref["attn_mask"] = attn_blocked
        ours_mask = from_mha_mask(attn_blocked)  # (T_q, T_k), True = may attend
    if which == "float_attn_mask":
        fm = torch.randn(T_q, T_k, generator=g).masked_fill(attn_blocked, float("-inf"))
        kw_ref["attn_mask"] = fm
        ours_mask = from_mha_mask(fm)
    if which in ("key_padding_mask", "both"):
        kw_ref["key_padding_mask"] = pad_blocked
        pad = from_mha_mask(pad_blocked)[:, None, None, :]  # (B, 1, 1, T_k)
        ours_mask = pad if ours_mask is None else ours_mask & pad
    y, w = call(ours, x, explicit, context=c if cross else None, mask=ours_mask)
    y_ref, w_ref = ref(x, src, src, need_weights=True, **kw_ref)
    torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=1e-5)
    if explicit:
        torch.testing.assert_close(w.mean(dim=1), w_ref, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_causal_matches_nn_multihead_attention(layout):
    ours, ref = twins(bias=False, seed=5, layout=layout)
    x, _ = inputs(T_q=6)
    blocked = torch.ones(6, 6, dtype=torch.bool).triu(1)
    y_ref, _ = ref(x, x, x, attn_mask=blocked)
    for explicit in (False, True):
        y, _ = call(ours, x, explicit, is_causal=True)
        torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=1e-5)


# --------------------------------------------------------------------------- per-head views


def test_per_head_view_shapes():
    m = MultiHeadAttention(D, H, d_context=10)
    d_head = D // H
    assert m.d_head == d_head
    assert m.W_Q.shape == (H, D, d_head)
    assert m.W_K.shape == (H, 10, d_head)
    assert m.W_V.shape == (H, 10, d_head)
    assert m.W_O.shape == (H, d_head, D)
    m2 = MultiHeadAttention(D, H, d_head=3)  # d_head need not be d_model / n_heads
    assert m2.W_Q.shape == (H, D, 3) and m2.W_O.shape == (H, 3, D)
    assert m2.qkv_proj.weight.shape == (3 * H * 3, D)  # W_Q, W_K and W_V of every head
    m3 = MultiHeadAttention(D, H, d_head=3, d_context=10)  # built for cross-attention
    assert m3.q_proj.weight.shape == (H * 3, D) and m3.kv_proj.weight.shape == (2 * H * 3, 10)
    assert not hasattr(m3, "qkv_proj") and not hasattr(m2, "kv_proj")


# where each view lives: (built for cross-attention?, parameter, first row of the view in it)
VIEW_HOMES = {
    ("W_Q", False): ("qkv_proj", 0), ("W_K", False): ("qkv_proj", D), ("W_V", False): ("qkv_proj", 2 * D),
    ("W_Q", True): ("q_proj", 0), ("W_K", True): ("kv_proj", 0), ("W_V", True): ("kv_proj", D),
    ("W_O", False): ("out_proj", 0), ("W_O", True): ("out_proj", 0),
}


@pytest.mark.parametrize("built_cross", [False, True], ids=["built-self", "built-cross"])
@pytest.mark.parametrize("name", ["W_Q", "W_K", "W_V", "W_O"])
def test_per_head_views_are_views(name, built_cross):
    torch.manual_seed(0)
    m = MultiHeadAttention(D, H, d_context=D if built_cross else None).eval()
    x, _ = inputs()
    y0 = m(x)
    proj, first_row = VIEW_HOMES[name, built_cross]
    weight = getattr(m, proj).weight
    view = getattr(m, name)
    assert view.untyped_storage().data_ptr() == weight.untyped_storage().data_ptr()
    before = weight.detach().clone()
    with torch.no_grad():
        getattr(m, name)[2, 1, 3] += 1.0  # edit one entry of head 2 in place
    changed = (weight.detach() != before).nonzero().tolist()
    assert len(changed) == 1, "editing one entry of a view must change exactly one parameter entry"
    d_head = D // H
    row, col = changed[0]
    if name == "W_O":  # out_proj.weight is (d_model, H*d_head): W_O[h, j, i] = weight[i, h*d_head + j]
        assert (row, col) == (3, 2 * d_head + 1)
    else:  # the view's rows of proj.weight are (H*d_head, d_in): W[h, i, j] = rows[h*d_head + j, i]
        assert (row, col) == (first_row + 2 * d_head + 3, 1)
    assert not torch.allclose(m(x), y0), "editing a view must change the module's output"


@pytest.mark.parametrize("n_kv_heads", [4, 2, 1])
@pytest.mark.parametrize("built_cross", [False, True], ids=["built-self", "built-cross"])
def test_writing_whole_heads_through_the_views_lands_in_the_fused_weights(built_cross, n_kv_heads):
    """Chapter 8's way: ``mha.W_Q[h] = W`` under no_grad; every head's matrices land in the rows of
    the fused weight a separate projection would have held them in, and nothing else changes."""
    torch.manual_seed(1)
    d_head, d_ctx = 3, (10 if built_cross else D)
    m = MultiHeadAttention(D, H, d_head=d_head, bias=True, n_kv_heads=n_kv_heads,
                           d_context=d_ctx if built_cross else None)
    g = torch.Generator().manual_seed(2)
    new = {"W_Q": torch.randn(H, D, d_head, generator=g), "W_O": torch.randn(H, d_head, D, generator=g),
           "W_K": torch.randn(n_kv_heads, d_ctx, d_head, generator=g),
           "W_V": torch.randn(n_kv_heads, d_ctx, d_head, generator=g)}
    biases = {n: p.detach().clone() for n, p in m.named_parameters() if n.endswith("bias")}
    with torch.no_grad():
        for name, w in new.items():
            for h in range(w.shape[0]):
                getattr(m, name)[h] = w[h]
    for name, w in new.items():
        assert torch.equal(getattr(m, name), w)
    # a projection's weight is (heads * d_head, d_in): head h's matrix transposed in rows h*d_head..
    q_rows = new["W_Q"].transpose(1, 2).reshape(H * d_head, D)
    k_rows, v_rows = (new[n].transpose(1, 2).reshape(n_kv_heads * d_head, d_ctx) for n in ("W_K", "W_V"))
    if built_cross:
        assert torch.equal(m.q_proj.weight, q_rows)
        assert torch.equal(m.kv_proj.weight, torch.cat([k_rows, v_rows]))
    else:
        assert torch.equal(m.qkv_proj.weight, torch.cat([q_rows, k_rows, v_rows]))
    assert torch.equal(m.out_proj.weight, new["W_O"].permute(2, 0, 1).reshape(D, H * d_head))
    for n, b in biases.items():  # the biases are not touched by the views
        assert torch.equal(dict(m.named_parameters())[n], b)


@pytest.mark.parametrize("cross", [False, True], ids=["self", "cross"])
def test_heads_by_hand_from_views(cross):
    torch.manual_seed(6)
    m = MultiHeadAttention(D, H, d_context=12 if cross else None).eval()
    x = torch.randn(2, 5, D)
    c = torch.randn(2, 7, 12) if cross else x
    y, w = m(x, context=c if cross else None, return_weights=True)
    total = torch.zeros_like(y)
    for h in range(H):
        q = x @ m.W_Q[h]  # (B, T_q, d_head)
        k = c @ m.W_K[h]  # (B, T_k, d_head)
        v = c @ m.W_V[h]  # (B, T_k, d_head)
        pattern = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(m.d_head), dim=-1)
        torch.testing.assert_close(pattern, w[:, h], atol=1e-6, rtol=1e-5)
        total = total + pattern @ v @ m.W_O[h]  # head h's proposed change
    torch.testing.assert_close(total, y, atol=1e-5, rtol=1e-5)


def test_one_head_contribution_isolated_by_zeroing_others():
    """Zeroing every other head's value-up leaves exactly head 0's change."""
    torch.manual_seed(7)
    m = MultiHeadAttention(D, H).eval()
    x = torch.randn(1, 4, D)
    q, k, v = x @ m.W_Q[0], x @ m.W_K[0], x @ m.W_V[0]
    head0 = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(m.d_head), -1) @ v @ m.W_O[0]
    with torch.no_grad():
        m.W_O[1:] = 0.0
    torch.testing.assert_close(m(x), head0, atol=1e-6, rtol=1e-5)


# --------------------------------------------------------------------------- symmetry and cache


def test_self_attention_without_positions_is_permutation_equivariant():
    torch.manual_seed(8)
    m = MultiHeadAttention(D, H, bias=True).eval()
    x = torch.randn(2, 6, D)
    perm = torch.randperm(6, generator=torch.Generator().manual_seed(0))
    for explicit in (False, True):
        y, _ = call(m, x, explicit)
        y_perm, _ = call(m, x[:, perm], explicit)
        torch.testing.assert_close(y_perm, y[:, perm], atol=1e-6, rtol=1e-5)
    # a causal mask breaks the symmetry (it is tied to positions)
    assert not torch.allclose(m(x[:, perm], is_causal=True), m(x, is_causal=True)[:, perm], atol=1e-4)


@pytest.mark.parametrize("explicit", PATHS)
def test_kv_cache_one_step_at_a_time_equals_full(explicit):
    torch.manual_seed(9)
    m = MultiHeadAttention(D, H).eval()
    x = torch.randn(2, 6, D)
    full, _ = call(m, x, explicit, is_causal=True)
    cache = KVCache()
    steps = []
    first, _ = call(m, x[:, :2], explicit, is_causal=True, kv_cache=cache)  # a 2-token prompt
    steps.append(first)
    for t in range(2, 6):
        y, w = call(m, x[:, t:t + 1], explicit, is_causal=True, kv_cache=cache)
        if explicit:
            assert w.shape == (2, H, 1, t + 1)
        steps.append(y)
    assert len(cache) == 6 and cache.k.shape == (2, H, 6, D // H)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)


# --------------------------------------------------------------------------- bad input


def test_bad_d_model_not_divisible():
    with pytest.raises(ValueError, match=r"d_model=10 is not divisible by n_heads=4; pick n_heads dividing"):
        MultiHeadAttention(10, 4)
    MultiHeadAttention(10, 4, d_head=3)  # allowed when d_head is explicit


def test_bad_constructor_args():
    with pytest.raises(ValueError, match=r"n_heads must be a positive int, got 0"):
        MultiHeadAttention(16, 0)
    with pytest.raises(TypeError, match=r"d_model must be a positive int, got 16.0"):
        MultiHeadAttention(16.0, 4)


def test_bad_forward_inputs():
    m = MultiHeadAttention(D, H)
    with pytest.raises(ValueError, match=r"x must have shape \(batch, T, 16\), got \(5, 16\)"):
        m(torch.randn(5, D))
    with pytest.raises(ValueError, match=r"x must have shape \(batch, T, 16\), got \(2, 5, 12\)"):
        m(torch.randn(2, 5, 12))
    with pytest.raises(TypeError, match=r"^MultiHeadAttention: x must be a torch.Tensor of shape \(batch, T, 16\), "
                                        r"got a ndarray$"):
        m(torch.randn(2, 5, D).numpy())
    with pytest.raises(ValueError, match=r"context must have shape \(batch, T, 16\), got \(2, 7, 8\)"):
        m(torch.randn(2, 5, D), context=torch.randn(2, 7, 8))
    with pytest.raises(ValueError, match=r"x has batch 2 but context has batch 3"):
        m(torch.randn(2, 5, D), context=torch.randn(3, 7, D))
    with pytest.raises(ValueError, match=r"mask of shape \(5, 6\) does not broadcast to the pattern's shape "
                                         r"\(2, 4, 5, 5\)"):
        m(torch.randn(2, 5, D), mask=torch.ones(5, 6, dtype=torch.bool))
    cross = MultiHeadAttention(D, H, d_context=8)
    with pytest.raises(ValueError, match=r"d_context=8 differs from d_model.*pass context"):
        cross(torch.randn(2, 5, D))
