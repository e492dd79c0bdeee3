"""Checkers for chapter 12 (making attention cheaper): one step of the online softmax, the tiles a
causal kernel computes, a sliding-window mask and the pairs a window allows."""

from __future__ import annotations

import functools

import torch

from .. import efficient
from ..attention import causal_mask
from ._core import (
    Case,
    Mistake,
    NumberSpec,
    TensorSpec,
    call,
    case,
    checker,
    close,
    fail,
    run_check,
    tensor_output,
)

__all__ = [
    "check_online_softmax",
    "check_causal_tiles",
    "check_sliding_window_mask",
    "check_window_count",
]


# --------------------------------------------------------------------------- online softmax


def _step(m, l, acc, s, v, *, rescale_l=True, rescale_acc=True, flip=False, raw=False):
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
    l = torch.zeros(T_q, 1)
    acc = torch.zeros(T_q, d_v)
    states = []
    for s, v in zip(s_tiles, v_tiles, strict=True):
        m, l, acc = step_fn(m, l, acc, s, v)
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


# The known wrong rescalings: what each does, and the flags of _step that make it.
_RESCALE_MISTAKES = [
    ("when the max grows you rescale acc but not the running sum l: multiply l by "
     "exp(m_old - m_new) too", dict(rescale_l=False)),
    ("when the max grows you rescale l but not the accumulator acc: multiply acc by "
     "exp(m_old - m_new) too", dict(rescale_acc=False)),
    ("you never rescale the old l and acc when the max grows: multiply both by "
     "exp(m_old - m_new) before adding the new tile", dict(rescale_l=False, rescale_acc=False)),
    ("your rescaling factor is upside down: it is exp(m_old - m_new) (at most 1), "
     "not exp(m_new - m_old)", dict(flip=True)),
]


def _judge_online_case(update, s, sizes, v) -> None:
    """Run the reader's update over the tiles ``sizes`` of the scores s (T_q, T_k) and values v
    (T_k, d_v) beside the reference; fail with the first mistake found."""
    s_tiles = list(torch.split(s, sizes, dim=1))
    v_tiles = list(torch.split(v, sizes, dim=0))
    T_q, d_v = s.shape[0], v.shape[1]
    shapes = ((T_q, 1), (T_q, 1), (T_q, d_v))

    def reader_step(m, l, acc, st, vt):
        # updating the state (m, l, acc) in place is fine; the scores and values not
        return _as_state(call(update, m, l, acc, st, vt, allow_inplace=(0, 1, 2)), shapes)

    got = _run(reader_step, s_tiles, v_tiles, d_v)
    want = _run(_step, s_tiles, v_tiles, d_v)
    out_got = got[-1][2] / got[-1][1]
    out_want = torch.softmax(s, dim=-1) @ v
    _, l_g, a_g = got[-1]
    _check_running_max(got, want)
    if not torch.isfinite(torch.stack([l_g.sum(), a_g.sum()])).all():
        fail("your running sum or accumulator became inf or nan: exponentiate "
             "(scores - m_new), not the raw scores, so that no exp() can overflow")
    if close(out_got, out_want, atol=1e-4, rtol=1e-4):
        _check_relative_to_max(got, want, s_tiles, v_tiles, d_v)
        return
    for message, kw in _RESCALE_MISTAKES:
        wrong = _run(lambda *a, kw=kw: _step(*a, **kw), s_tiles, v_tiles, d_v)
        if close(a_g, wrong[-1][2], 1e-4, 1e-4) and close(l_g, wrong[-1][1], 1e-4, 1e-4):
            fail(message)
    diff = (out_got - out_want).abs().max().item()
    fail(f"acc / l differs from softmax(scores) @ values (largest difference {diff:.3g})")


def _check_running_max(got, want) -> None:
    """After every tile, the reader's m is the reference's running max."""
    for i, ((mg, _, _), (mw, _, _)) in enumerate(zip(got, want, strict=True)):
        if not close(mg, mw, atol=1e-4, rtol=1e-5):
            fail(f"after tile {i + 1}, m is not the running max of the scores seen so "
                 "far: m_new = maximum(m, largest score of the tile, per query)")


