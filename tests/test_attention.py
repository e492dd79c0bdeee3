"""attnlib.attention: both paths against a hand-written reference and PyTorch's SDPA.

Every test runs on the CPU, and on CUDA when it is available (skipped otherwise). "Both paths"
means the fast path (``return_weights=False``, PyTorch's fused SDPA) and the explicit path
(``return_weights=True``, scores and softmax written out).
"""

from __future__ import annotations

import math
import sys

import pytest
import torch
import torch.nn.functional as F

import attnlib
from attnlib import attention, causal_mask, from_mha_mask, padding_mask, softmax

CUDA = torch.cuda.is_available()
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not CUDA, reason="needs a CUDA device"))]
DTYPES = [torch.float32, torch.float16, torch.bfloat16]
PATHS = [pytest.param(False, id="fast"), pytest.param(True, id="explicit")]
# Tolerances against a float64 reference computed from the same (already rounded) inputs: about
# one rounding of the output in the working dtype, plus the fused kernels' own accumulation error.
TOL = {
    torch.float32: dict(atol=2e-5, rtol=2e-5),
    torch.float16: dict(atol=3e-3, rtol=3e-3),
    torch.bfloat16: dict(atol=2.5e-2, rtol=2.5e-2),
}


# --------------------------------------------------------------------------- references (independent of attnlib)


def lower_right_causal(T_q: int, T_k: int, device="cpu") -> torch.Tensor:
    """Query i may see keys 0 .. i + (T_k - T_q): built with tril, not with attnlib's arange code."""
    return torch.ones(T_q, T_k, dtype=torch.bool, device=device).tril(diagonal=T_k - T_q)


def reference(q, k, v, mask=None, is_causal=False, scale=None):
    """softmax(q k^T * scale + mask) v in float64, written out; rows with no allowed key give zeros.

    Returns (out, weights) in float64.
    """
    q, k, v = q.double(), k.double(), v.double()
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = q @ k.transpose(-2, -1) * scale
    allowed = torch.ones_like(scores, dtype=torch.bool)
    if is_causal:
        allowed = allowed & lower_right_causal(q.shape[-2], k.shape[-2], q.device)
    if mask is not None:
        if mask.dtype == torch.bool:
            allowed = allowed & mask
        else:
            scores = scores + mask.double()
            allowed = allowed & (mask > float("-inf"))
    scores = scores.masked_fill(~allowed, float("-inf"))
    empty = ~allowed.any(-1, keepdim=True)
    scores = scores.masked_fill(empty, 0.0)
    w = torch.exp(scores - scores.amax(-1, keepdim=True))
    w = w / w.sum(-1, keepdim=True)
    w = w.masked_fill(empty, 0.0)
    return w @ v, w


