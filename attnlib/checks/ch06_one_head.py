"""Checkers for chapter 6 (one head): a causal head's change, the fix of a leaking head, a leak
detector, and a head's parameters (no exercise uses that one now; older notebooks still call it).

Conventions: x (..., T, d_model); W_Q, W_K, W_V (value-down) (d_model, d_head); W_O (value-up)
(d_head, d_model); patterns (..., query_pos, key_pos); bool masks True = may attend.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ..attention import attention
from ._core import (
    Case,
    Causal,
    Mistake,
    NumberSpec,
    TensorSpec,
    call,
    checker,
    fail,
    randn,
    run_check,
)

__all__ = ["check_head", "check_bug_fix", "check_head_params", "check_leak_detector"]

INF = float("inf")


def head_change(x, W_Q, W_K, W_V, W_O, *, diagonal=0, scale=None, dim=-1, upper=False,
                swap=False, transpose=False, hard=False, weights=False, up=True):
    """One head's change in float64, with ``diagonal`` the last key offset a query may see.

    ``diagonal=None`` is no mask; the keyword arguments make the known mistakes.
    """
    dtype = x.dtype
    x = x.double()
    W_Q, W_K, W_V, W_O = (w.double() for w in (W_Q, W_K, W_V, W_O))
    q, k = (x @ W_K, x @ W_Q) if swap else (x @ W_Q, x @ W_K)
    d_head = q.shape[-1]
    s = q @ k.transpose(-2, -1) * (1 / math.sqrt(d_head) if scale is None else scale)
    T = s.shape[-1]
    if diagonal is not None:
        ones = torch.ones(T, T, dtype=torch.bool)
        keep = ones.triu() if upper else ones.tril(diagonal)
        s = s.masked_fill(~keep, -INF)
    if hard:
        w = F.one_hot(s.argmax(-1), T).double()
    else:
        w = torch.softmax(s, dim=dim)
    if transpose:
        w = w.transpose(-2, -1)
    if weights:
        return w.to(dtype)
    out = w @ (x @ W_V)
    return (out @ W_O if up else out).to(dtype)


def _reference(x, W_Q, W_K, W_V, W_O):
    return attention(x @ W_Q, x @ W_K, x @ W_V, is_causal=True) @ W_O


def head_weights(d_model, d_head, seed):
    return tuple(randn(*shape, seed=seed + i) / math.sqrt(shape[0])
                 for i, shape in enumerate([(d_model, d_head)] * 3 + [(d_head, d_model)]))


def _not_square(x, W_Q, *_):
    return math.isqrt(W_Q.shape[-1]) ** 2 != W_Q.shape[-1]


HEAD_MISTAKES = [
    Mistake("no causal mask", lambda x, *W: head_change(x, *W, diagonal=None),
            shows="no causal mask is applied"),
    Mistake("leak by one", lambda x, *W: head_change(x, *W, diagonal=1), shows="leak by one"),
    Mistake("upper triangle", lambda x, *W: head_change(x, *W, upper=True),
            shows="upper triangle"),
    Mistake("the diagonal is hidden: a position may attend to itself (keep keys j <= i, "
            "torch.tril without diagonal=-1); position 0 then sees nothing and becomes nan",
            lambda x, *W: head_change(x, *W, diagonal=-1)),
    Mistake("the scores are not scaled: divide q @ k^T by sqrt(d_head) before the softmax",
            lambda x, *W: head_change(x, *W, scale=1.0)),
    Mistake("you scaled by 1/sqrt(d_model); the scale is 1/sqrt(d_head), the size of the vectors "
            "being dotted", lambda x, *W: head_change(x, *W, scale=1 / math.sqrt(x.shape[-1]))),
    Mistake("you divided by an integer square root (int(d_head ** 0.5) or math.isqrt); d_head need "
            "not be a perfect square: use math.sqrt(d_head)",
            lambda x, *W: head_change(x, *W, scale=1 / math.isqrt(W[0].shape[-1])),
            when=_not_square),
    Mistake("the softmax runs over the wrong axis: each query's row (dim=-1, over the keys) must "
            "sum to 1", lambda x, *W: head_change(x, *W, dim=-2)),
    Mistake("W_Q and W_K are swapped: queries are x @ W_Q, keys are x @ W_K (the pattern is not "
            "symmetric)", lambda x, *W: head_change(x, *W, swap=True)),
    Mistake("you returned x + change; this function returns the head's change only",
            lambda x, *W: x + head_change(x, *W)),
    Mistake("the pattern is transposed (pattern.T @ values): row i must hold query i's weights",
            lambda x, *W: head_change(x, *W, transpose=True)),
    Mistake("you took a hard argmax (one-hot pattern) instead of the softmax",
            lambda x, *W: head_change(x, *W, hard=True)),
    Mistake("you returned the pattern (..., T, T); return the change, pattern @ values @ W_O",
            lambda x, *W: head_change(x, *W, weights=True)),
    Mistake("the output has d_head columns: you forgot value-up; multiply by W_O to return to "
            "d_model", lambda x, *W: head_change(x, *W, up=False)),
]


def _head_cases():
    cases = []
    for name, lead, T, d, dh, seed in (("one sentence, d_head = 5", (), 5, 8, 5, 0),
                                       ("a batch of 2, d_head = 3", (2,), 6, 12, 3, 20),
                                       ("7 tokens, d_model = 10, d_head = 6", (1,), 7, 10, 6, 40)):
        x = randn(*lead, T, d, seed=seed)
        W = head_weights(d, dh, seed + 1)
        cases.append(Case(name, (x, *W), _reference(x, *W)))
    return cases


@checker(TensorSpec(
    "one head", _head_cases, HEAD_MISTAKES, causal=Causal(arg=0, dim=-2, out_dim=-2),
    reference=_reference, layout="(..., T, d_model)",
    hint="check each shape: q, k, v are (..., T, d_head); the change is (..., T, d_model)"))
def check_head(fn):
    """Check fn(x, W_Q, W_K, W_V, W_O) -> the change one causal head adds to each token (..., T, d_model)."""


# --------------------------------------------------------------------------- the bug fix


def suspect_head(x, W_Q, W_K, W_V, W_O):
    """Chapter 6's ``suspect_head``: a causal head whose mask lets position i see key i + 1."""
    q, k, v = x @ W_Q, x @ W_K, x @ W_V
    scores = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5
    T = x.shape[-2]
    future = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(2)
    return scores.masked_fill(future, -INF).softmax(dim=-1) @ v @ W_O


