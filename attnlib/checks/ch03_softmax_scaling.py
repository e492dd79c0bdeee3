"""Checkers for chapter 3 (softmax and scaling): a softmax with a temperature, a softmax that is
safe in half precision, and the log-sum-exp."""

from __future__ import annotations

import torch

from ..attention import softmax
from ._core import Case, Mistake, TensorSpec, checker, randn

__all__ = ["check_temperature_softmax", "check_stable_softmax_half", "check_logsumexp"]

INF = float("inf")
FP16_EXP_LIMIT = 11.09  # exp(x) > 65504, float16's largest finite value, for x above about 11.09


def _shifted(s, m):
    e = (s - m).exp()
    return e / e.sum(dim=-1, keepdim=True)


# --------------------------------------------------------------------------- temperature


def _temperature(scores, temperature):
    return softmax(scores / temperature)


def _temperature_cases():
    s = randn(3, 5, seed=70) * 2
    inputs = [("temperature 1", s, 1.0), ("temperature 0.5", s, 0.5), ("temperature 4", s, 4.0),
              ("temperature 0.001 (near argmax)", s, 0.001),
              ("one row, temperature 2", torch.tensor([2.0, 1.0, 0.0, -1.0]), 2.0),
              ("scores 0.01 apart, temperature 0.001",
               torch.tensor([[1.0, 0.99, 0.5], [0.2, 0.21, 0.0]]), 0.001),
              ("rows far apart, temperature 0.01",
               torch.tensor([[30.0, 29.0, 28.0], [-30.0, -31.0, -33.0]]), 0.01)]
    return [Case(name, (x, t), _temperature(x, t)) for name, x, t in inputs]


@checker(TensorSpec(
    "softmax with temperature", _temperature_cases, [
        Mistake("your output contains nan/inf: at a small temperature scores / temperature is huge "
                "and exp overflows; subtract each row's max first (the softmax is unchanged by a "
                "shift)", lambda s, t: (s / t).exp() / (s / t).exp().sum(-1, keepdim=True)),
        Mistake("you subtracted one max for the whole tensor: at a small temperature a row far "
                "below the largest score underflows to 0 / 0 = nan; subtract each row's OWN max",
                lambda s, t: _shifted(s / t, (s / t).max())),
        Mistake("you multiplied by the temperature; divide the scores by it (a small temperature "
                "must sharpen the weights)", lambda s, t: softmax(s * t)),
        Mistake("the temperature has no effect in your code: divide the scores by it before the "
                "softmax", lambda s, t: softmax(s)),
        Mistake("the temperature is clamped (to at least 0.01, or similar): divide by the "
                "temperature you are given, however small",
                lambda s, t: softmax(s / max(t, 0.01)), when=lambda s, t: t < 0.01),
        Mistake("you divided the weights (after the softmax) by the temperature: divide the "
                "SCORES, before the softmax", lambda s, t: softmax(s) / t),
        Mistake("the rows of your output do not sum to 1: take the softmax over the last dim "
                "(dim=-1)", lambda s, t: softmax(s / t, dim=0), when=lambda s, t: s.ndim > 1),
    ], reference=_temperature, layout="scores.shape",
    hint="fn(scores, temperature) returns the softmax of scores / temperature"))
def check_temperature_softmax(fn):
    """Check fn(scores, temperature) -> softmax(scores / temperature) over the last dim."""


# --------------------------------------------------------------------------- half precision


def _half_softmax(scores):
    return softmax(scores.float()).to(scores.dtype)


def _sum_in_half(s):
    e = (s - s.amax(-1, keepdim=True)).exp()
    return e / e.sum(-1, keepdim=True)


OVERFLOW = (f"your output contains nan/inf: exp overflows (in float16 for x > {FP16_EXP_LIMIT}, "
            "65504 being the largest float16; in float32 above 88.7, and these scores reach "
            "30,000): subtract each row's max before exp, and compute in float32")


def _half_cases():
    inputs = [
        ("float16, 2 x 6", (randn(2, 6, seed=80) * 3).half()),
        ("float16 scores up to 14", torch.tensor([[14.0, 12.0, 9.0, 0.0],
                                                  [13.0, 13.0, -2.0, 5.0]]).half()),
        ("float16 with -inf (masked) entries",
         torch.tensor([[3.0, -INF, 1.0, -INF]]).half()),
        ("float16 rows far apart (near +30000 and near -30000)",
         torch.tensor([[30000.0, 29984.0, 29968.0], [-30000.0, -30016.0, -30048.0]]).half()),
        ("float32 stays float32", randn(3, 4, seed=81)),
    ]
    cases = [Case(name, (x,), _half_softmax(x)) for name, x in inputs]
    x = torch.zeros(1, 70_000, dtype=torch.float16)
    cases.append(Case("a row of 70,000 equal float16 scores", (x,), _half_softmax(x),
                      atol=1e-7, rtol=2e-2))
    return cases