def qkv(batch=(2, 3), T_q=5, T_k=7, d=8, d_v=6, dtype=torch.float32, device="cpu", seed=0,
        requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(*batch, T_q, d, generator=g)
    k = torch.randn(*batch, T_k, d, generator=g)
    v = torch.randn(*batch, T_k, d_v, generator=g)
    out = [t.to(device=device, dtype=dtype).requires_grad_(requires_grad) for t in (q, k, v)]
    return tuple(out)


def run(q, k, v, explicit, **kw):
    """Call attnlib.attention on the chosen path; return (out, weights or None)."""
    if explicit:
        out, w = attention(q, k, v, return_weights=True, **kw)
        assert w.shape == q.shape[:-1] + (k.shape[-2],)
        return out, w
    return attention(q, k, v, **kw), None


def close(actual, expected, dtype, **override):
    tol = dict(TOL[dtype], **override)
    torch.testing.assert_close(actual.double(), expected.double(), **tol)


# --------------------------------------------------------------------------- agreement with the references


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("explicit", PATHS)
@pytest.mark.parametrize("batch", [(), (2,), (2, 3)], ids=["no-batch", "B", "B,H"])
@pytest.mark.parametrize("T_q,T_k", [(5, 7), (7, 5), (6, 6), (1, 9)])
def test_matches_hand_written_and_sdpa(device, dtype, explicit, batch, T_q, T_k):
    q, k, v = qkv(batch, T_q, T_k, dtype=dtype, device=device)
    out, w = run(q, k, v, explicit)
    assert out.shape == (*batch, T_q, v.shape[-1]) and out.dtype == dtype
    ref_out, ref_w = reference(q, k, v)
    close(out, ref_out, dtype)
    # hand-written softmax(QK^T/sqrt(d))V in float32, with nothing from attnlib
    qf, kf, vf = q.float(), k.float(), v.float()
    hand = torch.softmax(qf @ kf.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1) @ vf
    close(out, hand, dtype)
    close(out, F.scaled_dot_product_attention(qf, kf, vf), dtype)
    if explicit:
        assert w.dtype == dtype
        close(w, ref_w, dtype)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("explicit", PATHS)
@pytest.mark.parametrize("kind", ["bool", "float"])
@pytest.mark.parametrize("mask_shape", ["T_q,T_k", "B,1,1,T_k", "B,H,T_q,T_k"])
def test_masks(device, dtype, explicit, kind, mask_shape):
    B, H, T_q, T_k = 2, 3, 5, 7
    q, k, v = qkv((B, H), T_q, T_k, dtype=dtype, device=device, seed=1)
    shape = {"T_q,T_k": (T_q, T_k), "B,1,1,T_k": (B, 1, 1, T_k), "B,H,T_q,T_k": (B, H, T_q, T_k)}[mask_shape]
    g = torch.Generator().manual_seed(2)
    allowed = torch.rand(shape, generator=g) > 0.4
    allowed[..., 0] = True  # no fully masked rows here (they have their own tests)
    if kind == "bool":
        mask = allowed
    else:  # an additive mask: -inf where blocked, a finite bias elsewhere
        mask = torch.randn(shape, generator=g).masked_fill(~allowed, float("-inf"))
    mask = mask.to(device)
    out, w = run(q, k, v, explicit, mask=mask)
    ref_out, ref_w = reference(q, k, v, mask=mask)
    close(out, ref_out, dtype)
    sdpa = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=mask)
    close(out, sdpa, dtype)
    if explicit:
        close(w, ref_w, dtype)
        blocked = ~allowed.to(device).expand(B, H, T_q, T_k)
        assert (w[blocked] == 0).all(), "a blocked key got a nonzero weight"


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("explicit", PATHS)
@pytest.mark.parametrize("T_q,T_k", [(6, 6), (3, 8), (1, 8)])
def test_causal_is_lower_right(device, dtype, explicit, T_q, T_k):
    q, k, v = qkv((2, 3), T_q, T_k, dtype=dtype, device=device, seed=3)
    out, w = run(q, k, v, explicit, is_causal=True)
    explicit_mask = lower_right_causal(T_q, T_k, device)
    sdpa = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=explicit_mask)
    close(out, sdpa, dtype)
    close(out, reference(q, k, v, is_causal=True)[0], dtype)
    if T_q == T_k:  # SDPA's own is_causal is top-left aligned, the same thing for a square pattern
        sdpa_causal = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=True)
        close(out, sdpa_causal, dtype)
    if explicit:
        assert (w[..., ~explicit_mask] == 0).all()
        # the last query sees every key
        assert (w[..., -1, :] > 0).all()


@pytest.mark.parametrize("explicit", PATHS)
@pytest.mark.parametrize("kind", ["bool", "float"])
def test_causal_combined_with_mask(explicit, kind):
    q, k, v = qkv((2, 3), 4, 6, seed=4)
    allowed = torch.ones(2, 1, 1, 6, dtype=torch.bool)
    allowed[0, ..., 1] = False
    mask = allowed if kind == "bool" else torch.zeros(2, 1, 1, 6).masked_fill(~allowed, float("-inf"))
    out, w = run(q, k, v, explicit, mask=mask, is_causal=True)
    both = allowed & lower_right_causal(4, 6)
    sdpa = F.scaled_dot_product_attention(q, k, v, attn_mask=both)
    close(out, sdpa, torch.float32)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("explicit", PATHS)
