"""Checkers for chapter 2 (queries and keys): the grid of query-key dot products, designing a
head, counting W_Q/W_K."""

from __future__ import annotations

import math

import torch

from ..attention import attention
from ._core import (
    Case,
    Mistake,
    NumberSpec,
    TensorSpec,
    case,
    checker,
    fail,
    randn,
    run_check,
    shape_str,
)

__all__ = ["check_score_grid", "check_verb_head", "check_qk_parameters"]


def _grid(x, W_Q, W_K):
    return (x @ W_Q) @ (x @ W_K).transpose(-2, -1)


def _grid_cases():
    inputs = [
        ("5 tokens, d_model = 8, d_head = 3", randn(5, 8, seed=60), randn(8, 3, seed=61),
         randn(8, 3, seed=62)),
        ("a batch of 2 x 4 tokens, d_model = 6, d_head = 5",
         randn(2, 4, 6, seed=63), randn(6, 5, seed=64), randn(6, 5, seed=65)),
    ]
    return [Case(name, (x, wq, wk), _grid(x, wq, wk)) for name, x, wq, wk in inputs]


@checker(TensorSpec(
    "score grid", _grid_cases, [
        Mistake("your grid is transposed: rows must be queries and columns keys, so compute "
                "q @ k.transpose(-2, -1), not k @ q^T",
                lambda x, wq, wk: _grid(x, wq, wk).transpose(-2, -1)),
        Mistake("you used W_Q for the keys as well: keys are x @ W_K",
                lambda x, wq, wk: _grid(x, wq, wq)),
        Mistake("you used W_K for the queries as well: queries are x @ W_Q",
                lambda x, wq, wk: _grid(x, wk, wk)),
        Mistake("you dotted the embeddings directly (x @ x^T); map them first: q = x @ W_Q, "
                "k = x @ W_K", lambda x, wq, wk: x @ x.transpose(-2, -1)),
        Mistake("you scaled by 1/sqrt(d_head); that comes in chapter 3 - here return the raw dot "
                "products", lambda x, wq, wk: _grid(x, wq, wk) / math.sqrt(wq.shape[-1])),
    ], reference=_grid, layout="(..., T, T)",
    otherwise="the grid is wrong: expected (x @ W_Q) @ (x @ W_K)^T",
    hint="shapes: x (..., T, d_model), W_Q and W_K (d_model, d_head)"))
def check_score_grid(fn):
    """Check fn(x, W_Q, W_K) -> the raw grid of query-key dot products, queries as rows."""


_VERB_SENTENCES = (
    ("a fluffy blue creature roamed the verdant forest", "roamed", "creature"),
    ("the fox slept", "slept", "fox"),
    ("the royal king ruled", "ruled", "king"),
    ("a soft owl slept", "slept", "owl"),
    ("the fox of one slept", "slept", "fox"),  # the subject is NOT the previous token
)


