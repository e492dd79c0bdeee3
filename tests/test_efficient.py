"""Tests for attnlib.efficient: tiled (online-softmax) attention, sparse masks, cost helpers."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import attnlib
from attnlib import efficient as E


def _qkv(shape_q, T_k, d_v=None, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    *lead, T_q, d = shape_q
    d_v = d if d_v is None else d_v
    q = torch.randn(*lead, T_q, d, generator=g).to(dtype)
    k = torch.randn(*lead, T_k, d, generator=g).to(dtype)
    v = torch.randn(*lead, T_k, d_v, generator=g).to(dtype)
    return q, k, v


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize(
    "shape_q,T_k,block",
    [
        ((1, 1, 8, 4), 8, 8),  # one tile
        ((2, 3, 10, 8), 10, 3),  # block does not divide T
        ((2, 3, 10, 8), 10, 1),  # one key per tile
        ((2, 3, 10, 8), 10, 128),  # block larger than T
        ((2, 4, 7), 13, 5),  # T_q < T_k, three dims
        ((1, 2, 13, 6), 7, 4),  # T_q > T_k: causal gives fully masked rows
        ((1, 16), 5, 2),  # no batch dims, one query
        ((1, 2, 33, 16), 65, 16),
    ],
)
def test_tiled_equals_attention(shape_q, T_k, block, causal):
    q, k, v = _qkv(shape_q, T_k, d_v=5)
    ref = attnlib.attention(q, k, v, is_causal=causal, return_weights=True)[0]
    out = E.tiled_attention(q, k, v, is_causal=causal, block_size=block)
    torch.testing.assert_close(out, ref)
    assert out.shape == ref.shape and out.dtype == v.dtype


def test_tiled_equals_sdpa_and_scale():
    q, k, v = _qkv((2, 4, 20, 8), 20)
    for causal in (False, True):
        ref = F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=0.3)
        out = E.tiled_attention(q, k, v, is_causal=causal, scale=0.3, block_size=6)
        torch.testing.assert_close(out, ref)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_tiled_half_precision(dtype):
    q, k, v = _qkv((2, 2, 40, 16), 40)
    ref = attnlib.attention(q, k, v, is_causal=True, return_weights=True)[0]  # fp32 reference
    out = E.tiled_attention(q.to(dtype), k.to(dtype), v.to(dtype), is_causal=True, block_size=7)
    assert out.dtype == dtype
    tol = 1e-2 if dtype == torch.float16 else 3e-2
    torch.testing.assert_close(out.float(), ref, atol=tol, rtol=tol)


def test_tiled_large_scores_stable():
    # Scores of order 1e4 overflow exp() without the running max.
    q, k, v = _qkv((1, 1, 6, 4), 9)
    out = E.tiled_attention(q * 100, k * 100, v, block_size=2)
    ref = attnlib.attention(q * 100, k * 100, v, return_weights=True)[0]
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, ref)


def test_tiled_fully_masked_rows_zero_and_finite_grad():
    q, k, v = _qkv((1, 2, 6, 4), 3)
    for t in (q, k, v):
        t.requires_grad_(True)
    out = E.tiled_attention(q, k, v, is_causal=True, block_size=2)  # first 3 queries see nothing
    assert torch.equal(out[..., :3, :], torch.zeros_like(out[..., :3, :]))
    out.sum().backward()
    grads = [t.grad.clone() for t in (q, k, v)]
    assert all(torch.isfinite(g).all() for g in grads)
    for t in (q, k, v):
        t.grad = None
    ref = attnlib.attention(q, k, v, is_causal=True, return_weights=True)[0]
    ref.sum().backward()
    for g, t in zip(grads, (q, k, v), strict=True):
        torch.testing.assert_close(g, t.grad)


def test_tiled_with_bool_mask():
    q, k, v = _qkv((2, 2, 12, 8), 12)
    for mask in (E.sliding_window_mask(12, 3), E.block_sparse_mask(12, 4), attnlib.padding_mask([12, 5], 12)):
        ref = attnlib.attention(q, k, v, mask=mask, return_weights=True)[0]
        out = E.tiled_attention(q, k, v, mask=mask, block_size=5)
        torch.testing.assert_close(out, ref)
    m = torch.zeros(12, 12, dtype=torch.bool)  # every row masked
    assert torch.equal(E.tiled_attention(q, k, v, mask=m), torch.zeros_like(q))


def test_tiled_never_materialises_the_pattern():
    T, d, block = 256, 16, 32
    q, k, v = _qkv((1, 1, T, d), T)
    with E.LargestTensor() as explicit:
        attnlib.attention(q, k, v, is_causal=True, return_weights=True)
    with E.LargestTensor() as tiled:
        E.tiled_attention(q, k, v, is_causal=True, block_size=block)
    assert explicit.nbytes >= T * T * 4
    # Largest tensor of the tiled path: a (T, block) tile of scores or a (T, d) copy of q.
    assert tiled.nbytes <= T * max(block, d) * 4
    assert tiled.nbytes < explicit.nbytes // 4


def test_tiled_bad_input():
    q, k, v = _qkv((1, 4, 8), 4)
    with pytest.raises(ValueError, match="block_size"):
        E.tiled_attention(q, k, v, block_size=0)
    with pytest.raises(ValueError, match="last dim"):
        E.tiled_attention(q, k[..., :3], v)
    with pytest.raises(ValueError, match="T_k"):
        E.tiled_attention(q, k, v[..., :3, :])
    with pytest.raises(TypeError, match="floating"):
        E.tiled_attention(q.long(), k, v)
    with pytest.raises(TypeError, match="bool"):
        E.tiled_attention(q, k, v, mask=torch.ones(4, 4))
    with pytest.raises(ValueError, match="broadcast"):
        E.tiled_attention(q, k, v, mask=torch.ones(3, 4, dtype=torch.bool))


@settings(max_examples=40, deadline=None)
@given(
    T_q=st.integers(1, 12),
    T_k=st.integers(1, 12),
    block=st.integers(1, 13),
    causal=st.booleans(),
    seed=st.integers(0, 10_000),
)
def test_tiled_property(T_q, T_k, block, causal, seed):
    q, k, v = _qkv((2, T_q, 4), T_k, d_v=3, seed=seed)
    ref = attnlib.attention(q, k, v, is_causal=causal, return_weights=True)[0]
    torch.testing.assert_close(E.tiled_attention(q, k, v, is_causal=causal, block_size=block), ref)


# --------------------------------------------------------------------------- 2-D tiles, skipping, counts


def _masks_2d():
    """(name, T_q, T_k, mask, is_causal) cases with every kind of mask the 2-D loop must handle."""
    return [
        ("none", 13, 13, None, False),
        ("causal", 13, 13, None, True),
        ("causal T_q < T_k", 5, 13, None, True),  # lower-right: the 5 queries are the last positions
        ("causal T_q > T_k", 9, 4, None, True),  # the first 5 queries see nothing
        ("window", 13, 13, E.sliding_window_mask(13, 3), False),
        ("window, symmetric", 13, 13, E.sliding_window_mask(13, 2, causal=False), False),
        ("block-sparse", 13, 13, E.block_sparse_mask(13, 4), False),
        ("block-sparse, no summary", 13, 13, E.block_sparse_mask(13, 4, n_summary=0, causal=False), False),
        ("block-sparse + is_causal", 13, 13, E.block_sparse_mask(13, 4, causal=False), True),
        ("padding (a length 0)", 13, 13, attnlib.padding_mask([13, 0, 6], 13), False),
        ("padding + causal", 13, 13, attnlib.padding_mask([13, 0, 6], 13), True),
        ("T = 1", 1, 1, None, True),
    ]


def _full_allowed(T_q, T_k, mask, causal, lead):
    """The allowed pattern (..., T_q, T_k) written out, for the references."""
    allowed = torch.ones(*lead, T_q, T_k, dtype=torch.bool)
    if causal:
        allowed = allowed & attnlib.causal_mask(T_q, T_k)
    if mask is not None:
        allowed = allowed & mask
    return allowed


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
@pytest.mark.parametrize("bq,bk", [(1, 1), (3, 5), (4, 4), (5, 3), (13, 2), (128, 128)])
@pytest.mark.parametrize("case", _masks_2d(), ids=lambda c: c[0])
def test_tiled_2d_equals_attention_and_sdpa(case, bq, bk, dtype, tol):
    name, T_q, T_k, mask, causal = case
    q, k, v = _qkv((3, 2, T_q, 8), T_k, d_v=5, dtype=dtype, seed=T_q + 7 * T_k)
    out = E.tiled_attention(q, k, v, mask, is_causal=causal, block_q=bq, block_k=bk)
    assert out.shape == (3, 2, T_q, 5) and out.dtype == dtype
    ref = attnlib.attention(q, k, v, mask, is_causal=causal, return_weights=True)[0]
    torch.testing.assert_close(out, ref, atol=tol, rtol=tol)
    # raw SDPA, given the whole pattern as one bool mask (its own is_causal is upper-left aligned);
    # rows with no key at all are NaN or garbage there, so compare the live rows and demand zeros
    allowed = _full_allowed(T_q, T_k, mask, causal, (3, 2))
    live = allowed.any(-1, keepdim=True)
    sdpa = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed | ~live)
    torch.testing.assert_close(out, torch.where(live, sdpa, 0.0), atol=tol, rtol=tol)
    assert torch.equal(out[~live.expand_as(out)], torch.zeros_like(out[~live.expand_as(out)]))


def test_tiled_defaults_and_block_size_name():
    q, k, v = _qkv((2, 3, 40, 8), 40)
    out, st = E.tiled_attention(q, k, v, is_causal=True, block_size=16, return_stats=True)
    assert (st.block_q, st.n_q_tiles, st.block_k, st.n_k_tiles) == (40, 1, 16, 3)
    assert st.tiles_skipped == 0  # one tile of all the queries: the last query sees every key tile
    assert torch.equal(out, E.tiled_attention(q, k, v, is_causal=True, block_k=16))
    _, st = E.tiled_attention(q, k, v, return_stats=True)
    assert (st.block_k, st.n_k_tiles) == (128, 1)
    mask = E.sliding_window_mask(40, 5)
    assert torch.equal(E.tiled_attention(q, k, v, mask), E.tiled_attention(q, k, v, mask=mask))


def _independent_tiles(T_q, T_k, bq, bk, allowed2d):
    """Which (query tile, key tile) pairs a 2-D allowed pattern blocks entirely, by brute force."""
    grid = {}
    for i, qs in enumerate(range(0, T_q, bq)):
        for j, ks in enumerate(range(0, T_k, bk)):
            grid[i, j] = bool(allowed2d[qs:qs + bq, ks:ks + bk].any())
    return grid


class _CountMatmuls(torch.utils._python_dispatch.TorchDispatchMode):
    """Counts the matrix products that actually run (aten mm / bmm)."""

    def __init__(self):
        super().__init__()
        self.n = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket in (torch.ops.aten.mm, torch.ops.aten.bmm):
            self.n += 1
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("bq,bk", [(4, 4), (3, 5), (8, 2), (64, 64)])
@pytest.mark.parametrize(
    "T_q,T_k,mask_fn,causal",
    [
        (32, 32, None, True),
        (12, 32, None, True),  # T_q < T_k: the diagonal moves right
        (32, 32, lambda: E.sliding_window_mask(32, 5), False),
        (32, 32, lambda: E.block_sparse_mask(32, 8), False),
        (32, 32, lambda: E.block_sparse_mask(32, 8, causal=False, n_summary=0), True),
        (32, 32, lambda: E.sliding_window_mask(32, 4, causal=False), False),
        # neither the mask nor the diagonal blocks a diagonal tile alone; together they block it
        (32, 32, lambda: ~attnlib.causal_mask(32) | (torch.arange(32) < 4), True),
    ],
)
def test_tiled_skips_exactly_the_blocked_tiles(T_q, T_k, mask_fn, causal, bq, bk):
    mask = None if mask_fn is None else mask_fn()
    q, k, v = _qkv((2, T_q, 4), T_k)
    allowed = _full_allowed(T_q, T_k, mask, causal, ())
    grid = _independent_tiles(T_q, T_k, bq, bk, allowed)
    n_blocked = sum(not a for a in grid.values())
    with _CountMatmuls() as mm:
        out, st = E.tiled_attention(q, k, v, mask, is_causal=causal, block_q=bq, block_k=bk, return_stats=True)
    assert st.tiles_skipped == n_blocked
    assert st.tiles_computed == len(grid) - n_blocked
    assert st.tiles == st.n_q_tiles * st.n_k_tiles == len(grid)
    assert mm.n == 2 * st.tiles_computed  # scores and weights x values, for computed tiles only
    if bq < T_q and bk < T_k:
        assert n_blocked > 0  # these masks do block whole tiles at these sizes
    torch.testing.assert_close(out, attnlib.attention(q, k, v, mask, is_causal=causal, return_weights=True)[0])


def test_tiled_slow_memory_closed_forms():
    N, d, d_v = 2 * 3, 8, 5
    # no mask, block_q not dividing T_q: reads = N T_q d + N ceil(T_q / bq) T_k (d + d_v)
    T_q, T_k, bq, bk = 30, 22, 7, 4
    q, k, v = _qkv((2, 3, T_q, d), T_k, d_v=d_v)
    _, st = E.tiled_attention(q, k, v, block_q=bq, block_k=bk, return_stats=True)
    assert st.q_reads == N * T_q * d
    assert st.k_reads + st.v_reads == N * math.ceil(T_q / bq) * T_k * (d + d_v)
    assert (st.mask_reads, st.writes) == (0, N * T_q * d_v)
    assert st.reads == N * T_q * d + N * math.ceil(T_q / bq) * T_k * (d + d_v)
    # causal, T_q = T_k = T, B dividing T: reads = N T d + N (d + d_v) T (T + B) / (2 B)
    T, B = 48, 8
    q, k, v = _qkv((2, 3, T, d), T, d_v=d_v)
    _, st = E.tiled_attention(q, k, v, is_causal=True, block_q=B, block_k=B, return_stats=True)
    n = T // B
    assert (st.tiles_computed, st.tiles_skipped) == (n * (n + 1) // 2, n * (n - 1) // 2)
    assert st.reads == N * T * d + N * (d + d_v) * T * (T + B) // (2 * B)
    assert st.writes == N * T * d_v


@pytest.mark.parametrize("bq,bk", [(3, 5), (4, 4), (16, 1)])
def test_tiled_slow_memory_general_formula(bq, bk):
    """The docstring's sums, evaluated by brute force over the tile grid, for a block-sparse mask
    with is_causal and for a padding mask that broadcasts over heads and queries."""
    B, H, T, d, d_v = 3, 2, 26, 4, 6
    q, k, v = _qkv((B, H, T, d), T, d_v=d_v)
    for mask, causal in ((E.block_sparse_mask(T, 6, causal=False), True),
                         (attnlib.padding_mask([26, 0, 9], T), False)):
        _, st = E.tiled_attention(q, k, v, mask, is_causal=causal, block_q=bq, block_k=bk, return_stats=True)
        allowed = _full_allowed(T, T, mask, causal, (B, H)).flatten(0, -3).any(0)  # over batch and heads
        q_reads = k_reads = v_reads = mask_reads = 0
        for qs in range(0, T, bq):
            Qi = min(bq, T - qs)
            any_computed = False
            for ks in range(0, T, bk):
                Kj = min(bk, T - ks)
                if causal and ks > qs + Qi - 1:
                    continue  # skipped by the causal test before the mask is read
                rows = 1 if mask.shape[-2] == 1 else Qi  # the padding mask is stored once per key
                mask_reads += math.prod(mask.shape[:-2]) * rows * Kj
                if allowed[qs:qs + Qi, ks:ks + Kj].any():
                    any_computed = True
                    k_reads += B * H * Kj * d
                    v_reads += B * H * Kj * d_v
            q_reads += B * H * Qi * d if any_computed else 0
        assert (st.q_reads, st.k_reads, st.v_reads, st.mask_reads) == (q_reads, k_reads, v_reads, mask_reads)
        assert st.out_writes == B * H * T * d_v


def test_explicit_slow_memory():
    # Algorithm 0 of the FlashAttention paper, T_q = T_k = 4, d = 2, d_v = 3: reads Q, K (8 + 8),
    # S (16), P (16), V (12); writes S (16), P (16), O (12)
    assert E.explicit_slow_memory(4, 4, 2, 3) == (60, 44)
    assert E.explicit_slow_memory(4, 4, 2, 3, batch=5) == (300, 220)
    assert E.explicit_slow_memory(3, 7, 2) == (6 + 14 + 42 + 14, 42 + 6)
    # at T = 8,192, d = 64, causal tiles of 128: the tiled path moves about 1/8 as much
    T, d, B = 8192, 64, 128
    tiled_reads = T * d + 2 * d * T * (T + B) // (2 * B)
    ex_reads, ex_writes = E.explicit_slow_memory(T, T, d)
    assert 7 < (ex_reads + ex_writes) / (tiled_reads + T * d) < 8.5
    with pytest.raises(ValueError, match="explicit_slow_memory: d must be a positive int"):
        E.explicit_slow_memory(4, 4, 0)
    with pytest.raises(TypeError, match="explicit_slow_memory: batch must be a positive int"):
        E.explicit_slow_memory(4, 4, 2, batch=1.5)


def test_tiled_2d_peak_tensor_is_one_tile():
    T, d, bq, bk = 256, 16, 32, 64
    q, k, v = _qkv((1, 1, T, d), T)
    with E.LargestTensor() as one_d:
        E.tiled_attention(q, k, v, is_causal=True, block_k=bk)
    with E.LargestTensor() as two_d:
        E.tiled_attention(q, k, v, is_causal=True, block_q=bq, block_k=bk)
    assert one_d.nbytes == T * bk * 4  # keys-only tiling: a (T, block_k) tile of scores
    # 2-D: a (block_q, block_k) tile of scores, or the (T, d) output written tile by tile
    assert two_d.nbytes == max(bq * bk, T * d) * 4


def test_tiled_2d_gradcheck_float64():
    q, k, v = _qkv((2, 9, 3), 6, d_v=2, dtype=torch.float64, seed=11)
    mask = torch.rand(9, 6, generator=torch.Generator().manual_seed(5)) > 0.5
    mask[4] = False  # a fully masked row
    mask[:3, 3:] = False  # a fully masked tile at block 3 x 3
    for causal in (False, True):
        fn = lambda q, k, v, c=causal: E.tiled_attention(q, k, v, mask, is_causal=c, block_q=3, block_k=4)  # noqa: E731
        args = tuple(t.clone().requires_grad_(True) for t in (q, k, v))
        assert torch.autograd.gradcheck(fn, args)
        fn(*args).sum().backward()
        grads = [t.grad for t in args]
        args2 = tuple(t.detach().clone().requires_grad_(True) for t in (q, k, v))
        attnlib.attention(*args2, mask, is_causal=causal, return_weights=True)[0].sum().backward()
        for g, t in zip(grads, args2, strict=True):
            torch.testing.assert_close(g, t.grad, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_tiled_2d_half_precision(dtype):
    q, k, v = _qkv((2, 2, 40, 16), 40)
    ref = attnlib.attention(q, k, v, is_causal=True, return_weights=True)[0]
    out = E.tiled_attention(q.to(dtype), k.to(dtype), v.to(dtype), is_causal=True, block_q=8, block_k=12)
    assert out.dtype == dtype
    tol = 1e-2 if dtype == torch.float16 else 3e-2
    torch.testing.assert_close(out.float(), ref, atol=tol, rtol=tol)


@settings(max_examples=40, deadline=None)
@given(
    T_q=st.integers(1, 12),
    T_k=st.integers(1, 12),
    bq=st.integers(1, 13),
    bk=st.integers(1, 13),
    causal=st.booleans(),
    density=st.sampled_from([None, 0.0, 0.2, 0.6, 1.0]),
    seed=st.integers(0, 10_000),
)
def test_tiled_2d_property(T_q, T_k, bq, bk, causal, density, seed):
    q, k, v = _qkv((2, T_q, 4), T_k, d_v=3, seed=seed)
    mask = None
    if density is not None:
        mask = torch.rand(T_q, T_k, generator=torch.Generator().manual_seed(seed)) < density
    ref = attnlib.attention(q, k, v, mask, is_causal=causal, return_weights=True)[0]
    out, st_ = E.tiled_attention(q, k, v, mask, is_causal=causal, block_q=bq, block_k=bk, return_stats=True)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    grid = _independent_tiles(T_q, T_k, bq, bk, _full_allowed(T_q, T_k, mask, causal, ()))
    assert st_.tiles_skipped == sum(not a for a in grid.values())


@pytest.mark.parametrize(
    "kwargs,exc,msg",
    [
        ({"block_q": 0}, ValueError, r"tiled_attention: block_q must be a positive int or None, got 0"),
        ({"block_q": -3}, ValueError, r"tiled_attention: block_q must be a positive int or None, got -3"),
        ({"block_q": 2.0}, TypeError, r"tiled_attention: block_q must be a positive int or None, got 2.0"),
        ({"block_q": True}, TypeError, r"tiled_attention: block_q must be a positive int or None, got True"),
        ({"block_k": 0}, ValueError, r"tiled_attention: block_k must be a positive int, got 0"),
        ({"block_k": -1}, ValueError, r"tiled_attention: block_k must be a positive int, got -1"),
        ({"block_k": "4"}, TypeError, r"tiled_attention: block_k must be a positive int, got '4'"),
        ({"block_size": 0}, ValueError, r"tiled_attention: block_size must be a positive int, got 0"),
        ({"block_size": 4, "block_k": 4}, ValueError, r"tiled_attention: give block_k or .*block_size, not both"),
    ],
)
def test_tiled_bad_block_sizes(kwargs, exc, msg):
    q, k, v = _qkv((1, 4, 8), 4)
    with pytest.raises(exc, match=msg):
        E.tiled_attention(q, k, v, **kwargs)


def test_tiled_bad_shapes_name_the_argument():
    q, k, v = _qkv((2, 4, 8), 6)
    cases = [
        ((q, k[..., :3], v), ValueError, r"tiled_attention: q and k must have the same last dim d"),
        ((q, k, v[..., :5, :]), ValueError, r"tiled_attention: k and v must have the same number of positions T_k"),
        ((q, k[:1], v[:1]), ValueError, r"tiled_attention: q, k and v must have the same batch dims"),
        ((q, k, v, torch.ones(4, 5, dtype=torch.bool)), ValueError, r"tiled_attention: mask of shape \(4, 5\)"),
        ((q, k, v, torch.ones(4, 6)), TypeError, r"tiled_attention: mask must be a bool tensor"),
        ((q, k.double(), v), TypeError, r"tiled_attention: q, k and v must share a dtype"),
        ((q[0, 0], k, v), ValueError, r"tiled_attention: q must have at least 2 dims"),
    ]
    for args, exc, msg in cases:
        with pytest.raises(exc, match=msg):
            E.tiled_attention(*args, block_q=2, block_k=2)


# --------------------------------------------------------------------------- masks


def test_sliding_window_structure():
    m = E.sliding_window_mask(6, 3)
    expected = torch.tensor(
        [
            [1, 0, 0, 0, 0, 0],
            [1, 1, 0, 0, 0, 0],
            [1, 1, 1, 0, 0, 0],
            [0, 1, 1, 1, 0, 0],
            [0, 0, 1, 1, 1, 0],
            [0, 0, 0, 1, 1, 1],
        ],
        dtype=torch.bool,
    )
    assert torch.equal(m, expected)
    assert torch.equal(E.sliding_window_mask(5, 5), attnlib.causal_mask(5))
    assert torch.equal(E.sliding_window_mask(5, 1), torch.eye(5, dtype=torch.bool))
    sym = E.sliding_window_mask(6, 2, causal=False)
    assert torch.equal(sym, sym.T) and E.count_attended(sym) == 6 + 2 * 5


@settings(max_examples=30, deadline=None)
@given(T=st.integers(1, 40), window=st.integers(1, 45))
def test_sliding_window_counts(T, window):
    m = E.sliding_window_mask(T, window)
    w = min(window, T)
    # row i sees min(i + 1, window) keys
    assert E.count_attended(m) == sum(min(i + 1, w) for i in range(T))
    assert not (m & ~attnlib.causal_mask(T)).any()  # never looks ahead
    assert m.diagonal().all()  # every token sees itself


def test_block_sparse_structure():
    m = E.block_sparse_mask(7, 3)  # blocks {0,1,2} {3,4,5} {6}; summary keys 2 and 5
    expected = torch.tensor(
        [
            [1, 0, 0, 0, 0, 0, 0],
            [1, 1, 0, 0, 0, 0, 0],
            [1, 1, 1, 0, 0, 0, 0],
            [0, 0, 1, 1, 0, 0, 0],
            [0, 0, 1, 1, 1, 0, 0],
            [0, 0, 1, 1, 1, 1, 0],
            [0, 0, 1, 0, 0, 1, 1],
        ],
        dtype=torch.bool,
    )
    assert torch.equal(m, expected)
    assert torch.equal(E.block_sparse_mask(6, 6), attnlib.causal_mask(6))  # one block = full causal
    nc = E.block_sparse_mask(6, 3, causal=False, n_summary=0)
    assert E.count_attended(nc) == 2 * 9  # two dense 3x3 blocks
    assert E.count_attended(E.block_sparse_mask(6, 3, n_summary=3)) == E.count_attended(attnlib.causal_mask(6))


@settings(max_examples=30, deadline=None)
@given(T=st.integers(1, 40), block=st.integers(1, 12))
def test_block_sparse_properties(T, block):
    m = E.block_sparse_mask(T, block)
    assert not (m & ~attnlib.causal_mask(T)).any()
    assert m.diagonal().all()
    assert E.count_attended(m) <= T * (T + 1) // 2


def test_mask_bad_input():
    with pytest.raises(ValueError, match="window"):
        E.sliding_window_mask(4, 0)
    with pytest.raises(ValueError, match="block"):
        E.block_sparse_mask(4, 0)
    with pytest.raises(ValueError, match="n_summary"):
        E.block_sparse_mask(4, 2, n_summary=3)
    with pytest.raises(TypeError, match="bool"):
        E.count_attended(torch.ones(2, 2))


# --------------------------------------------------------------------------- cost helpers


def test_pattern_bytes():
    assert E.pattern_bytes(2048) == 2048 * 2048 * 4
    assert E.pattern_bytes(2048, n_heads=96, n_layers=96, dtype=torch.float16) == 96 * 96 * 2048**2 * 2
    assert E.pattern_bytes(10, batch=3, dtype=torch.bfloat16) == 600
    assert E.pattern_bytes(7) == torch.empty(7, 7).nbytes
    with pytest.raises(ValueError, match="n_heads"):
        E.pattern_bytes(8, n_heads=0)
    with pytest.raises(TypeError, match="dtype"):
        E.pattern_bytes(8, dtype="float32")


def test_kv_cache_bytes():
    # GPT-3, one sequence of 2048 tokens in fp16: 2 x 96 x 96 x 2048 x 128 x 2 bytes
    assert E.kv_cache_bytes(2048, n_layers=96, n_heads=96, d_head=128, dtype=torch.float16) == (
        2 * 96 * 96 * 2048 * 128 * 2
    )
    # against a real cache filled by a decoder's forward pass
    cfg = attnlib.DecoderConfig(vocab_size=10, context_len=8, d_model=12, n_layers=2, n_heads=3)
    model = attnlib.Decoder(cfg).eval()
    caches = [attnlib.KVCache() for _ in range(cfg.n_layers)]
    with torch.no_grad():
        model(torch.zeros(4, 5, dtype=torch.long), kv_cache=caches)
    stored = sum(c.k.nbytes + c.v.nbytes for c in caches)
    assert stored == E.kv_cache_bytes(5, n_layers=2, n_heads=3, d_head=4, batch=4)
    with pytest.raises(ValueError, match="d_head"):
        E.kv_cache_bytes(5, n_layers=1, n_heads=2, d_head=0)


def test_largest_tensor_and_benchmark():
    with E.LargestTensor() as t:
        torch.zeros(10, 2) @ torch.zeros(2, 30)
    assert t.nbytes == 10 * 30 * 4 and t.shape == (10, 30)
    assert t.n_ops == 3  # two zeros, one mm
    with E.LargestTensor() as t:
        x = torch.zeros(100)
        x.view(10, 10)  # views allocate nothing
    assert t.shape == (100,)
    seconds = E.benchmark(torch.matmul, torch.ones(4, 4), torch.ones(4, 4), repeats=3)
    assert 0 < seconds < 1


# --------------------------------------------------------------------------- precision


@pytest.mark.parametrize("causal", [False, True])
def test_tiled_float64_is_float64_and_gradcheck(causal):
    """float64 inputs are computed in float64: equal to the explicit path to 1e-13, and autograd's
    finite differences agree, fully masked rows (T_q > T_k with causal) included."""
    q, k, v = _qkv((2, 7, 4), 5, d_v=3, dtype=torch.float64, seed=3)
    out = E.tiled_attention(q, k, v, is_causal=causal, block_size=2)
    assert out.dtype == torch.float64
    ref = attnlib.attention(q, k, v, is_causal=causal, return_weights=True)[0]
    torch.testing.assert_close(out, ref, atol=1e-13, rtol=1e-13)
    q, k, v = (t.requires_grad_(True) for t in (q, k, v))
    mask = torch.rand(7, 5, generator=torch.Generator().manual_seed(4)) > 0.4
    mask[2] = False
    assert torch.autograd.gradcheck(
        lambda q, k, v: E.tiled_attention(q, k, v, is_causal=causal, block_size=2, mask=mask), (q, k, v)
    )


@pytest.mark.parametrize("T_q,T_k", [(0, 3), (3, 0), (0, 0)])
@pytest.mark.parametrize("causal", [False, True])
def test_tiled_empty_sequences(T_q, T_k, causal):
    q, k, v = _qkv((2, T_q, 4), T_k, d_v=5)
    out = E.tiled_attention(q, k, v, is_causal=causal)
    assert out.shape == (2, T_q, 5) and (out == 0).all()
    torch.testing.assert_close(out, attnlib.attention(q, k, v, is_causal=causal))


# --------------------------------------------------------------------------- counting FLOPs


def _counted_flops(module, x, **kwargs) -> int:
    """FLOPs of the matrix products one forward call runs, as PyTorch's own counter sees them."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(x, **kwargs)
    return counter.get_total_flops()