@pytest.mark.parametrize("scale", [0.1, 1.0, 2.5])
def test_custom_scale(device, explicit, scale):
    q, k, v = qkv((2, 3), 5, 7, device=device, seed=5)
    out, w = run(q, k, v, explicit, scale=scale)
    hand = torch.softmax(q @ k.transpose(-2, -1) * scale, dim=-1) @ v
    close(out, hand, torch.float32)
    close(out, F.scaled_dot_product_attention(q, k, v, scale=scale), torch.float32)
    # the default scale really is 1/sqrt(d): a different scale must give a different answer
    default = attention(q, k, v)
    assert not torch.allclose(out, default, atol=1e-3)


def test_value_width_may_differ_from_key_width():
    q, k, v = qkv((2,), 3, 4, d=8, d_v=2)
    for explicit in (False, True):
        out, _ = run(q, k, v, explicit)
        assert out.shape == (2, 3, 2)


# --------------------------------------------------------------------------- weights


@pytest.mark.parametrize("dtype", DTYPES)
def test_weight_rows_sum_to_one_or_zero(dtype):
    q, k, v = qkv((2, 3), 6, 5, dtype=dtype, seed=6)
    allowed = torch.rand(2, 3, 6, 5, generator=torch.Generator().manual_seed(7)) > 0.5
    allowed[0, 0, 2] = False  # one fully masked row
    allowed[1, 2, 0] = False
    _, w = attention(q, k, v, allowed, return_weights=True)
    sums = w.float().sum(-1)
    expected = allowed.any(-1).float()
    tol = 1e-5 if dtype == torch.float32 else 1e-2
    torch.testing.assert_close(sums, expected, atol=tol, rtol=0)
    assert (w >= 0).all()


# --------------------------------------------------------------------------- fully masked rows


def _dead_row_cases(device):
    """(name, T_q, T_k, kwargs, dead_rows) with dead_rows a bool (T_q,) of rows with no key."""
    T_q, T_k = 5, 4
    bool_mask = torch.ones(T_q, T_k, dtype=torch.bool)
    bool_mask[1] = False
    bool_mask[3] = False
    dead = torch.tensor([False, True, False, True, False])
    float_mask = torch.zeros(T_q, T_k).masked_fill(~bool_mask, float("-inf"))
    causal_dead = torch.tensor([True, False, False, False, False])  # T_q=5 > T_k=4: row 0 sees nothing
    return [
        ("bool", T_q, T_k, dict(mask=bool_mask.to(device)), dead),
        ("float", T_q, T_k, dict(mask=float_mask.to(device)), dead),
        ("causal", T_q, T_k, dict(is_causal=True), causal_dead),
    ]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("explicit", PATHS)
@pytest.mark.parametrize("case", [0, 1, 2], ids=["bool", "float", "causal-Tq>Tk"])
def test_fully_masked_rows_zero_output_and_finite_grads(device, explicit, case):
    name, T_q, T_k, kw, dead = _dead_row_cases(device)[case]
    dead = dead.to(device)
    q, k, v = qkv((2, 3), T_q, T_k, device=device, seed=8, requires_grad=True)
    out, w = run(q, k, v, explicit, **kw)
    assert torch.isfinite(out).all()
    assert (out[..., dead, :] == 0).all(), "a fully masked row must give a zero output"
    assert (out[..., ~dead, :].abs().sum(-1) > 0).all()
    close(out, reference(q.detach(), k.detach(), v.detach(), **kw)[0], torch.float32)
    if explicit:
        assert (w[..., dead, :] == 0).all(), "a fully masked row must give zero weights"
    loss = out.sum() if w is None else out.sum() + w.sum()
    loss.backward()
    for t, nm in ((q, "q"), (k, "k"), (v, "v")):
        assert t.grad is not None and torch.isfinite(t.grad).all(), f"{nm}.grad is not finite"
    # dead queries influence nothing: their gradient is exactly zero
    assert (q.grad[..., dead, :] == 0).all()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("explicit", PATHS)
