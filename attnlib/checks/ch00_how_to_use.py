"""Checkers for chapter 0 (how to use this book): softmax, scaled scores, the widget's temperature.

Conventions, as everywhere in the book: rows are queries, columns are keys; a bool mask reads
True = may attend. The references are attnlib's own functions. ``check_causal_mask`` served the
chapter's former third exercise (chapter 4 teaches that alignment now) and stays for older copies
of the notebook.
"""

from __future__ import annotations

import functools
import math
import numbers

import torch
import torch.nn.functional as F

from ..attention import attention, causal_mask, softmax
from ._core import (
    NOT_IMPLEMENTED,
    Case,
    Mistake,
    NotImplementedYet,
    TensorSpec,
    as_number,
    checker,
    fail,
    randn,
    run_check,
    shape_str,
)

__all__ = ["check_softmax", "check_scaled_scores", "check_sharp_temperature", "check_causal_mask"]

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


# --------------------------------------------------------------------------- the widget's temperature

PHRASE = "a fluffy blue creature"  # the chapter's phrase and head (attnlib.example.adjective_head)
QUERY, KEY = "creature", "blue"
TARGET = 0.9  # the weight the query must put on the key
SLIDER = (0.01, 100.0)  # the AttentionExplorer's temperature slider: 10**-2 .. 10**2, log scale
DISPLAY = 1.05  # the widget shows a temperature below 1 to two digits: a number read off it is ~5% off


@functools.cache
def _head() -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """(tokens, q, k) of the chapter's head in float64: q = x @ W_Q, k = x @ W_K, (T, d_head)."""
    from .. import example

    tokens, x = example.embed(PHRASE)
    W_Q, W_K, _, _ = example.adjective_head()
    x = x.double()
    return tokens, x @ W_Q.double(), x @ W_K.double()


def widget_weights(temperature: float, *, causal: bool = True, scaled: bool = True,
                   multiplied: bool = False) -> torch.Tensor:
    """The (T, T) pattern the chapter's AttentionExplorer shows at ``temperature``.

    softmax(q k^T / sqrt(d_head) / temperature), causal as the widget starts. The keywords make the
    readings of the typical mistakes: ``scaled=False`` leaves out 1/sqrt(d_head),
    ``multiplied=True`` multiplies the scores by the temperature instead of dividing.
    """
    _, q, k = _head()
    scale = 1 / math.sqrt(q.shape[-1]) if scaled else 1.0
    scale = scale * temperature if multiplied else scale / temperature
    return attention(q, k, k, is_causal=causal, scale=scale, return_weights=True)[1]


def _weight(temperature: float, query: str = QUERY, key: str = KEY, **kw) -> float:
    tokens = _head()[0]
    return float(widget_weights(temperature, **kw)[tokens.index(query), tokens.index(key)])


@functools.cache
def sharp_temperatures() -> tuple[float, float]:
    """The interval of slider temperatures at which "creature" puts at least 0.9 on "blue".

    The weight of the row's highest-scoring key falls as the temperature rises, so the interval
    runs from the slider's lowest temperature up to the one where the weight is exactly 0.9
    (found by bisection, in float64).
    """
    lo, hi = SLIDER[0], 1.0
    assert _weight(lo) >= TARGET > _weight(hi)
    for _ in range(200):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if _weight(mid) >= TARGET else (lo, mid)
    return SLIDER[0], lo


def _is(what: str) -> str:
    return f"your temperature is {what}"


def _temperature(answer) -> float:
    """The reader's answer as a float, or a diagnosis saying what it is instead of one number."""
    _reject_non_number(answer)
    answer = _one_item(answer)  # a Python number (or bool) from now on
    if isinstance(answer, bool):
        fail(_is(f"a bool ({answer}): write a number"))
    if not isinstance(answer, numbers.Real):
        fail(_is(f"of type {type(answer).__name__}: write one real number"))
    if not math.isfinite(float(answer)):
        fail(_is(f"{float(answer)}: write a finite number"))
    return float(as_number(answer, "your temperature"))


