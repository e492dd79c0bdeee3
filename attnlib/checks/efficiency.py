"""Checkers for chapter 11, the cost of attention at scale.

* :func:`check_online_softmax` - one update step of the online softmax (running max, running sum,
  accumulator); diagnoses a missing rescale of the sum or of the accumulator when the max grows.
* :func:`check_sliding_window_mask` - a causal sliding-window mask; diagnoses an off-by-one window,
  looking ahead, a flipped polarity and a transposed mask.
* :func:`check_window_count` - the number of (query, key) pairs a sliding window allows, by formula;
  diagnoses forgetting that the first rows are shorter.
* :func:`check_pattern_memory` - bytes needed to store every attention pattern; diagnoses forgetting
  the heads, the layers, the batch or the size of one entry.
"""

from __future__ import annotations

import math

import torch

from ._core import call, case, close, fail, run_check, tensor_output

__all__ = [
    "check_online_softmax",
    "check_sliding_window_mask",
    "check_window_count",
    "check_pattern_memory",
]


# --------------------------------------------------------------------------- online softmax


def _step(m, l, acc, s, v, *, rescale_l=True, rescale_acc=True, flip=False, raw=False):  # noqa: E741
    """The reference update and its known wrong variants (``raw``: exp of the unshifted scores)."""
    m_new = torch.maximum(m, s.amax(dim=-1, keepdim=True))
    alpha = torch.exp(m - m_new) if not flip else torch.exp(m_new - m)
    alpha = torch.nan_to_num(alpha, nan=0.0, posinf=0.0)  # first step: m = -inf
    if raw:
        alpha = torch.ones_like(alpha)
    p = torch.exp(s - m_new) if not raw else torch.exp(s)
    l_new = (l * alpha if rescale_l else l) + p.sum(dim=-1, keepdim=True)
    acc_new = (acc * alpha if rescale_acc else acc) + p @ v
    return m_new, l_new, acc_new


def _run(step_fn, s_tiles, v_tiles, d_v):
    T_q = s_tiles[0].shape[0]
    m = torch.full((T_q, 1), float("-inf"))
    l = torch.zeros(T_q, 1)  # noqa: E741
    acc = torch.zeros(T_q, d_v)
    states = []
    for s, v in zip(s_tiles, v_tiles, strict=True):
        m, l, acc = step_fn(m, l, acc, s, v)  # noqa: E741
        states.append((m, l, acc))
    return states


def _as_state(out, shapes):
    if not isinstance(out, (tuple, list)) or len(out) != 3:
        got = type(out).__name__ + (f" of {len(out)} items" if isinstance(out, (tuple, list)) else "")
        fail(f"your function must return the three updated tensors (m, l, acc); it returned {got}")
    state = []
    for name, t, shape in zip(("m", "l", "acc"), out, shapes, strict=True):
        t = tensor_output(t, what=f"your function's {name}")
        if tuple(t.shape) != tuple(shape):
            fail(f"the returned {name} has shape {tuple(t.shape)}; it must keep the shape {tuple(shape)}")
        state.append(t.float())
    return state


def _online_cases():
    g = torch.Generator().manual_seed(11)
    cases = []
    # Scores grow from tile to tile, so the max changes at every step.
    s = torch.randn(3, 7, generator=g) + torch.linspace(0, 6, 7)
    cases.append(("max grows from tile to tile", s, [2, 2, 3]))
    # Big scores: exp() overflows float32 unless the max is subtracted.
    cases.append(("large scores (about 1000)", 1000 + 5 * torch.randn(2, 6, generator=g), [3, 3]))
    # The max appears in the first tile and never changes afterwards.
    s = torch.randn(4, 5, generator=g)
    s[:, 0] = 9.0
    cases.append(("max in the first tile", s, [1, 4]))
    cases.append(("one key per tile", torch.randn(2, 4, generator=g) * 3, [1, 1, 1, 1]))
    return [(name, s, sizes, torch.randn(s.shape[1], 3, generator=g)) for name, s, sizes in cases]