@pytest.mark.parametrize("case", [0, 1, 2], ids=["bool", "float", "causal-Tq>Tk"])
def test_fully_masked_rows_half_precision(device, dtype, explicit, case):
    name, T_q, T_k, kw, dead = _dead_row_cases(device)[case]
    q32, k32, v32 = qkv((2, 3), T_q, T_k, device=device, seed=9)
    kw_half = dict(kw)
    if name == "float":  # a float mask in the working dtype, -inf and all
        kw_half["mask"] = kw["mask"].to(dtype)
    q, k, v = (t.to(dtype).requires_grad_(True) for t in (q32, k32, v32))
    out, w = run(q, k, v, explicit, **kw_half)
    assert torch.isfinite(out).all()
    assert (out[..., dead.to(device), :] == 0).all()
    out32, _ = run(q32, k32, v32, explicit, **kw)
    close(out, out32, dtype)
    out.float().sum().backward()
    for t in (q, k, v):
        assert torch.isfinite(t.grad).all()


def test_finfo_min_float_mask_is_not_treated_as_blocked_row():
    """A float mask using the dtype's lowest value (not -inf) is a huge bias, not a block: a row of
    such values is softmaxed like any other row (uniform here), which is what SDPA does too."""
    q, k, v = qkv((1,), 2, 3)
    mask = torch.zeros(2, 3)
    mask[0] = torch.finfo(torch.float32).min
    for explicit in (False, True):
        out, _ = run(q, k, v, explicit, mask=mask)
        close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask), torch.float32)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_float_mask_is_read_in_the_working_dtype(device, dtype):
    """A float32 mask with large finite values (-1e9, the float32 minimum) used with half-precision
    inputs: the fast path must cast the mask to q's dtype for SDPA, where -1e9 overflows to -inf in
    fp16. Both paths must read the mask the same way (in the working dtype) and agree, with no NaN."""
    q, k, v = qkv((2,), 3, 4, dtype=dtype, device=device, seed=10)
    mask = torch.zeros(3, 4)
    mask[1] = -1e9  # a whole row of "very negative": -inf in fp16, finite in bf16
    mask[2, :2] = torch.finfo(torch.float32).min
    mask = mask.to(device)
    fast = attention(q, k, v, mask)
    explicit, w = attention(q, k, v, mask, return_weights=True)
    assert torch.isfinite(fast).all() and torch.isfinite(explicit).all()
    close(fast, explicit, dtype)
    if dtype == torch.float16:  # -1e9 is -inf in fp16: row 1 has no key left, on both paths
        assert (fast[:, 1] == 0).all() and (explicit[:, 1] == 0).all() and (w[:, 1] == 0).all()
    # (no float64 reference here: scores + 1e9 keep no digits in fp32, which is why the book masks
    # with -inf and never with -1e9)


# --------------------------------------------------------------------------- precision: every dtype