def _weights_fix(x, W_Q, W_K, W_V, W_O, *, fill=0.0, renormalise=False, exp=False):
    """Wrong fixes that mask the weights (after the softmax) instead of the scores, in float32
    like the reader's code: ``fill`` replaces the future weights; ``renormalise`` divides each row
    by its new sum; ``exp`` skips the softmax's max shift (a hand-made softmax)."""
    q, k, v = x @ W_Q, x @ W_K, x @ W_V
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    T = x.shape[-2]
    future = torch.ones(T, T, dtype=torch.bool).triu(1)
    if exp:
        w = scores.exp().masked_fill(future, 0.0)
    else:
        w = scores.softmax(dim=-1).masked_fill(future, fill)
    if renormalise or exp:
        w = w / w.sum(dim=-1, keepdim=True)
    return w @ v @ W_O


def _masked_with_zero(x, W_Q, W_K, W_V, W_O):
    """A wrong fix: the future scores set to 0, not -inf."""
    q, k, v = x @ W_Q, x @ W_K, x @ W_V
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    T = x.shape[-2]
    s = s.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), 0.0)
    return s.softmax(dim=-1) @ v @ W_O


RENORMALISED = (
    "you softmaxed over every key, zeroed the future weights and renormalised the rows by hand. "
    "That is right in exact arithmetic, but here a later key has a score far above the others: it "
    "takes the whole softmax, the visible weights underflow to 0 and the row becomes 0/0 = nan. "
    "Mask the SCORES with -inf before the softmax, as suspect_head already did (only its mask was "
    "wrong)")