def check_online_softmax(update) -> bool:
    """Check ``update(m, l, acc, scores, values) -> (m, l, acc)``, one step of the online softmax.

    Shapes: m and l (T_q, 1), acc (T_q, d_v), scores (T_q, B) for a tile of B keys, values (B, d_v).
    The state before the first tile is m = -inf, l = 0, acc = 0. After every tile, m must be the
    running max of the scores seen so far, l the sum of exp(score - m) over them and acc the sum of
    exp(score - m) * value; at the end acc / l must equal softmax(scores) @ values.
    """

    def body():
        n = 0
        for name, s, sizes, v in _online_cases():
            with case(name):
                s_tiles = list(torch.split(s, sizes, dim=1))
                v_tiles = list(torch.split(v, sizes, dim=0))
                T_q, d_v = s.shape[0], v.shape[1]
                shapes = ((T_q, 1), (T_q, 1), (T_q, d_v))

                def reader_step(m, l, acc, st, vt, shapes=shapes):  # noqa: E741
                    return _as_state(call(update, m, l, acc, st, vt), shapes)

                got = _run(reader_step, s_tiles, v_tiles, d_v)
                want = _run(_step, s_tiles, v_tiles, d_v)
                out_got = got[-1][2] / got[-1][1]
                out_want = torch.softmax(s, dim=-1) @ v
                m_g, l_g, a_g = got[-1]
                for i, ((mg, _, _), (mw, _, _)) in enumerate(zip(got, want, strict=True)):
                    if not close(mg, mw, atol=1e-4, rtol=1e-5):
                        fail(f"after tile {i + 1}, m is not the running max of the scores seen so "
                             "far: m_new = maximum(m, largest score of the tile, per query)")
                if not torch.isfinite(torch.stack([l_g.sum(), a_g.sum()])).all():
                    fail("your running sum or accumulator became inf or nan: exponentiate "
                         "(scores - m_new), not the raw scores, so that no exp() can overflow")
                if close(out_got, out_want, atol=1e-4, rtol=1e-4):
                    for i, ((_, lg, ag), (_, lw, aw)) in enumerate(zip(got, want, strict=True)):
                        if not (close(lg, lw, atol=1e-4, rtol=1e-4) and close(ag, aw, atol=1e-4, rtol=1e-4)):
                            raw = _run(lambda *a: _step(*a, raw=True), s_tiles, v_tiles, d_v)[i]
                            if close(lg, raw[1], atol=1e-4, rtol=1e-4):
                                fail("you exponentiate the raw scores: compute exp(scores - m_new) "
                                     "and rescale the old l and acc, or exp() overflows for large "
                                     "scores (exp(1000) is inf in float32)")
                            fail(f"after tile {i + 1}, l or acc is not measured relative to the new "
                                 "max m (l = sum of exp(score - m), acc = sum of exp(score - m) * value)")
                    n += 1
                    continue
                variants = [
                    ("when the max grows you rescale acc but not the running sum l: multiply l by "
                     "exp(m_old - m_new) too", dict(rescale_l=False)),
                    ("when the max grows you rescale l but not the accumulator acc: multiply acc by "
                     "exp(m_old - m_new) too", dict(rescale_acc=False)),
                    ("you never rescale the old l and acc when the max grows: multiply both by "
                     "exp(m_old - m_new) before adding the new tile", dict(rescale_l=False, rescale_acc=False)),
                    ("your rescaling factor is upside down: it is exp(m_old - m_new) (at most 1), "
                     "not exp(m_new - m_old)", dict(flip=True)),
                ]
                for message, kw in variants:
                    wrong = _run(lambda *a, kw=kw: _step(*a, **kw), s_tiles, v_tiles, d_v)
                    if close(a_g, wrong[-1][2], 1e-4, 1e-4) and close(l_g, wrong[-1][1], 1e-4, 1e-4):
                        fail(message)
                diff = (out_got - out_want).abs().max().item()
                fail(f"acc / l differs from softmax(scores) @ values (largest difference {diff:.3g})")
        return n

    return run_check("online softmax update", body)


# --------------------------------------------------------------------------- sliding window


def _window(T, window, *, causal=True):
    i = torch.arange(T).unsqueeze(1)
    j = torch.arange(T).unsqueeze(0)
    if causal:
        return (j <= i) & (j > i - window)
    return (i - j).abs() < window


def check_sliding_window_mask(fn) -> bool:
    """Check ``fn(T, window)`` -> bool (T, T) mask, True = may attend: query i sees keys
    i - window + 1 .. i (the ``window`` most recent tokens, itself included)."""

    def body():
        cases = [(6, 3), (5, 1), (4, 10), (1, 1), (9, 4)]
        for T, w in cases:
            with case(f"T={T}, window={w}"):
                out = tensor_output(call(fn, T, w))
                want = _window(T, w)
                if tuple(out.shape) != (T, T):
                    fail(f"expected a mask of shape ({T}, {T}), got {tuple(out.shape)}")
                if out.dtype != torch.bool:
                    if out.dtype.is_floating_point or out.dtype in (torch.int64, torch.int32, torch.uint8):
                        if close(out.float(), want.float()):
                            fail(f"right pattern, but dtype {out.dtype}: return a bool tensor "
                                 "(compare with <=, >, & rather than building 0/1 numbers)")
                    fail(f"return a bool tensor (True = may attend), got dtype {out.dtype}")
                if torch.equal(out, want):
                    continue
                if torch.equal(out, ~want):
                    fail("the polarity is flipped: True must mean 'may attend' (the book's and "
                         "SDPA's convention), not 'blocked'")
                if torch.equal(out, want.T):
                    fail("your mask is transposed: rows are queries and columns are keys, so query "
                         "i may see keys j <= i (the lower triangle)")
                if torch.equal(out, _window(T, w, causal=False)):
                    fail("your window looks ahead: a decoder's query may not see later keys; keep "
                         "only keys j <= i")
                if torch.equal(out, _window(T, w + 1)):
                    fail(f"off by one: each query sees {w + 1} keys; the window of {w} includes "
                         "the query itself, so keep keys with j > i - window")
                if w > 1 and torch.equal(out, _window(T, w - 1)):
                    fail(f"off by one: each query sees only {w - 1} keys; the window of {w} "
                         "includes the query itself, so keep keys with j >= i - window + 1")
                if (out & ~want).any():
                    i, j = (out & ~want).nonzero()[0].tolist()
                    fail(f"query {i} may attend key {j}, which is outside its window")
                i, j = (~out & want).nonzero()[0].tolist()
                fail(f"query {i} cannot attend key {j}, which is inside its window")
        return len(cases)

    return run_check("sliding-window mask", body)