def _check_relative_to_max(got, want, s_tiles, v_tiles, d_v) -> None:
    """The output is right: after every tile l and acc must also be the reference's, measured
    relative to the running max (the raw exponentials are named)."""
    for i, ((_, lg, ag), (_, lw, aw)) in enumerate(zip(got, want, strict=True)):
        if not (close(lg, lw, atol=1e-4, rtol=1e-4) and close(ag, aw, atol=1e-4, rtol=1e-4)):
            raw = _run(lambda *a: _step(*a, raw=True), s_tiles, v_tiles, d_v)[i]
            if close(lg, raw[1], atol=1e-4, rtol=1e-4):
                fail("you exponentiate the raw scores: compute exp(scores - m_new) "
                     "and rescale the old l and acc, or exp() overflows for large "
                     "scores (exp(1000) is inf in float32)")
            fail(f"after tile {i + 1}, l or acc is not measured relative to the new "
                 "max m (l = sum of exp(score - m), acc = sum of exp(score - m) * value)")


def check_online_softmax(update):
    """Check update(m, l, acc, scores, values) -> (m, l, acc), one step of the online softmax.

    Shapes: m and l (T_q, 1), acc (T_q, d_v), scores (T_q, B) for a tile of B keys, values (B, d_v).
    The state before the first tile is m = -inf, l = 0, acc = 0. After every tile, m must be the
    running max of the scores seen so far, l the sum of exp(score - m) over them and acc the sum of
    exp(score - m) * value; at the end acc / l must equal softmax(scores) @ values.
    """

    def body():
        cases = _online_cases()
        for name, s, sizes, v in cases:
            with case(name):
                _judge_online_case(update, s, sizes, v)
        return len(cases)

    return run_check("online softmax update", body)


# --------------------------------------------------------------------------- causal tiles