BY_HAND = (
    "you exponentiated the scores by hand, without subtracting each row's max, and renormalised "
    "the rows: a large score overflows exp to inf and its row becomes inf/inf = nan. Fill the "
    "scores with -inf and call softmax, which shifts by the max")
BIG = "a later token whose score dwarfs the others"
BIG_SCORE = (
    "your output is nan or inf where one later key's score is far above the others: masking the "
    "weights after a softmax over every key, or a softmax by hand without the max shift, breaks "
    "on such rows. Fill the future scores with -inf, then call softmax")

BUG_FIX_MISTAKES = [
    Mistake("that is suspect_head unchanged: it still leaks by one - position i sees the next "
            "token i + 1, because triu(2) hides only the keys j >= i + 2. Position i predicts "
            "token i + 1, so it must not see it: hide every key j > i, triu(1)",
            lambda x, *W: suspect_head(x, *W)),
    Mistake("over-correction: the mask now hides the diagonal too (triu(0), or j >= i), so no "
            "position sees itself and position 0 sees nothing at all (its row is nan). Hide only "
            "the keys after the query, j > i: triu(1)",
            lambda x, *W: head_change(x, *W, diagonal=-1)),
    Mistake("you applied the mask after the softmax: the softmax already shared each row among "
            "every key, so the future still moves the weights (through the row's sum) and the "
            "rows no longer sum to 1. Fill the SCORES with -inf, then take the softmax",
            lambda x, *W: _weights_fix(x, *W)),
    Mistake("you filled the future weights with -inf after the softmax, so the output is nan/inf. "
            "-inf belongs in the scores, before the softmax (exp(-inf) = 0 is what hides a key)",
            lambda x, *W: _weights_fix(x, *W, fill=-INF)),
    Mistake(RENORMALISED, lambda x, *W: _weights_fix(x, *W, renormalise=True)),
    Mistake(BY_HAND, lambda x, *W: _weights_fix(x, *W, exp=True)),
    Mistake("you set the future scores to 0 instead of -inf: a score of 0 still gets weight "
            "exp(0) = 1 in the softmax, so every position sees the whole future. Fill with -inf",
            lambda x, *W: _masked_with_zero(x, *W)),
] + [m for m in HEAD_MISTAKES if m.shows not in ("leak by one",)
     and not m.message.startswith("the diagonal is hidden")]


def _explain_big_score(out, c):
    """Name the two fixes that break only where a later key's score dwarfs the others, from the
    rows that went nan: the big token's own row (exp overflowed) or earlier rows (underflow)."""
    if c.name != BIG or out.shape != c.expected.shape or bool(out.isfinite().all()):
        return None
    broken = ~out.isfinite().all(dim=-1)  # (T,)
    if broken[-1]:
        return BY_HAND
    return RENORMALISED


def _bug_fix_cases():
    """check_head's cases, and one whose last token has a key far above the others: a fix that
    masks the weights after a softmax over every key loses the visible weights there."""
    d, dh = 8, 5
    x = randn(6, d, seed=70)
    W = head_weights(d, dh, 71)
    x[-1] = 200 * x[-1]  # its score dwarfs the rest (by over 100) for some queries
    big = Case(BIG, (x, *W), _reference(x, *W), nonfinite=BIG_SCORE, atol=1e-4)
    return _head_cases() + [big]


@checker(TensorSpec(
    "fixed head", _bug_fix_cases, BUG_FIX_MISTAKES, causal=Causal(arg=0, dim=-2, out_dim=-2),
    reference=_reference, layout="(..., T, d_model)", explain=_explain_big_score,
    nonfinite="your output contains nan or inf: a row of the pattern sees no key, or -inf went "
              "into the weights instead of the scores; hide the keys j > i before the softmax",
    hint="change one line of suspect_head: the one that decides which keys a query may see"))