@checker(TensorSpec(
    "softmax in half precision", _half_cases, [
        Mistake("the sum of the exps overflowed float16: 70,000 terms of 1 make 70,000 > 65504, so "
                "every weight became 0 (or nan); do the exp and the sum in float32 "
                "(scores.float()) and convert the result back at the end", _sum_in_half),
        Mistake(OVERFLOW, lambda s: s.exp() / s.exp().sum(-1, keepdim=True)),
        Mistake(OVERFLOW, lambda s: (s.float().exp() / s.float().exp().sum(-1, keepdim=True))
                .to(s.dtype)),
        Mistake("you subtracted one max for the whole tensor: a row far below it (here 60,000 "
                "lower) underflows to 0 / 0 = nan; subtract each row's OWN max",
                lambda s: _shifted(s.float(), s.float().max()).to(s.dtype)),
        Mistake("the rows do not sum to 1: take the softmax over the last dim (dim=-1)",
                lambda s: softmax(s.float(), dim=0).to(s.dtype)),
    ], reference=_half_softmax, layout="scores.shape",
    dtype_message="compute in float32, then return .to(scores.dtype)",
    nonfinite="your output contains nan/inf: subtract each row's max before exp",
    hint="fn(scores) returns softmax(scores, dim=-1) in scores' dtype"))
def check_stable_softmax_half(fn):
    """Check fn(scores) -> softmax over the last dim, computed safely, in the input's dtype."""


# --------------------------------------------------------------------------- log-sum-exp


def _lse(scores):
    return torch.logsumexp(scores, dim=-1)


def _ignore_dead(x):
    dead = torch.isinf(x).all(-1) & (x < 0).all(-1)
    return lambda out: out.double().masked_fill(dead, 0.0)


def _lse_cases():
    inputs = [("2 x 5", randn(2, 5, seed=90) * 3), ("one row", torch.tensor([1.0, 2.0, 3.0])),
              ("scores of 1000", torch.tensor([[1000.0, 999.0, 0.0], [-5.0, 1000.0, 1000.0]])),
              ("-inf (masked) entries", torch.tensor([[0.5, -INF, 2.0]])),
              ("rows far apart (near +1000 and near -1000)",
               torch.tensor([[1000.0, 998.0, 990.0], [-1000.0, -1001.0, -1004.0]])),
              ("a fully masked row (its value is not checked)",
               torch.tensor([[1.0, 2.0], [-INF, -INF]]))]
    cases = []
    for name, x in inputs:
        post = _ignore_dead(x)
        cases.append(Case(name, (x,), post(_lse(x)), post=post))
    return cases


def _no_add_back(s):
    m = s.amax(-1, keepdim=True)
    return (s - m).exp().sum(-1).log()


@checker(TensorSpec(
    "log-sum-exp", _lse_cases, [
        Mistake("your output contains inf/nan: exp(1000) overflows; subtract each row's max m "
                "before exp and add it back after the log", lambda s: s.exp().sum(-1).log()),
        Mistake("you subtracted one max for the whole tensor: a row far below it underflows to "
                "log(0) = -inf; use each row's own max, s.amax(dim=-1, keepdim=True)",
                lambda s: s.max() + (s - s.max()).exp().sum(-1).log()),
        Mistake("you kept the reduced dim (keepdim=True): return shape scores.shape[:-1]",
                lambda s: _lse(s).unsqueeze(-1)),
        Mistake("you forgot to add the max back: log(sum(exp(s - m))) is lse - m, so return "
                "m + log(sum(exp(s - m)))", _no_add_back),
        Mistake("you reduced over the wrong dim: the keys are the last dim (dim=-1)",
                lambda s: torch.logsumexp(s, dim=0), when=lambda s: s.ndim > 1),
        Mistake("you returned the max only (a hard maximum); log-sum-exp is max + "
                "log(sum(exp(s - max)))", lambda s: s.amax(-1)),
        Mistake("you returned sum(exp(s)) without the log", lambda s: _lse(s).exp()),
    ], reference=_lse, layout="scores.shape[:-1]",
    nonfinite="your output contains inf/nan: exp(1000) overflows; subtract each row's max m "
              "before exp and add it back after the log",
    hint="fn(scores) returns log(sum(exp(scores), dim=-1))"))
def check_logsumexp(fn):
    """Check fn(scores) -> log(sum(exp(scores))) over the last dim, without overflow."""