def _as_int(out, what: str) -> int:
    if isinstance(out, torch.Tensor):
        if out.numel() != 1:
            fail(f"{what} must be one number, got a tensor of shape {tuple(out.shape)}")
        out = out.item()
    if out is None:
        fail("your function returned None - did you forget the `return` statement?")
    if isinstance(out, bool) or not isinstance(out, (int, float)):
        fail(f"{what} must be a number, got {type(out).__name__}")
    if isinstance(out, float) and not math.isfinite(out):
        fail(f"{what} must be finite, got {out}")
    return out


def check_window_count(fn) -> bool:
    """Check ``fn(T, window)`` -> the number of (query, key) pairs a causal sliding window allows."""

    def body():
        cases = [(6, 3), (10, 1), (4, 10), (1, 5), (2048, 256), (100, 100)]
        for T, w in cases:
            with case(f"T={T}, window={w}"):
                got = _as_int(call(fn, T, w), "the count")
                want = int(_window(T, w).sum()) if T <= 200 else sum(min(i + 1, w) for i in range(T))
                if got == want:
                    continue
                if got == T * w:
                    fail("T * window counts a full window for every query, but the first queries "
                         "have fewer earlier tokens: query i sees min(i + 1, window) keys")
                if got == T * min(T, w) and w > T:
                    fail("when the window is longer than the sequence, each query sees at most "
                         "i + 1 keys")
                if got == T * (T + 1) // 2:
                    fail("that is the count of the full causal mask; the window limits each query "
                         "to min(i + 1, window) keys")
                if got == sum(min(i + 1, w + 1) for i in range(T)) or got == sum(min(i, w) for i in range(T)):
                    fail("off by one: query i (counting from 0) sees min(i + 1, window) keys")
                fail(f"expected {want}, got {got}")
        return len(cases)

    return run_check("sliding-window count", body)


# --------------------------------------------------------------------------- pattern memory


def check_pattern_memory(fn) -> bool:
    """Check ``fn(context_len, n_heads, n_layers, dtype, batch=1)`` -> bytes needed to store every
    attention pattern of a forward pass (one (context_len, context_len) pattern per head, per
    layer, per sequence of the batch)."""

    def body():
        cases = [
            dict(context_len=256, n_heads=4, n_layers=3, dtype=torch.bfloat16, batch=8),
            dict(context_len=2048, n_heads=96, n_layers=96, dtype=torch.float16),
            dict(context_len=1024, n_heads=12, n_layers=12, dtype=torch.float32),
            dict(context_len=7, n_heads=1, n_layers=1, dtype=torch.float64),
        ]
        for kw in cases:
            T, H, L, dt = kw["context_len"], kw["n_heads"], kw["n_layers"], kw["dtype"]
            B = kw.get("batch", 1)
            size = torch.empty((), dtype=dt).element_size()
            label = f"T={T}, heads={H}, layers={L}, {str(dt).replace('torch.', '')}, batch={B}"
            with case(label):
                args = (T, H, L, dt)
                got = _as_int(call(fn, *args, **({"batch": B} if B != 1 else {})), "the byte count")
                want = B * L * H * T * T * size
                if got == want:
                    continue
                wrongs = [
                    (B * L * H * T * T, "you counted entries, not bytes: multiply by the size of one "
                     f"entry ({size} bytes for {dt}; torch.empty((), dtype=dtype).element_size())"),
                    (B * L * H * T * T * size * 8, "that is bits, not bytes: do not multiply by 8"),
                    (B * L * T * T * size, "you forgot the heads: every head has its own pattern"),
                    (B * H * T * T * size, "you forgot the layers: every layer has its own patterns"),
                    (L * H * T * T * size, "you forgot the batch: every sequence has its own patterns"),
                    (B * L * H * T * size, "the pattern of one head is context_len x context_len, "
                     "not context_len: every query has a weight for every key"),
                    (B * L * H * T * (T + 1) // 2 * size, "the causal mask zeroes the upper triangle "
                     "but the explicit path still stores the full square pattern"),
                    (B * L * H * T * T * 4, f"you assumed 4 bytes per entry; {dt} takes {size}"),
                ]
                for value, message in wrongs:
                    if got == value:
                        fail(message)
                fail(f"expected {want:,} bytes, got {got:,}")
        return len(cases)

    return run_check("pattern memory", body)