@pytest.mark.parametrize("T", [1, 7, 32])
def test_flops_per_token_counts_the_matmuls_of_an_attention_layer(T):
    d, H = 48, 4
    torch.manual_seed(0)
    mha = attnlib.MultiHeadAttention(d, H).eval()
    x = torch.randn(2, T, d)
    # the explicit path (return_weights) runs every product as an ordinary matmul the counter sees
    got = _counted_flops(mha, x, return_weights=True, is_causal=True)
    f = E.flops_per_token(d, T)
    assert got == 2 * T * (f.projections + f.attention)  # a batch of 2 sequences of T tokens


@pytest.mark.parametrize("d_mlp", [None, 40])
def test_flops_per_token_counts_the_matmuls_of_a_decoder_block(d_mlp):
    d, H, T = 32, 4, 24
    torch.manual_seed(0)
    block = attnlib.DecoderBlock(attnlib.DecoderConfig(d_model=d, n_heads=H, d_mlp=d_mlp)).eval()
    with attnlib.record_patterns(block):  # the explicit path: every product a matmul the counter sees
        got = _counted_flops(block, torch.randn(1, T, d))
    f = E.flops_per_token(d, T, d_mlp=d_mlp)
    assert got == T * f.total
    assert f.mlp == 2 * 2 * d * (4 * d if d_mlp is None else d_mlp)