def _tiles(T, block_q, block_k, rule, n_q=None, n_k=None):
    """A (n_q, n_k) grid: rule(first query, last query, first key, last key) of every tile pair."""
    n_q = -(-T // block_q) if n_q is None else n_q
    n_k = -(-T // block_k) if n_k is None else n_k
    q_first = (torch.arange(n_q) * block_q).unsqueeze(1)  # (n_q, 1)
    q_last = torch.clamp(q_first + block_q, max=T) - 1  # the last tile may be shorter
    k_first = (torch.arange(n_k) * block_k).unsqueeze(0)  # (1, n_k)
    k_last = torch.clamp(k_first + block_k, max=T) - 1
    return rule(q_first, q_last, k_first, k_last)


def _needed(qf, ql, kf, kl):
    return kf <= ql  # the tile's last query sees the tile's first key


def _causal_tiles(T, block_q, block_k):
    """The reference: True where a (query tile, key tile) pair has an allowed entry."""
    return _tiles(T, block_q, block_k, _needed)


@functools.cache
def _kernel_tiles(T, block_q, block_k):
    """The pairs ``efficient.tiled_attention`` computes under its causal mask, tile by tile.

    Pair (i, j) is asked alone: a boolean mask allows only its entries, so the kernel computes
    one pair (``tiles_computed == 1``) exactly when the causal mask leaves some entry of it.
    """
    n_q, n_k = -(-T // block_q), -(-T // block_k)
    x = torch.zeros(1, T, 1)
    grid = torch.zeros(n_q, n_k, dtype=torch.bool)
    for i in range(n_q):
        for j in range(n_k):
            only = torch.zeros(T, T, dtype=torch.bool)
            only[i * block_q:(i + 1) * block_q, j * block_k:(j + 1) * block_k] = True
            _, stats = efficient.tiled_attention(x, x, x, only, is_causal=True, block_q=block_q,
                                                 block_k=block_k, return_stats=True)
            grid[i, j] = stats.tiles_computed == 1
    return grid


_TILE_CASES = [(13, 4, 3), (8, 4, 4), (10, 4, 4), (12, 3, 4), (7, 7, 7), (5, 8, 2), (1, 1, 1),
               (6, 1, 1), (20, 6, 7), (17, 5, 2), (16, 2, 8)]


def _tile_cases():
    return [Case(f"T={T}, block_q={bq}, block_k={bk}", (T, bq, bk),
                 _kernel_tiles(T, bq, bk).clone()) for T, bq, bk in _TILE_CASES]


def _first_wrong_tile(out, c):
    want = c.expected
    if out.dtype != torch.bool or out.shape != want.shape:
        return None
    T, bq, bk = c.args
    wrong = out != want
    i, j = wrong.nonzero()[0].tolist()
    queries = f"queries {i * bq}..{min((i + 1) * bq, T) - 1}"
    keys = f"keys {j * bk}..{min((j + 1) * bk, T) - 1}"
    if want[i, j]:
        return (f"tile [{i}, {j}] ({queries}, {keys}) must be computed: query "
                f"{min((i + 1) * bq, T) - 1} sees key {j * bk}")
    return f"tile [{i}, {j}] ({queries}, {keys}) can be skipped: every key comes after every query"


def _mt(rule, **kw):
    """A mistake: the grid of another rule, with the reader's signature."""
    return lambda T, bq, bk: _tiles(T, bq, bk, rule, **kw)


@checker(TensorSpec(
    "causal tiles", _tile_cases, [
        Mistake("the polarity is flipped: True must mean 'compute this tile', False 'skip it'",
                _mt(lambda qf, ql, kf, kl: kf > ql)),
        Mistake("you skip the tiles the diagonal cuts through, but they are partly needed: a "
                "kernel computes them with the blocked scores set to -inf. Skip a tile only when "
                "every one of its entries is blocked", _mt(lambda qf, ql, kf, kl: kl <= qf)),
        Mistake("your grid keeps the tiles above the diagonal: a causal query sees the keys "
                "j <= i, so the needed tiles are on and below it (rows are query tiles, columns "
                "key tiles)", _mt(lambda qf, ql, kf, kl: kl >= qf)),
        Mistake("you judge a tile by its first query; its last query sees the most keys. A tile "
                "is needed when its first key is <= its last query",
                _mt(lambda qf, ql, kf, kl: kf <= qf)),
        Mistake("you judge a tile by its last key; its first key is the earliest. A tile is "
                "needed when its first key is <= its last query",
                _mt(lambda qf, ql, kf, kl: kl <= ql)),
        Mistake("off by one: a query sees its own position, so a tile whose first key equals "
                "its last query is needed (<=, not <)", _mt(lambda qf, ql, kf, kl: kf < ql)),
        Mistake("off by one: the tile that starts right after the last query is wholly in the "
                "future (first key <= last query, not <= last query + 1)",
                _mt(lambda qf, ql, kf, kl: kf <= ql + 1)),
        Mistake("comparing tile numbers (j <= i) works only when block_q == block_k: compare "
                "positions, the tile's first key with its last query",
                lambda T, bq, bk: torch.ones(-(-T // bq), -(-T // bk), dtype=torch.bool).tril(),
                when=lambda T, bq, bk: bq != bk),
        Mistake("your grid is the upper triangle of the tile numbers (j >= i), the tiles above "
                "the diagonal: a causal query sees the keys j <= i. And compare positions, not "
                "tile numbers, since block_q and block_k may differ",
                lambda T, bq, bk: torch.ones(-(-T // bq), -(-T // bk), dtype=torch.bool).triu(),
                when=lambda T, bq, bk: bq != bk),
        Mistake("your grid misses the last, shorter tile: when a block size does not divide T "
                "there are ceil(T / block) tiles, -(-T // block) in integers, not T // block",
                lambda T, bq, bk: _tiles(T, bq, bk, _needed, n_q=T // bq, n_k=T // bk),
                when=lambda T, bq, bk: T % bq or T % bk),
        Mistake("your grid has one tile too many: when a block size divides T there are "
                "T / block tiles; ceil(T / block) is -(-T // block), not T // block + 1",
                lambda T, bq, bk: _tiles(T, bq, bk, _needed, n_q=T // bq + 1, n_k=T // bk + 1),
                when=lambda T, bq, bk: T % bq == 0 or T % bk == 0),
        Mistake("you swapped block_q and block_k: rows are the query tiles (block_q queries "
                "each), columns the key tiles (block_k keys each)",
                lambda T, bq, bk: _causal_tiles(T, bk, bq), when=lambda T, bq, bk: bq != bk),
        Mistake("your grid is transposed: rows must be the query tiles and columns the key tiles, "
                "shape (n_q_tiles, n_k_tiles)", lambda T, bq, bk: _causal_tiles(T, bq, bk).T,
                when=lambda T, bq, bk: bq != bk),
        Mistake("that is the (T, T) causal mask of the entries; the exercise wants one entry per "
                "tile, a grid of shape (ceil(T / block_q), ceil(T / block_k))",
                lambda T, bq, bk: causal_mask(T), when=lambda T, bq, bk: bq > 1 or bk > 1),
    ], reference=_causal_tiles, layout="(n_q_tiles, n_k_tiles)", explain=_first_wrong_tile,
    otherwise="the grid is wrong",
    dtype_message="return a bool tensor (True = compute the tile), e.g. straight from a "
                  "comparison such as <="))
def check_causal_tiles(fn):
    """Check fn(T, block_q, block_k) -> bool (n_q_tiles, n_k_tiles): the tiles a causal kernel computes.

    Queries and keys (T of each) are cut into tiles of block_q and block_k, the last tile shorter
    when a block size does not divide T. Entry [i, j] is True when the causal mask leaves some
    entry of (query tile i, key tile j), as ``efficient.tiled_attention`` decides: its first key
    is at most its last query. The other tiles are skipped.
    """


# --------------------------------------------------------------------------- sliding window


def _window(T, window, *, causal=True, shift=0):
    i = torch.arange(T).unsqueeze(1)
    j = torch.arange(T).unsqueeze(0)
    if causal:
        return (j <= i) & (j > i - window - shift)
    return (i - j).abs() < window


def _first_wrong_entry(out, c):
    want = c.expected
    if out.dtype != torch.bool or out.shape != want.shape:
        return None
    if (out & ~want).any():
        i, j = (out & ~want).nonzero()[0].tolist()
        return f"query {i} may attend key {j}, which is outside its window"
    i, j = (~out & want).nonzero()[0].tolist()
    return f"query {i} cannot attend key {j}, which is inside its window"


@checker(TensorSpec(
    "sliding-window mask",
    lambda: [Case(f"T={T}, window={w}", (T, w), _window(T, w))
             for T, w in [(6, 3), (5, 1), (4, 10), (1, 1), (9, 4)]], [
        Mistake("the polarity is flipped: True must mean 'may attend' (the book's and SDPA's "
                "convention), not 'blocked'", lambda T, w: ~_window(T, w)),
        Mistake("your mask is transposed: rows are queries and columns are keys, so query i may "
                "see keys j <= i (the lower triangle)", lambda T, w: _window(T, w).T,
                when=lambda T, w: T > 1),
        Mistake("your window looks ahead: a decoder's query may not see later keys; keep only keys "
                "j <= i", lambda T, w: _window(T, w, causal=False)),
        Mistake("off by one: each query sees window + 1 keys; the window includes the query "
                "itself, so keep keys with j > i - window", lambda T, w: _window(T, w, shift=1)),
        Mistake("off by one: each query sees only window - 1 keys; the window includes the query "
                "itself, so keep keys with j >= i - window + 1",
                lambda T, w: _window(T, w, shift=-1), when=lambda T, w: w > 1),
        Mistake("the diagonal is hidden: a query is inside its own window (j <= i, not j < i)",
                lambda T, w: _window(T, w) & ~torch.eye(T, dtype=torch.bool)),
    ], reference=_window, otherwise="the mask is wrong: query i sees keys i - window + 1 .. i",
    layout="(T, T)", explain=_first_wrong_entry))
def check_sliding_window_mask(fn):
    """Check fn(T, window) -> a bool (T, T) mask where query i sees keys i - window + 1 .. i."""


def _count(T, w):
    return sum(min(i + 1, w) for i in range(T))


@checker(NumberSpec(
    "sliding-window count",
    [(f"T={T}, window={w}", (T, w), {}) for T, w in [(6, 3), (10, 1), (4, 10), (1, 5), (2048, 256),
                                                      (100, 100), (9, 4)]],
    _count, [
        Mistake("T * window counts a full window for every query, but the first queries have "
                "fewer earlier tokens: query i sees min(i + 1, window) keys",
                lambda T, w: T * w),
        Mistake("that is the count of the full causal mask; the window limits each query to "
                "min(i + 1, window) keys", lambda T, w: T * (T + 1) // 2),
        Mistake("off by one: query i (counting from 0) sees min(i + 1, window) keys, not "
                "min(i + 1, window + 1)", lambda T, w: sum(min(i + 1, w + 1) for i in range(T))),
        Mistake("off by one: query i (counting from 0) sees min(i + 1, window) keys, not "
                "min(i, window)", lambda T, w: sum(min(i, w) for i in range(T))),
        Mistake("when the window is longer than the sequence each query sees at most i + 1 keys: "
                "min(T, window) per query counts too many",
                lambda T, w: T * min(T, w)),
    ]))
def check_window_count(fn):
    """Check fn(T, window) -> the number of (query, key) pairs a causal sliding window allows."""