def check_verb_head(W_Q, W_K, threshold: float = 0.5):
    """Check a designed head (W_Q, W_K): every verb attends to its subject with weight > threshold.

    ``W_Q`` and ``W_K`` are (d_model, d_head) for ``attnlib.example`` (d_model = 20, any d_head).
    The pattern is ``attnlib.attention`` with the causal mask and the 1/sqrt(d_head) scale on
    ``example.embed(sentence)`` (tokens plus positions). Sentences: the running phrase ("roamed" ->
    "creature"), "the fox slept", "the royal king ruled", "a soft owl slept".
    Diagnoses: wrong shapes, the roles of W_Q and W_K swapped, a verb attending to something else
    (named, with its weight), the right key but too weakly.
    """
    from .. import example

    def pattern(wq, wk, x):
        q, k = x @ wq, x @ wk
        return attention(q, k, k, is_causal=True, return_weights=True)[1]

    def body():
        for name, w in (("W_Q", W_Q), ("W_K", W_K)):
            if not isinstance(w, torch.Tensor):
                fail(f"{name} must be a torch.Tensor, got {type(w).__name__}")
            if w.ndim != 2 or w.shape[0] != example.D_MODEL:
                fail(f"{name} must have shape (d_model, d_head) = ({example.D_MODEL}, d_head), got "
                     f"{shape_str(w.shape)}")
        if W_Q.shape != W_K.shape:
            fail(f"W_Q and W_K must have the same shape (queries are dotted with keys), got "
                 f"{shape_str(W_Q.shape)} and {shape_str(W_K.shape)}")
        wq, wk = W_Q.detach().float(), W_K.detach().float()
        for sentence, verb, subject in _VERB_SENTENCES:
            with case(sentence):
                toks, x = example.embed(sentence)
                w = pattern(wq, wk, x)[toks.index(verb)]
                got = float(w[toks.index(subject)])
                if got > threshold:
                    continue
                swapped = float(pattern(wk, wq, x)[toks.index(verb), toks.index(subject)])
                if swapped > threshold:
                    fail("the roles of W_Q and W_K are swapped: the verb ASKS (its query, x @ W_Q, "
                         "should read the verb direction) and the noun ANSWERS (its key, x @ W_K, "
                         "should read the noun direction)")
                visible = w[: toks.index(verb) + 1]
                if float(visible.max() - visible.min()) < 1e-4:
                    fail(f"{verb!r} spreads its weight evenly over every word it can see: all its "
                         "scores are equal (a head of zeros does that). Set entries so that a verb's "
                         "query matches a noun's key")
                top = int(w.argmax())
                if top == toks.index(verb) - 1 and toks[top] != subject:
                    fail(f"{verb!r} attends to the token right before it ({toks[top]!r}), not to "
                         f"its subject {subject!r}: a previous-token head only looks right when "
                         "the subject happens to come just before the verb. Match a verb's query "
                         "with a NOUN's key (read 'verb' in W_Q and 'noun' in W_K)")
                if toks[top] == subject:
                    fail(f"{verb!r} attends most to {subject!r}, but only with weight {got:.2f} "
                         f"(needs > {threshold}): make the matching weights larger")
                fail(f"{verb!r} puts weight {got:.2f} on {subject!r} and {float(w[top]):.2f} on "
                     f"{toks[top]!r}; its query should match the key of a noun (read 'verb' in W_Q "
                     "and 'noun' in W_K in the same column)")
        return len(_VERB_SENTENCES)

    return run_check("verb head", body, unit="sentences")


@checker(NumberSpec(
    "query/key parameters", [
        ("d_model=16, d_head=4, n_heads=1, n_layers=1", (16, 4, 1, 1), {}),
        ("d_model=20, d_head=4, n_heads=3, n_layers=2", (20, 4, 3, 2), {}),
        ("d_model=12288, d_head=128, n_heads=96, n_layers=96", (12288, 128, 96, 96), {}),
        ("d_model=30, d_head=7, n_heads=5, n_layers=3", (30, 7, 5, 3), {}),
    ], lambda d, dh, H, L: 2 * d * dh * H * L, [
        Mistake("you counted one matrix; each head has both a W_Q and a W_K",
                lambda d, dh, H, L: d * dh * H * L),
        Mistake("you left out the heads: every head has its own W_Q and W_K",
                lambda d, dh, H, L: 2 * d * dh * L),
        Mistake("you left out the layers: every layer has its own heads",
                lambda d, dh, H, L: 2 * d * dh * H),
        Mistake("you counted one head of one layer; multiply by the heads and the layers",
                lambda d, dh, H, L: 2 * d * dh),
        Mistake("W_Q and W_K map d_model to d_head, so each has d_model x d_head entries, not "
                "d_model x d_model", lambda d, dh, H, L: 2 * d * d * H * L),
        Mistake("you counted all four matrices of a head (W_Q, W_K, W_V, W_O); this asks for the "
                "queries and keys only", lambda d, dh, H, L: 4 * d * dh * H * L),
    ], hint="fn(d_model, d_head, n_heads, n_layers) returns a number"))
def check_qk_parameters(fn):
    """Check fn(d_model, d_head, n_heads, n_layers) -> the query and key parameters of a model."""