def test_flops_per_token_gpt3_share_and_crossover():
    d = attnlib.GPT3.d_model
    f = E.flops_per_token(d, attnlib.GPT3.context_len, d_mlp=attnlib.GPT3.d_mlp)
    assert (f.projections, f.mlp, f.attention) == (8 * d * d, 16 * d * d, 4 * 2048 * d)
    assert 0.02 < f.attention_share < 0.03
    at = E.flops_per_token(d, 6 * d)  # the crossover: attention equals the rest
    assert at.attention == at.projections + at.mlp and at.attention_share == 0.5
    with pytest.raises(ValueError, match="context_len"):
        E.flops_per_token(8, 0)
    with pytest.raises(TypeError, match="d_mlp"):
        E.flops_per_token(8, 4, d_mlp=2.0)


# --------------------------------------------------------------------------- counting sparse masks


@settings(max_examples=60, deadline=None)
@given(
    T=st.integers(1, 70),
    block=st.integers(1, 20),
    n_summary=st.integers(0, 20),
    causal=st.booleans(),
)
def test_block_sparse_count_equals_the_mask(T, block, n_summary, causal):
    n_summary = min(n_summary, block)
    mask = E.block_sparse_mask(T, block, n_summary=n_summary, causal=causal)
    assert E.block_sparse_count(T, block, n_summary=n_summary, causal=causal) == E.count_attended(mask)