def _reject_non_number(answer) -> None:
    """Name what the answer is when it is plainly not a number: the stub, None, a string, the
    widget, a function or a container."""
    if answer is Ellipsis:
        raise NotImplementedYet(NOT_IMPLEMENTED)
    if answer is None:
        fail(_is("None: write the number you found in place of the `...`"))
    if isinstance(answer, str):
        fail(_is(f"the string {answer!r}: write the number itself, without quotes"))
    if hasattr(answer, "temperature") and hasattr(answer, "weights"):
        fail("you passed the widget itself: pass its temperature, explorer.temperature (a number)")
    if callable(answer):
        fail(_is("a function: pass the number it gives (call it), or write the number itself"))
    if isinstance(answer, (list, tuple, dict, set)):
        n = len(answer)
        fail(_is(f"a {type(answer).__name__} of {n} item{'s' * (n != 1)}: give one number, the "
                 "temperature (explorer.weights holds the weights)"))


def _one_item(answer):
    """A tensor or numpy value of one element as a Python number; anything else unchanged."""
    if isinstance(answer, torch.Tensor) or type(answer).__module__.startswith("numpy"):
        size = answer.numel() if isinstance(answer, torch.Tensor) else answer.size
        if size != 1:
            fail(_is(f"an array of shape {shape_str(answer.shape)}: give one number, the "
                     "temperature (explorer.weights holds the weights)"))
        return answer.item()
    return answer


# The mistakes, in the order they are tried on a temperature the slider can show that does not
# reach the target. ``fn(t)`` is what the mistaken reading shows at t; a mistake is named when
# ``when(t)`` holds and that reading reaches the target.
SHARP_MISTAKES = [
    Mistake("you multiplied the scores by the temperature; the widget divides them by it, so a "
            "temperature below 1 sharpens the pattern and one above 1 flattens it",
            lambda t: _weight(t, multiplied=True), when=lambda t: t > 1),
    Mistake("wrong way: a temperature above 1 flattens the pattern. Go below 1", lambda t: 1.0,
            when=lambda t: t > 1),
    Mistake("1 is where the slider starts: move it and watch the bar of 'blue'", lambda t: 1.0,
            when=lambda t: t == 1),
    Mistake("that looks like the weight, not the temperature: give the number shown beside the "
            "slider", lambda t: 1.0, when=lambda t: TARGET <= t < 1),
    Mistake("0.9 or more is what the query 'blue' puts on itself, another row: read the row of "
            "'creature' (explorer.weights[3])", lambda t: _weight(t / DISPLAY, query="blue")),
    Mistake("without the 1/sqrt(d_head) scale the weight would reach 0.9 here. The widget divides "
            "the scores by sqrt(d_head) = 2, then by the temperature",
            lambda t: _weight(t, scaled=False)),
]
NOT_LOW_ENOUGH = "lower the temperature further: a small temperature sharpens the pattern"


def check_sharp_temperature(temperature):
    """Check a temperature at which "creature" puts at least 0.9 of its weight on "blue" (chapter 0).

    ``temperature`` is a number (a float, an int, a numpy scalar, a 0-d tensor) that the
    chapter's AttentionExplorer slider can show, 0.01 to 100. The weights are the widget's:
    softmax(q k^T / sqrt(d_head) / temperature) with the causal mask, for the chapter's head on
    "a fluffy blue creature". Diagnoses: not a number (named: None, a string, the widget, a
    list, an array), out of the slider's range, and the mistakes of ``SHARP_MISTAKES``.
    """

    def body() -> int:
        t = _temperature(temperature)
        if t <= 0:
            fail(f"{t:.4g} is not a temperature: it must be positive (the scores are divided by "
                 f"it); the slider runs from {SLIDER[0]:g} to {SLIDER[1]:g}")
        if t < SLIDER[0]:
            fail(f"{t:.4g} is below the slider's lowest temperature, {SLIDER[0]:g}: it does "
                 "sharpen the pattern, but give a temperature the widget can show")
        if t > SLIDER[1]:
            fail(f"{t:.4g} is above the slider's highest temperature, {SLIDER[1]:g} (and a "
                 "temperature above 1 flattens the pattern): give one the widget can show")
        w = _weight(t)
        if w >= TARGET:
            return 2  # the slider can show it; the weight reaches the target
        where = f"at temperature {t:.4g}, {QUERY!r} puts {w:.3f} on {KEY!r}, short of {TARGET}: "
        for m in SHARP_MISTAKES:
            if (m.when is None or m.when(t)) and m.fn(t) >= TARGET:
                fail(where + m.message)
        fail(where + NOT_LOW_ENOUGH)

    return run_check("sharper pattern", body, unit="checks")
