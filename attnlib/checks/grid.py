"""Checkers for chapter 2: the grid of query-key dot products, designing a head, counting W_Q/W_K.

Every checker prints ``✓ ...`` or ``✗ ...: diagnosis`` and returns True/False (see ``_core``).
"""

from __future__ import annotations

import math

import torch

from ..attention import attention
from ._core import Case, call, case, fail, randn, run_cases, run_check, shape_str

__all__ = ["check_score_grid", "check_verb_head", "check_qk_parameters"]


def check_score_grid(fn) -> bool:
    """Check ``fn(x, W_Q, W_K) -> scores``: the raw grid of dot products, queries as rows.

    ``x`` is (..., T, d_model), ``W_Q`` and ``W_K`` are (d_model, d_head); q = x @ W_Q and
    k = x @ W_K are (..., T, d_head) and the answer is ``q @ k^T`` of shape (..., T, T): entry
    [i, j] is how well key j answers query i. No scaling yet (chapter 3 adds it). Any correct way
    passes (``@`` with ``.transpose(-2, -1)`` or ``.mT``, ``einsum``). Diagnoses: the transposed grid
    (keys as rows), W_Q used for the keys or W_K for the queries, x @ x^T without the maps, a
    1/sqrt(d_head) scale (not yet).
    """

    def body():
        inputs = [
            ("5 tokens, d_model = 8, d_head = 3", randn(5, 8, seed=60), randn(8, 3, seed=61), randn(8, 3, seed=62)),
            ("a batch of 2 x 4 tokens, d_model = 6, d_head = 2",
             randn(2, 4, 6, seed=63), randn(6, 2, seed=64), randn(6, 2, seed=65)),
        ]
        cases = []
        for name, x, wq, wk in inputs:
            q, k = x @ wq, x @ wk
            s = q @ k.transpose(-2, -1)
            cases.append(Case(name, (x, wq, wk), s, mistakes=[
                ("your grid is transposed: rows must be queries and columns keys, so compute "
                 "q @ k.transpose(-2, -1), not k @ q^T", s.transpose(-2, -1)),
                ("you used W_Q for the keys as well: keys are x @ W_K", q @ q.transpose(-2, -1)),
                ("you used W_K for the queries as well: queries are x @ W_Q", k @ k.transpose(-2, -1)),
                ("you dotted the embeddings directly (x @ x^T); map them first: q = x @ W_Q, k = x @ W_K",
                 x @ x.transpose(-2, -1)),
                ("you scaled by 1/sqrt(d_head); that comes in chapter 3 - here return the raw dot "
                 "products", s / math.sqrt(wq.shape[-1])),
            ], otherwise="the grid is wrong: expected (x @ W_Q) @ (x @ W_K)^T"))
        return run_cases(fn, cases, hint="shapes: x (..., T, d_model), W_Q and W_K (d_model, d_head)")

    return run_check("score grid", body)


_VERB_SENTENCES = (
    ("a fluffy blue creature roamed the verdant forest", "roamed", "creature"),
    ("the fox slept", "slept", "fox"),
    ("the royal king ruled", "ruled", "king"),
    ("a soft owl slept", "slept", "owl"),
)


def check_verb_head(W_Q, W_K, threshold: float = 0.5) -> bool:
    """Check a hand-designed head ``(W_Q, W_K)`` on the running example's embeddings: every verb
    should attend to the noun before it (its subject) with more than ``threshold`` of its weight.

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
                if toks[top] == subject:
                    fail(f"{verb!r} attends most to {subject!r}, but only with weight {got:.2f} "
                         f"(needs > {threshold}): make the matching weights larger")
                fail(f"{verb!r} puts weight {got:.2f} on {subject!r} and {float(w[top]):.2f} on "
                     f"{toks[top]!r}; its query should match the key of a noun (read 'verb' in W_Q "
                     "and 'noun' in W_K in the same column)")
        return len(_VERB_SENTENCES)

    return run_check("verb head", body, unit="sentences")


def check_qk_parameters(fn) -> bool:
    """Check ``fn(d_model, d_head, n_heads, n_layers) -> int``: the number of query and key
    parameters of a model (no biases): every head of every layer has a W_Q and a W_K of shape
    (d_model, d_head). GPT-3 (12288, 128, 96, 96) has 28,991,029,248.
    Diagnoses: only one of the two matrices, heads or layers left out, d_model x d_model matrices,
    a float instead of an int.
    """

    def body():
        inputs = [(16, 4, 1, 1), (20, 4, 3, 2), (12288, 128, 96, 96)]
        for d_model, d_head, n_heads, n_layers in inputs:
            with case(f"d_model={d_model}, d_head={d_head}, n_heads={n_heads}, n_layers={n_layers}"):
                expected = 2 * d_model * d_head * n_heads * n_layers
                out = call(fn, d_model, d_head, n_heads, n_layers,
                           hint="fn(d_model, d_head, n_heads, n_layers) returns a number")
                if isinstance(out, torch.Tensor) and out.numel() == 1:
                    out = out.item()
                if isinstance(out, bool) or not isinstance(out, (int, float)):
                    fail(f"expected a number, got {type(out).__name__}")
                if out == expected:
                    if not isinstance(out, int):
                        fail(f"right value, but a {type(out).__name__}: a count is an int (avoid / "
                             "and floats; use * and //)")
                    continue
                per = d_model * d_head
                wrong = {
                    per * n_heads * n_layers: "you counted one matrix; each head has both a W_Q and a W_K",
                    2 * per * n_layers: "you left out the heads: every head has its own W_Q and W_K",
                    2 * per * n_heads: "you left out the layers: every layer has its own heads",
                    2 * per: "you counted one head of one layer; multiply by the heads and the layers",
                    2 * d_model * d_model * n_heads * n_layers:
                        "W_Q and W_K map d_model to d_head, so each has d_model x d_head entries, "
                        "not d_model x d_model",
                }
                fail(wrong.get(out, f"got {out:,}, expected {expected:,}: count 2 matrices of "
                                    "d_model x d_head per head, times heads, times layers"))
        return len(inputs)

    return run_check("query/key parameters", body)