@pytest.mark.parametrize("T,block", [(4096, 64), (512, 64), (1024, 32), (96, 8), (64, 64), (7, 1)])
def test_block_sparse_closed_form(T, block):
    # causal, one summary key per block, block dividing T: T (block + T / block) / 2 entries
    expected = T * (block + T // block) // 2
    assert E.count_attended(E.block_sparse_mask(T, block)) == expected
    assert E.block_sparse_count(T, block) == expected
    if (T, block) == (4096, 64):
        assert expected == 262_144  # the count chapter 12 prints


def test_block_sparse_count_bad_input():
    with pytest.raises(ValueError, match="n_summary"):
        E.block_sparse_count(16, 4, n_summary=5)
    with pytest.raises(TypeError, match="causal"):
        E.block_sparse_count(16, 4, causal=1)
    with pytest.raises(ValueError, match="block"):
        E.block_sparse_count(16, 0)


# --------------------------------------------------------------------------- GQA / MQA caches


def test_kv_cache_bytes_with_fewer_kv_heads():
    gpt3 = dict(n_layers=96, n_heads=96, d_head=128, dtype=torch.float16)
    full = E.kv_cache_bytes(2048, **gpt3)
    assert E.kv_cache_bytes(2048, **gpt3, n_kv_heads=96) == full
    assert E.kv_cache_bytes(2048, **gpt3, n_kv_heads=8) * 12 == full
    assert E.kv_cache_bytes(2048, **gpt3, n_kv_heads=1) * 96 == full
    # against a real cache of a grouped-query decoder: only the key/value heads are stored
    cfg = attnlib.DecoderConfig(vocab_size=10, context_len=8, d_model=24, n_layers=2, n_heads=6,
                                n_kv_heads=2)
    model = attnlib.Decoder(cfg).eval()
    caches = [attnlib.KVCache() for _ in range(cfg.n_layers)]
    with torch.no_grad():
        model(torch.zeros(3, 5, dtype=torch.long), kv_cache=caches)
    assert caches[0].k.shape == (3, 2, 5, 4)
    stored = sum(c.k.nbytes + c.v.nbytes for c in caches)
    assert stored == E.kv_cache_bytes(5, n_layers=2, n_heads=6, d_head=4, batch=3, n_kv_heads=2)
    with pytest.raises(ValueError, match="n_kv_heads must divide"):
        E.kv_cache_bytes(5, n_layers=1, n_heads=6, d_head=4, n_kv_heads=4)
    with pytest.raises(ValueError, match="n_kv_heads"):
        E.kv_cache_bytes(5, n_layers=1, n_heads=6, d_head=4, n_kv_heads=0)