@pytest.mark.parametrize("explicit", PATHS)
@pytest.mark.parametrize("case", [0, 1, 2], ids=["bool", "float", "causal-Tq>Tk"])
def test_float64_gradcheck_with_fully_masked_rows(explicit, case):
    """float64 stays float64 on both paths, so autograd's finite differences agree with it."""
    _, T_q, T_k, kw, _ = _dead_row_cases("cpu")[case]
    if "mask" in kw:
        kw = dict(kw, mask=kw["mask"].double() if kw["mask"].is_floating_point() else kw["mask"])
    q, k, v = qkv((2,), T_q, T_k, d=4, d_v=3, dtype=torch.float64, seed=11, requires_grad=True)

    def f(q, k, v):
        out, w = run(q, k, v, explicit, **kw)
        return out if w is None else (out, w)

    assert torch.autograd.gradcheck(f, (q, k, v), eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("explicit", PATHS)
def test_float64_gradcheck_plain_and_causal(explicit):
    q, k, v = qkv((2,), 4, 6, d=5, d_v=3, dtype=torch.float64, seed=12, requires_grad=True)
    for kw in ({}, {"is_causal": True}, {"scale": 0.3}):
        assert torch.autograd.gradcheck(lambda q, k, v, kw=kw: run(q, k, v, explicit, **kw)[0], (q, k, v))


@pytest.mark.parametrize("kw", [{}, {"is_causal": True}, {"mask": "float"}], ids=["plain", "causal", "float-mask"])
def test_float64_is_computed_in_float64(kw):
    """The explicit path agrees with a float64 reference and with the fast path to float64 precision
    (it used to compute in float32: errors of ~1e-8)."""
    q, k, v = qkv((2, 3), 6, 6, dtype=torch.float64, seed=13)
    if kw.get("mask") == "float":
        kw = {"mask": torch.randn(6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))}
    ref_out, ref_w = reference(q, k, v, **kw)
    out, w = run(q, k, v, True, **kw)
    assert out.dtype == w.dtype == torch.float64
    torch.testing.assert_close(out, ref_out, atol=1e-13, rtol=1e-13)
    torch.testing.assert_close(w, ref_w, atol=1e-13, rtol=1e-13)
    torch.testing.assert_close(run(q, k, v, False, **kw)[0], out, atol=1e-13, rtol=1e-13)


def test_float64_large_inputs_stay_finite():
    """Scores of ~1e60 overflow float32; in float64 they are ordinary numbers."""
    q, k, v = qkv((1,), 3, 4, dtype=torch.float64, seed=14)
    q = q * 1e30
    k = k * 1e30
    ref_out, ref_w = reference(q, k, v)
    out, w = run(q, k, v, True)
    assert torch.isfinite(w).all()
    torch.testing.assert_close(w, ref_w)
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(run(q, k, v, False)[0], ref_out)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_softmax_runs_in_float32(dtype):
    """The explicit path's softmax is computed in float32 (then rounded once), so its weights equal
    float32 weights of the same inputs rounded to the dtype."""
    q, k, v = qkv((2, 3), 5, 7, dtype=dtype, seed=15)
    _, w = attention(q, k, v, return_weights=True)
    _, w32 = attention(q.float(), k.float(), v.float(), return_weights=True)
    assert w.dtype == dtype
    torch.testing.assert_close(w, w32.to(dtype), atol=0, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("explicit", PATHS)
@pytest.mark.parametrize("T_q,T_k", [(0, 3), (3, 0), (0, 0)])
@pytest.mark.parametrize("is_causal", [False, True])
def test_empty_sequences(dtype, explicit, T_q, T_k, is_causal):
    """An empty query or key sequence has an answer: no rows, or rows with no key (zeros)."""
    q, k, v = qkv((2,), T_q, T_k, d=4, d_v=5, dtype=dtype)
    out, w = run(q, k, v, explicit, is_causal=is_causal)
    assert out.shape == (2, T_q, 5) and out.dtype == dtype
    assert (out == 0).all()
    if w is not None:
        assert w.shape == (2, T_q, T_k)


# --------------------------------------------------------------------------- mask helpers and softmax


def test_causal_mask_helper():
    assert torch.equal(causal_mask(4), lower_right_causal(4, 4))
    assert torch.equal(causal_mask(3, 6), lower_right_causal(3, 6))
    assert torch.equal(causal_mask(6, 3), lower_right_causal(6, 3))
    assert causal_mask(1, 5).all()  # one new token sees the whole cache
    assert causal_mask(3, 6).dtype == torch.bool and causal_mask(3, 6).shape == (3, 6)
    with pytest.raises(ValueError, match=r"T_q must be a positive int, got 0"):
        causal_mask(0)
    with pytest.raises(TypeError, match=r"T_k must be a positive int, got 2\.5"):
        causal_mask(2, 2.5)


def test_padding_mask_helper():
    m = padding_mask([2, 4, 0], 4)
    assert m.shape == (3, 1, 1, 4) and m.dtype == torch.bool
    expected = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]], dtype=torch.bool)
    assert torch.equal(m[:, 0, 0], expected)
    with pytest.raises(ValueError, match=r"every length must lie in \[0, T=4\], got \[5\]"):
        padding_mask([5], 4)
    with pytest.raises(ValueError, match=r"lengths must be a 1-D integer.*got dtype torch.float32"):
        padding_mask(torch.tensor([1.0, 2.0]), 4)


