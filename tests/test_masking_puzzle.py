"""Chapter 4's widget puzzle is solvable as posed, and not by a single entry.

The chapter's explorer shows the "peeking" head (the previous-token head with its query and key
maps swapped) under the causal mask, and asks the reader to turn it into a previous-token head:
every query after the first gives its largest weight to the token just before it. The page says
that no single entry of W_Q or W_K does it, at any value the weight slider offers, and that
flipping the sign of four entries of W_Q does. Both claims are searched for here, with the
widget's own computation (``AttentionExplorer.compute``) and the slider's range and step.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

import attnlib
from attnlib import example, widgets

STEP = 0.01  # the weight slider's step (attnlib/static/attention_explorer.js)


@pytest.fixture(scope="module")
def puzzle():
    tokens, x = example.embed(example.PHRASE)
    prev = example.previous_token_head()
    return tokens, x.double(), prev.W_K.double(), prev.W_Q.double()  # the chapter's `peek`


def slider_limit(w_q: torch.Tensor, w_k: torch.Tensor) -> float:
    """The slider's range [-L, L]: lim() in attention_explorer.js."""
    m = max(1.0, w_q.abs().max().item(), w_k.abs().max().item())
    return math.ceil(2 * m)


def weights(x, w_q, w_k):
    """(n, T, T) causal patterns of the head for a batch of (n, d_model, d_head) maps, as the
    explorer computes them (temperature 1)."""
    s = (x @ w_q) @ (x @ w_k).transpose(-1, -2) / math.sqrt(w_q.shape[-1])
    T = x.shape[0]
    return torch.softmax(s.masked_fill(~attnlib.causal_mask(T), float("-inf")), dim=-1)


def previous_token(w: torch.Tensor) -> torch.Tensor:
    """(n,) True where every query after the first gives its largest weight to the previous token."""
    T = w.shape[-1]
    return (w.argmax(-1)[..., 1:] == torch.arange(T - 1)).all(-1)


def test_the_search_matches_the_widget(puzzle):
    tokens, x, w_q, w_k = puzzle
    explorer = widgets.AttentionExplorer(tokens, x.float(), w_q.float(), w_k.float(), causal=True)
    w = weights(x, w_q, w_k)  # (T, T)
    torch.testing.assert_close(explorer.compute()["weights"].double(), w, atol=1e-5, rtol=0)
    assert not previous_token(w).item()  # the puzzle starts unsolved


def test_no_single_entry_solves_it(puzzle):
    _, x, w_q, w_k = puzzle
    L = slider_limit(w_q, w_k)
    values = torch.arange(-round(L / STEP), round(L / STEP) + 1, dtype=torch.float64) * STEP
    T, d_model, d_head = x.shape[0], *w_q.shape
    q, k = x @ w_q, x @ w_k  # (T, d_head)
    s0 = q @ k.T / math.sqrt(d_head)  # (T, T)
    # setting W_Q[r, c] to v adds (v - W_Q[r, c]) x[:, r] k[:, c]^T / sqrt(d_head) to the scores
    # (and W_K[r, c]: (v - W_K[r, c]) q[:, c] x[:, r]^T / sqrt(d_head)): exact, as scores are linear
    for which, w0 in (("W_Q", w_q), ("W_K", w_k)):
        rows, cols = torch.meshgrid(torch.arange(d_model), torch.arange(d_head), indexing="ij")
        rows, cols = rows.flatten(), cols.flatten()  # (d_model * d_head,) every entry
        if which == "W_Q":
            change = x.T[rows, :, None] * k.T[cols, None, :]  # (entries, T, T)
        else:
            change = q.T[cols, :, None] * x.T[rows, None, :]
        step = values[None, :] - w0[rows, cols][:, None]  # (entries, values)
        s = s0 + step[..., None, None] * change[:, None] / math.sqrt(d_head)
        w = torch.softmax(s.masked_fill(~attnlib.causal_mask(T), float("-inf")), dim=-1)
        # the shortcut agrees with a direct computation, for one entry and value
        e, v = 7 * d_head + 2, 123
        edited = w0.clone()
        edited[rows[e], cols[e]] = values[v]
        maps = (edited, w_k) if which == "W_Q" else (w_q, edited)
        torch.testing.assert_close(w[e, v], weights(x, *maps))
        solved = previous_token(w)  # (entries, values)
        if solved.any():
            e = solved.nonzero()[0, 0]
            pytest.fail(f"{which}[{rows[e].item()}, {cols[e].item()}] alone solves the puzzle")
        # the previous token never gets even half of the weight on average
        assert w.diagonal(-1, dim1=-2, dim2=-1).mean(-1).max() < 0.5


def test_four_sign_flips_of_w_q_solve_it(puzzle):
    tokens, x, w_q, w_k = puzzle
    names = list(example.SEMANTIC + example.POSITION)
    entries = [(r, c) for r in range(w_q.shape[0]) for c in range(w_q.shape[1])
               if round(w_q[r, c].item(), 2) != 0]  # the entries the widget shows as non-zero
    solutions = []
    for n in range(1, len(entries) + 1):
        for chosen in itertools.combinations(entries, n):
            wq = w_q.clone()
            for r, c in chosen:
                wq[r, c] = -wq[r, c]
            wq = (wq / STEP).round() * STEP  # what the slider can set
            w = weights(x, wq, w_k)
            if previous_token(w).item():
                solutions.append((chosen, w.diagonal(-1).min().item()))
    assert solutions, "no set of sign flips of W_Q makes a previous-token head"
    assert min(len(s) for s, _ in solutions) == 4  # the page says four entries
    chosen, weakest = max((s for s in solutions if len(s[0]) == 4), key=lambda s: s[1])
    assert weakest > 0.9, weakest  # and the solution is clear-cut
    # the four are the sines of the two (sin, cos) pairs' turns, in the rows the page names
    assert {names[r] for r, _ in chosen} == {"sin1", "cos1", "sin2", "cos2"}
    # the explorer agrees once the reader has made the four edits
    wq = w_q.clone()
    for r, c in chosen:
        wq[r, c] = -wq[r, c]
    explorer = widgets.AttentionExplorer(tokens, x.float(), wq.float(), w_k.float(), causal=True)
    assert previous_token(explorer.compute()["weights"]).item()