def check_bug_fix(fn):
    """Check fn(x, W_Q, W_K, W_V, W_O) -> suspect_head with its leak fixed (a causal head)."""


# --------------------------------------------------------------------------- parameters


def _head_params(d_model, d_head):
    return 4 * d_model * d_head


@checker(NumberSpec(
    "parameters of one head", [("d_model=12288, d_head=128", (12288, 128), {}),
                               ("d_model=64, d_head=16", (64, 16), {}),
                               ("d_model=10, d_head=3", (10, 3), {})],
    _head_params, [
        Mistake("you counted three matrices; a head has four: W_Q, W_K, value-down and value-up "
                "(d_model x d_head each)", lambda d, dh: 3 * d * dh),
        Mistake("you counted a full d_model x d_model value map; the value map is factored into "
                "value-down and value-up", lambda d, dh: 3 * d * dh + d * d),
        Mistake("each matrix is d_model x d_head, not d_model x d_model", lambda d, dh: 4 * d * d),
        Mistake("that is one matrix; a head has four of them", lambda d, dh: d * dh),
        Mistake("the head has no biases here: count the four d_model x d_head matrices only",
                lambda d, dh: 4 * d * dh + 3 * dh + d),
    ]))
def check_head_params(fn):
    """Check fn(d_model, d_head) -> the number of parameters of one head (no biases)."""


# --------------------------------------------------------------------------- leak detector


def _as_verdict(v):
    if isinstance(v, torch.Tensor) and v.numel() == 1:
        v = v.item()
    if isinstance(v, np.bool_):
        v = bool(v)
    if not isinstance(v, bool):
        fail(f"return True or False, got {type(v).__name__}")
    return v


def _peeking_head(W, peeks):
    """A causal head, except that each (i, j) in ``peeks`` lets position i also see position j."""
    def head(z):
        T = z.shape[-2]
        keep = torch.ones(T, T, dtype=torch.bool).tril()
        for i, j in peeks:
            keep[i, j] = True
        q, k = z @ W[0], z @ W[1]
        s = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).masked_fill(~keep, -INF)
        return torch.softmax(s, -1) @ (z @ W[2]) @ W[3]
    return head


def check_leak_detector(fn):
    """Check fn(head, x) -> True when head leaks the future (some output moves with a later token)."""

    def body():
        W = head_weights(8, 4, 60)
        x = randn(7, 8, seed=61)
        heads = [
            ("a causal head", _peeking_head(W, []), False,
             "you flagged a correct causal head: perturbing an early token SHOULD move later "
             "outputs; perturb a later token and look only at the positions before it"),
            ("a head without mask", lambda z: head_change(z, *W, diagonal=None), True,
             "you missed a head with no mask at all: perturb a later token and compare the "
             "outputs at earlier positions"),
            ("a head where position 0 peeks at position 1", _peeking_head(W, [(0, 1)]), True,
             "you missed a small leak (position 0 sees position 1): perturb every later position "
             "in turn and compare every earlier position, not only the last one"),
            ("a head where position 3 peeks at position 5", _peeking_head(W, [(3, 5)]), True,
             "you missed a leak in the middle (position 3 sees position 5): perturb EVERY later "
             "position in turn, not only position 1 or the last one"),
            ("a head where position 2 peeks at positions 4 and 6", _peeking_head(W, [(2, 4), (2, 6)]),
             True, "you missed a leak from position 2 to positions 4 and 6: compare every earlier "
             "output after each perturbation, not only position 0"),
            ("a head whose last two positions leak", _peeking_head(W, [(5, 6)]), True,
             "you missed a leak at the end (position 5 sees position 6): include the last "
             "position in your loop"),
        ]
        for name, head, leaks, message in heads:
            got = _as_verdict(call(fn, head, x))
            if got != leaks:
                fail(f"{name}: {message}")
        return len(heads)

    return run_check("future-leak detector", body, unit="heads judged")