def test_from_mha_mask():
    blocked = torch.tensor([[False, True], [True, False]])
    assert torch.equal(from_mha_mask(blocked), ~blocked)
    f = torch.tensor([[0.0, float("-inf")]])
    assert from_mha_mask(f) is f
    with pytest.raises(TypeError, match=r"mask must be bool or floating point, got dtype torch.int64"):
        from_mha_mask(torch.tensor([[0, 1]]))
    with pytest.raises(TypeError, match=r"mask must be a torch.Tensor, got list"):
        from_mha_mask([[True]])


def test_softmax_matches_torch_and_is_stable():
    x = torch.randn(3, 7, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(softmax(x), torch.softmax(x, -1))
    torch.testing.assert_close(softmax(x, dim=0), torch.softmax(x, 0))
    big = torch.tensor([[1000.0, 1001.0, 999.0]])
    s = softmax(big)
    assert torch.isfinite(s).all()
    torch.testing.assert_close(s, torch.softmax(big, -1))
    torch.testing.assert_close(softmax(torch.tensor([[0.0, float("-inf")]])), torch.tensor([[1.0, 0.0]]))


def test_dropout_only_in_explicit_weights_when_asked():
    q, k, v = qkv((2,), 4, 4)
    torch.manual_seed(0)
    out, w = attention(q, k, v, dropout_p=0.5, return_weights=True)
    # dropout zeroes some weights and rescales the rest by 1/(1-p)
    assert (w == 0).any()
    _, w0 = attention(q, k, v, return_weights=True)
    kept = w != 0
    torch.testing.assert_close(w[kept], w0[kept] * 2)
    with pytest.raises(ValueError, match=r"dropout_p must lie in \[0, 1\), got 1.0"):
        attention(q, k, v, dropout_p=1.0)


def test_get_device_is_cpu_without_accelerators():
    dev = attnlib.get_device()
    assert isinstance(dev, torch.device)
    if not CUDA and not torch.backends.mps.is_available():
        assert dev == torch.device("cpu")
    elif CUDA:
        assert dev.type == "cuda"


# --------------------------------------------------------------------------- bad input


@pytest.fixture
def no_compute(monkeypatch):
    """Make any attention computation fail loudly, so a test proves validation fires first."""

    def boom(*a, **k):
        raise AssertionError("attention computed something before validating its input")

    attention_module = sys.modules["attnlib.attention"]  # the name attnlib.attention is the function
    monkeypatch.setattr(attention_module.F, "scaled_dot_product_attention", boom)
    monkeypatch.setattr(torch, "matmul", boom)


@pytest.mark.parametrize("explicit", PATHS)
def test_bad_q_k_last_dim(explicit, no_compute):
    q, k, v = torch.randn(2, 3, 8), torch.randn(2, 4, 6), torch.randn(2, 4, 6)
    with pytest.raises(ValueError, match=r"q and k must have the same last dim d.*got q \(2, 3, 8\) \(d=8\) "
                                         r"and k \(2, 4, 6\) \(d=6\)"):
        attention(q, k, v, return_weights=explicit)


@pytest.mark.parametrize("explicit", PATHS)
def test_bad_mask_not_broadcastable(explicit, no_compute):
    q, k, v = qkv((2, 3), 5, 7)
    with pytest.raises(ValueError, match=r"mask of shape \(5, 6\) does not broadcast to the pattern's shape "
                                         r"\(2, 3, 5, 7\)"):
        attention(q, k, v, torch.ones(5, 6, dtype=torch.bool), return_weights=explicit)
    # a mask with more dims than the pattern would silently broadcast the output up: refused
    with pytest.raises(ValueError, match=r"mask of shape \(4, 2, 3, 5, 7\) does not broadcast"):
        attention(q, k, v, torch.ones(4, 2, 3, 5, 7, dtype=torch.bool), return_weights=explicit)


@pytest.mark.parametrize("explicit", PATHS)
@pytest.mark.parametrize("dtype", [torch.int64, torch.uint8, torch.int32])
def test_bad_mask_integer_dtype(explicit, dtype, no_compute):
    q, k, v = qkv((2,), 3, 3)
    with pytest.raises(TypeError, match=rf"mask must be bool \(True = may attend\) or float .*got dtype {dtype}"):
        attention(q, k, v, torch.ones(3, 3, dtype=dtype), return_weights=explicit)


@pytest.mark.parametrize("explicit", PATHS)
def test_bad_number_of_dims(explicit, no_compute):
    with pytest.raises(ValueError, match=r"q must have at least 2 dims \(\.\.\., T, d\), got shape \(8,\)"):
        attention(torch.randn(8), torch.randn(3, 8), torch.randn(3, 8), return_weights=explicit)
    with pytest.raises(ValueError, match=r"same number of dims, got q \(2, 3, 8\), k \(3, 8\), v \(3, 8\)"):
        attention(torch.randn(2, 3, 8), torch.randn(3, 8), torch.randn(3, 8), return_weights=explicit)


@pytest.mark.parametrize("explicit", PATHS)
def test_bad_devices(explicit, no_compute):
    other = "cuda" if CUDA else "meta"
    q, k, v = qkv((2,), 3, 4)
    with pytest.raises(ValueError, match=rf"q, k and v must be on one device, got q on cpu, k on {other}"):
        attention(q, k.to(other), v, return_weights=explicit)
    with pytest.raises(ValueError, match=rf"mask is on {other}.* but q is on cpu"):
        attention(q, k, v, torch.ones(3, 4, dtype=torch.bool, device=other), return_weights=explicit)


@pytest.mark.parametrize("explicit", PATHS)
def test_bad_non_tensor_and_dtypes(explicit, no_compute):
    with pytest.raises(TypeError, match=r"q must be a torch.Tensor, got a list"):
        attention([[1.0]], torch.randn(1, 1), torch.randn(1, 1), return_weights=explicit)
    with pytest.raises(TypeError, match=r"k must be floating point, got dtype torch.int64"):
        attention(torch.randn(2, 2), torch.ones(2, 2, dtype=torch.long), torch.randn(2, 2),
                  return_weights=explicit)
    with pytest.raises(TypeError, match=r"must share a dtype, got q torch.float32, k torch.float16"):
        attention(torch.randn(2, 2), torch.randn(2, 2).half(), torch.randn(2, 2), return_weights=explicit)
    with pytest.raises(TypeError, match=r"mask must be a torch.Tensor or None, got a list"):
        attention(*qkv((1,), 2, 2), [[True, True]], return_weights=explicit)
    with pytest.raises(ValueError, match=r"k and v must have the same number of positions T_k, got "
                                         r"k \(1, 2, 8\) \(T_k=2\) and v \(1, 3, 8\) \(T_k=3\)"):
        attention(torch.randn(1, 2, 8), torch.randn(1, 2, 8), torch.randn(1, 3, 8), return_weights=explicit)
    with pytest.raises(ValueError, match=r"same batch dims \(\.\.\.\), got q \(2, 2, 8\), k \(3, 2, 8\)"):
        attention(torch.randn(2, 2, 8), torch.randn(3, 2, 8), torch.randn(3, 2, 8), return_weights=explicit)
