"""Chapter 4's `check_causal_sdpa` (exercise ex-04-sdpa, "Decoding with SDPA, safely").

The reader writes causal attention through F.scaled_dot_product_attention for T_q <= T_k, the
last query aligned with the last key. Correct answers in several styles pass; each classic mistake
(SDPA's own top-left `is_causal=True`, flipped polarity, an upper triangle, the diagonal hidden,
a leak by one, no mask, a mask of the wrong size, `is_causal` together with a mask, an in-place
edit) gets its own message; the stub reads "not implemented"; bad answers never raise.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import attnlib
from attnlib import checks
from attnlib.checks import ch04_masking_context as ch04

sdpa = F.scaled_dot_product_attention


def verdict(capsys, fn):
    result = checks.check_causal_sdpa(fn)
    out = capsys.readouterr().out
    assert isinstance(result, checks.CheckResult)
    assert out == result.line + "\n", out  # one verdict, nothing else
    return result


def sizes(q, k):
    return q.shape[-2], k.shape[-2]


def ones(T_q, T_k, device=None):
    return torch.ones(T_q, T_k, dtype=torch.bool, device=device)


def with_mask(build):
    """An answer that passes SDPA the mask build(T_q, T_k)."""
    return lambda q, k, v: sdpa(q, k, v, attn_mask=build(*sizes(q, k)))


# --------------------------------------------------------------------------- correct answers


def tril_offset(q, k, v):
    T_q, T_k = sizes(q, k)
    return sdpa(q, k, v, attn_mask=ones(T_q, T_k, q.device).tril(diagonal=T_k - T_q))


def arange_compare(q, k, v):
    T_q, T_k = sizes(q, k)
    q_pos = torch.arange(T_q)[:, None] + (T_k - T_q)  # (T_q, 1): where each query sits
    return sdpa(q, k, v, attn_mask=torch.arange(T_k)[None, :] <= q_pos)


def float_additive(q, k, v):
    T_q, T_k = sizes(q, k)
    blocked = ~ones(T_q, T_k).tril(diagonal=T_k - T_q)
    return sdpa(q, k, v, attn_mask=torch.zeros(T_q, T_k).masked_fill(blocked, float("-inf")))


def last_rows_of_square(q, k, v):
    T_q, T_k = sizes(q, k)
    return sdpa(q, k, v, attn_mask=ones(T_k, T_k).tril()[T_k - T_q:])


def causal_lower_right(q, k, v):
    from torch.nn.attention.bias import causal_lower_right as bias

    return sdpa(q, k, v, attn_mask=bias(*sizes(q, k)))


def in_float64(q, k, v):
    return tril_offset(q.double(), k.double(), v.double()).to(v.dtype)


def written_out(q, k, v):  # not SDPA, but the same numbers: the checker cannot tell, and need not
    T_q, T_k = sizes(q, k)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    scores = scores.masked_fill(~ones(T_q, T_k).tril(diagonal=T_k - T_q), float("-inf"))
    return scores.softmax(-1) @ v


CORRECT = {
    "tril(diagonal=T_k - T_q)": tril_offset,
    "attnlib.causal_mask": with_mask(attnlib.causal_mask),
    "arange comparison": arange_compare,
    "float additive mask": float_additive,
    "last rows of a square mask": last_rows_of_square,
    "torch's causal_lower_right": causal_lower_right,
    "float64 inside": in_float64,
    "written out": written_out,
    "attnlib.attention": lambda q, k, v: attnlib.attention(q, k, v, is_causal=True),
}


@pytest.mark.parametrize("answer", CORRECT.values(), ids=CORRECT.keys())
def test_correct_answers_pass(capsys, answer):
    r = verdict(capsys, answer)
    assert r and r.line == "✓ causal SDPA: all 4 cases passed", r.line


def test_the_cases_cover_what_the_exercise_promises():
    shapes = [(c.args[0].shape, c.args[1].shape) for c in ch04.CAUSAL_SDPA_SPEC.cases()]
    T = [(q[-2], k[-2]) for q, k in shapes]
    assert any(a < b for a, b in T) and any(a == b for a, b in T) and any(a == 1 for a, _ in T)
    assert any(len(q) == 4 and q[0] > 1 and q[1] > 1 for q, _ in shapes)  # batch and heads
    assert all(math.isqrt(q[-1]) ** 2 != q[-1] for q, _ in shapes)  # no square head size


# --------------------------------------------------------------------------- mistakes


TOP_LEFT = "your last query sees only the first T_q keys"
POLARITY = "polarity is flipped"
UPPER = "upper triangle"
DIAGONAL = "diagonal is hidden"
LEAK = "leak by one"
NO_MASK = "no causal mask at all"
SIZE = "your mask does not fit the scores"
BOTH = "either is_causal=True or an attn_mask, not both"

WRONG = {
    "is_causal=True": (lambda q, k, v: sdpa(q, k, v, is_causal=True), TOP_LEFT),
    "tril() top-left": (with_mask(lambda a, b: ones(a, b).tril()), TOP_LEFT),
    "first rows of a square mask": (with_mask(lambda a, b: ones(b, b).tril()[:a]), TOP_LEFT),
    "flipped bool mask": (with_mask(lambda a, b: ~attnlib.causal_mask(a, b)), POLARITY),
    "MHA-style (True = blocked)": (with_mask(lambda a, b: ones(a, b).triu(diagonal=b - a + 1)),
                                   POLARITY),
    "flipped float mask": (with_mask(lambda a, b: torch.zeros(a, b).masked_fill(
        attnlib.causal_mask(a, b), float("-inf"))), POLARITY),
    "triu(diagonal=T_k - T_q)": (with_mask(lambda a, b: ones(a, b).triu(diagonal=b - a)), UPPER),
    "triu()": (with_mask(lambda a, b: ones(a, b).triu()), UPPER),
    "diagonal hidden": (with_mask(lambda a, b: ones(a, b).tril(diagonal=b - a - 1)), DIAGONAL),
    "strict comparison": (with_mask(lambda a, b: torch.arange(b)[None] < torch.arange(a)[:, None]
                                    + (b - a)), DIAGONAL),
    "leak by one": (with_mask(lambda a, b: ones(a, b).tril(diagonal=b - a + 1)), LEAK),
    "no mask": (lambda q, k, v: sdpa(q, k, v), NO_MASK),
    "a (T_k, T_k) mask": (with_mask(lambda a, b: ones(b, b).tril()), SIZE),
    "a (T_q, T_q) mask": (with_mask(lambda a, b: ones(a, a).tril()), SIZE),
    "a transposed mask": (with_mask(lambda a, b: attnlib.causal_mask(a, b).T), SIZE),
    "mask and is_causal": (lambda q, k, v: sdpa(q, k, v, attn_mask=attnlib.causal_mask(
        *sizes(q, k)), is_causal=True), BOTH),
}


@pytest.mark.parametrize("answer, words", WRONG.values(), ids=WRONG.keys())
def test_each_mistake_is_named(capsys, answer, words):
    r = verdict(capsys, answer)
    assert not r and words in r.message, r.line


def test_each_message_is_its_own():
    messages = {m.message for m in ch04.CAUSAL_SDPA_MISTAKES}
    assert len(messages) == len(ch04.CAUSAL_SDPA_MISTAKES) - 1  # the two upper triangles share one
    for words in (TOP_LEFT, POLARITY, UPPER, DIAGONAL, LEAK, NO_MASK):
        assert sum(words in m for m in messages) == 1, words
    assert not any(SIZE in m or BOTH in m for m in messages)  # those two come from exceptions


def test_the_size_message_gives_the_case_sizes(capsys):
    r = verdict(capsys, with_mask(lambda a, b: ones(b, b).tril()))
    assert "(T_q, T_k) = (3, 7) here" in r.message, r.line


def test_the_stub_is_not_implemented_yet(capsys):
    def causal_sdpa(q, k, v):
        # TODO
        raise NotImplementedError

    r = verdict(capsys, causal_sdpa)
    assert not r and "not implemented yet" in r.message


def test_an_in_place_edit_is_named(capsys):
    def scales_q_in_place(q, k, v):
        q *= q.shape[-1] ** -0.5  # the caller's queries change
        return sdpa(q, k, v, attn_mask=attnlib.causal_mask(*sizes(q, k)), scale=1.0)

    def fills_v_in_place(q, k, v):
        out = tril_offset(q, k, v)
        v.zero_()
        return out

    for answer, name in ((scales_q_in_place, "`q`"), (fills_v_in_place, "`v`")):
        r = verdict(capsys, answer)
        assert not r and f"changed its input {name} in place" in r.message, r.line


@pytest.mark.parametrize("bad", [lambda q, k, v: None, lambda q, k, v: "text",
                                 lambda q, k, v: 1 / 0, lambda q, k, v: q.numpy(),
                                 lambda q, k, v: (q, k), 3])
def test_bad_answers_never_raise(capsys, bad):
    r = verdict(capsys, bad)
    assert not r and r.line.startswith("✗ causal SDPA: ")


def test_returning_the_weights_is_a_shape_message(capsys):
    r = verdict(capsys, lambda q, k, v: attnlib.attention(q, k, v, is_causal=True,
                                                          return_weights=True)[1])
    assert not r and "expected an output of shape (..., T_q, d_v)" in r.message, r.line


def test_checker_is_exported():
    assert "check_causal_sdpa" in checks.__all__
    assert "check_shift_targets" in checks.__all__  # older notebooks still call it
