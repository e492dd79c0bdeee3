"""Checkers for chapter 0 (how to use this book): softmax, scaled scores, a causal mask.

Conventions, as everywhere in the book: rows are queries, columns are keys; a bool mask reads
True = may attend. The references are attnlib's own functions.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..attention import causal_mask, softmax
from ._core import Case, Mistake, TensorSpec, checker, randn

__all__ = ["check_softmax", "check_scaled_scores", "check_causal_mask"]

INF = float("inf")


def _live_rows(x: torch.Tensor) -> torch.Tensor:
    """(..., 1) True for rows with at least one finite score."""
    return torch.isfinite(x).any(dim=-1, keepdim=True)


def _zero_dead_rows(x: torch.Tensor):
    """A ``post`` that ignores fully masked rows (their value is a convention: nan, 0, uniform)."""
    live = _live_rows(x)
    return lambda out: out.double().masked_fill(~live, 0.0)


# --------------------------------------------------------------------------- softmax


def _shifted(s, m):
    e = (s - m).exp()
    return e / e.sum(dim=-1, keepdim=True)


WRONG_AXIS = ("the rows of your output do not sum to 1 - you took the softmax over another dim "
              "(dim=0 or dim=-2, the queries); take it over the last dim, dim=-1 (the keys)")


def _square(s):
    return s.ndim >= 2 and s.shape[-1] == s.shape[-2]


SOFTMAX_MISTAKES = [  # first the mistakes that only the large scores reveal
    Mistake("your output contains nan/inf: exp(1000) overflows to inf in float32 and inf / inf = "
            "nan. Subtract each row's max first, scores - scores.amax(dim=-1, keepdim=True): the "
            "softmax is unchanged by a shift", lambda s: s.exp() / s.exp().sum(-1, keepdim=True)),
    Mistake("you subtracted one max for the whole tensor: a row far below the tensor's largest "
            "score underflows to exp(-2000) = 0, and 0 / 0 = nan. Subtract each row's OWN max, "
            "scores.amax(dim=-1, keepdim=True)", lambda s: _shifted(s, s.max())),
    Mistake(WRONG_AXIS, lambda s: torch.softmax(s, dim=-2), when=lambda s: s.ndim >= 2),
    Mistake(WRONG_AXIS, lambda s: torch.softmax(s, dim=0), when=lambda s: s.ndim >= 3),
    Mistake("you returned exp(scores) without normalising: divide by each row's sum, "
            "e.sum(dim=-1, keepdim=True)", lambda s: s.exp()),
    Mistake("you returned the log-softmax (log-probabilities); return the probabilities themselves",
            lambda s: torch.log_softmax(s, dim=-1)),
    Mistake("you divided by the sum of ALL entries; divide by each row's own sum, "
            "e.sum(dim=-1, keepdim=True)", lambda s: s.exp() / s.exp().sum()),
    Mistake("the row sums were divided along the wrong axis - did you forget keepdim=True in "
            "e.sum(dim=-1)? Without it the sums broadcast across the columns",
            lambda s: (s - s.amax(-1, keepdim=True)).exp()
            / (s - s.amax(-1, keepdim=True)).exp().sum(dim=-1), when=_square),
    Mistake("you subtracted the max over the wrong axis: the shift must be the same across a row, "
            "so use scores.amax(dim=-1, keepdim=True)",
            lambda s: _shifted(s, s.amax(dim=-2, keepdim=True)), when=lambda s: s.ndim >= 2),
    Mistake("you subtracted the max without keepdim=True, so the maxima broadcast across the "
            "columns; use scores.amax(dim=-1, keepdim=True)",
            lambda s: _shifted(s, s.amax(dim=-1)), when=_square),
    Mistake("you returned a one-hot of the argmax (the hard maximum); the softmax gives every key "
            "a weight, exp(score) / sum of exp over the row",
            lambda s: F.one_hot(s.argmax(-1), s.shape[-1]).to(s.dtype)),
]


def _softmax_cases():
    masked = torch.tensor([[0.5, -INF, 1.0, -INF], [2.0, 1.0, 0.0, -1.0]])
    dead = torch.tensor([[0.5, -INF, 1.0], [-INF, -INF, -INF], [3.0, 2.0, -1.0]])
    inputs = [
        ("square 4 x 4", randn(4, 4, seed=1) * 2),
        ("batch of 2, 3 queries x 5 keys", randn(2, 3, 5, seed=0) * 2),
        ("a single row", torch.tensor([3.0, 1.0, 0.2])),
        ("rows with -inf (masked) scores", masked),
        ("large scores (1000)", torch.tensor([[1000.0, 999.0, 998.0, 0.0],
                                              [-1000.0, 0.0, 1000.0, 500.0]])),
        ("rows far apart (near +1000 and near -1000)",
         torch.tensor([[1000.0, 999.0, 998.0], [-1000.0, -1001.0, -1003.0]])),
        ("a fully masked row (its weights are not checked)", dead),
    ]
    return [Case(name, (x,), softmax(x).double().masked_fill(~_live_rows(x), 0.0),
                 post=_zero_dead_rows(x)) for name, x in inputs]


@checker(TensorSpec(
    "softmax", _softmax_cases, SOFTMAX_MISTAKES, reference=softmax,
    hint="fn(scores) takes one tensor and returns its softmax over dim=-1; a sum or max over "
         "dim=-1 needs keepdim=True to broadcast back over the row",
    nonfinite="your output contains nan/inf: exp(-inf) is 0, so a -inf score should get weight "
              "exactly 0; check what you subtract or divide by",
    layout="scores.shape"))
def check_softmax(fn):
    """Check fn(scores) -> the softmax of scores over the last dim (the keys)."""


# --------------------------------------------------------------------------- scaled scores


def _raw(q, k):
    return q @ k.transpose(-2, -1)


def _sizes_other_than_d(q, k):
    d = q.shape[-1]
    return [(f"q.shape[{i}]", n) for i, n in enumerate(q.shape[:-1]) if n != d] + \
        [("k.shape[-2] (T_k)", k.shape[-2])] * (k.shape[-2] != d)


SCALED_SCORES_MISTAKES = [
    Mistake("you forgot the scale: divide the scores by sqrt(d), where d = q.shape[-1]",
            lambda q, k: _raw(q, k)),
    Mistake("you divided by d; divide by sqrt(d), where d = q.shape[-1]",
            lambda q, k: _raw(q, k) / q.shape[-1]),
    Mistake("you multiplied by sqrt(d); divide by it instead",
            lambda q, k: _raw(q, k) * math.sqrt(q.shape[-1])),
    Mistake("you divided by an integer square root (int(d ** 0.5) or math.isqrt(d)); d need not "
            "be a perfect square: divide by math.sqrt(d) or multiply by d ** -0.5",
            lambda q, k: _raw(q, k) / math.isqrt(q.shape[-1]),
            when=lambda q, k: math.isqrt(q.shape[-1]) ** 2 != q.shape[-1]),
    Mistake("you computed k @ q^T: that grid is transposed (rows must be queries, columns keys); "
            "compute q @ k.transpose(-2, -1)",
            lambda q, k: (k @ q.transpose(-2, -1)) / math.sqrt(q.shape[-1])),
    Mistake("you divided by sqrt(T_k), the number of keys; d is the size of each query/key "
            "vector, q.shape[-1]", lambda q, k: _raw(q, k) / math.sqrt(k.shape[-2]),
            when=lambda q, k: k.shape[-2] != q.shape[-1]),
    Mistake("you divided by sqrt(T_q), the number of queries; d is the size of each query/key "
            "vector, q.shape[-1]", lambda q, k: _raw(q, k) / math.sqrt(q.shape[-2]),
            when=lambda q, k: q.shape[-2] not in (q.shape[-1], k.shape[-2])),
    Mistake("you divided by sqrt(q.shape[1]), a batch or head dim; d is the last dim, "
            "q.shape[-1]", lambda q, k: _raw(q, k) / math.sqrt(q.shape[1]),
            when=lambda q, k: q.ndim >= 4 and q.shape[1] not in (q.shape[-1], q.shape[-2],
                                                                 k.shape[-2])),
]


def _constant_factor(out: torch.Tensor, c: Case) -> str | None:
    """Name any constant factor: out == f * (q @ k^T) for some f other than 1/sqrt(d)."""
    q, k = c.args
    raw = _raw(q, k).double()
    if out.shape != raw.shape or not torch.isfinite(out).all():
        return None
    big = raw.abs() > 1e-3
    if not big.any():
        return None
    f = (out.double()[big] / raw[big]).median().item()
    if f > 0 and torch.allclose(out.double(), f * raw, atol=1e-5, rtol=1e-4):
        d = q.shape[-1]
        return (f"your scores are (q @ k^T) x {f:.4g} = (q @ k^T) / sqrt({1 / f**2:.4g}); the factor "
                f"should be 1/sqrt(d) = {1 / math.sqrt(d):.4g}, with d = q.shape[-1] = {d}")
    return None


def _scaled(q, k):
    return _raw(q, k) / math.sqrt(q.shape[-1])


def _scaled_scores_cases():
    inputs = [
        ("2-D: 4 queries, 6 keys, d = 10", randn(4, 10, seed=10), randn(6, 10, seed=11)),
        ("batch 2, 3 heads, 5 queries, 7 keys, d = 6",
         randn(2, 3, 5, 6, seed=12), randn(2, 3, 7, 6, seed=13)),
        ("one query against 6 keys, d = 64", randn(1, 1, 64, seed=14), randn(1, 6, 64, seed=15)),
        ("square, 2-D: 5 tokens, d = 7", randn(5, 7, seed=16), randn(5, 7, seed=17)),
    ]
    return [Case(name, (q, k), _scaled(q, k)) for name, q, k in inputs]


@checker(TensorSpec(
    "scaled scores", _scaled_scores_cases, SCALED_SCORES_MISTAKES, reference=_scaled,
    hint="transpose k with k.transpose(-2, -1) (or k.mT): it swaps only the last two dims, "
         "whatever the batch dims",
    otherwise="the scores are wrong: expected q @ k^T / sqrt(d)", layout="(..., T_q, T_k)",
    explain=_constant_factor))
def check_scaled_scores(fn):
    """Check fn(q, k) -> q @ k^T / sqrt(d), of shape (..., T_q, T_k)."""


# --------------------------------------------------------------------------- causal mask


def _ones(T_q, T_k):
    return torch.ones(T_q, T_k, dtype=torch.bool)


CAUSAL_MASK_MISTAKES = [
    Mistake("the polarity is flipped: True must mean 'may attend' (the past and the query's own "
            "position), False 'blocked'", lambda T_q, T_k: ~causal_mask(T_q, T_k)),
    Mistake("this is the upper triangle: the future is allowed and the past blocked. True must "
            "mark keys at or before the query (torch.tril, not torch.triu)",
            lambda T_q, T_k: torch.triu(_ones(T_q, T_k), diagonal=T_k - T_q),
            when=lambda T_q, T_k: T_k > 1),
    Mistake("the diagonal is hidden: a query may attend to its own position (use <=, or "
            "torch.tril without diagonal=-1)",
            lambda T_q, T_k: torch.tril(_ones(T_q, T_k), diagonal=T_k - T_q - 1)),
    Mistake("leak by one: each query also sees the next key (torch.tril(..., diagonal=1), or "
            "j <= i + 1); query i sees keys 0 .. i + (T_k - T_q), no further",
            lambda T_q, T_k: torch.tril(_ones(T_q, T_k), diagonal=T_k - T_q + 1),
            when=lambda T_q, T_k: T_q > 1),
    Mistake("the triangle is aligned to the upper-left: with fewer queries than keys the queries "
            "are the LAST T_q positions, so query i sees keys 0 .. i + (T_k - T_q) "
            "(torch.tril(ones, diagonal=T_k - T_q))",
            lambda T_q, T_k: torch.tril(_ones(T_q, T_k)), when=lambda T_q, T_k: T_q != T_k),
    Mistake("upper-left aligned and without the diagonal: query i sees keys 0 .. i + (T_k - T_q), "
            "its own position included", lambda T_q, T_k: torch.tril(_ones(T_q, T_k), diagonal=-1),
            when=lambda T_q, T_k: T_q != T_k),
    Mistake("your mask has shape (T_k, T_q): rows must be queries and columns keys, so return "
            "shape (T_q, T_k)", lambda T_q, T_k: causal_mask(T_q, T_k).T,
            when=lambda T_q, T_k: T_q != T_k),
]


def _causal_mask_cases():
    return [Case(f"T_q = {T_q}, T_k = {T_k}", (T_q, T_k), causal_mask(T_q, T_k))
            for T_q, T_k in [(3, 5), (4, 4), (1, 1), (1, 6), (2, 7), (6, 6)]]


@checker(TensorSpec(
    "causal mask", _causal_mask_cases, CAUSAL_MASK_MISTAKES, reference=causal_mask,
    otherwise="the mask is wrong", layout="(T_q, T_k)"))
def check_causal_mask(fn):
    """Check fn(T_q, T_k) -> a bool (T_q, T_k) causal mask, True = may attend."""
